"""The `math` verifier (alias `mathverify`): V-Triune's math-verify settings, plus the guards around them."""

import threading

import pytest

from triune_data.errors import VerifierError
from triune_data.verifiers import ScoreItem, VerifyContext, get_verifier, parse_params, score
from triune_data.verifiers.math import MathParams, verify_math

CTX = VerifyContext()
BLOCK = {"answer_block": True}
EXPR = {"plain_expressions": True}


def closeform(reasoning: str, answer: str) -> str:
    """V-Triune's closeform prompt layout: think block, then the box inside an answer block."""
    return f"<think>\n{reasoning}\n</think>\n<answer>\n\\boxed{{{answer}}}\n</answer>"


def r1v(reasoning: str, answer: str) -> str:
    """R1-V GeoQA layout: no box, a bare answer in the block."""
    return f"<think>{reasoning}</think>\n<answer>{answer}</answer>"


MIDPOINT = "D is the midpoint of AC and BC = AB/2, BD = 1, so AB = 4."
ANGLES = "DE is parallel to BC, so angle CED = 180 - angle C = 180 - 40 = 140."


@pytest.mark.parametrize(
    ("completion", "gold", "params", "accuracy"),
    [
        # docs/vtriune.md §3 local checks (V-Triune defaults)
        (r"\boxed{STOP}", "stop", {}, 1.0),
        (r"The sign reads \boxed{New York}.", "new york", {}, 1.0),
        (r"\boxed{12 cm}", "12", {}, 1.0),
        (r"\boxed{50\%}", "0.5", {}, 1.0),
        (r"\boxed{x=5}", "5", {}, 1.0),
        (r"\boxed{york}", "new york", {}, 0.0),
        (r"\boxed{pots}", "stop", {}, 1.0),  # kept V-Triune quirk: a word is a product of letters
        ("The answer is 4", "4", {}, 0.0),  # no LaTeX anchor under V-Triune's settings
        ("The answer is 4", "4", EXPR, 1.0),
        # equivalent forms
        (r"So the probability is \boxed{\frac{1}{2}}.", "0.5", {}, 1.0),
        (r"\boxed{0.5}", r"\frac{1}{2}", {}, 1.0),
        (r"\boxed{\dfrac{3}{4}}", "0.75", {}, 1.0),
        (r"\boxed{75\%}", "0.75", {}, 1.0),
        (r"\boxed{75}", "0.75", {}, 0.0),
        (r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}", {}, 1.0),
        (r"\boxed{2\sqrt{3}}", r"\sqrt{12}", {}, 1.0),
        (r"\boxed{x^2 - 1}", "(x-1)(x+1)", {}, 1.0),
        (r"\boxed{y = 2x + 1}", "y=2x+1", {}, 1.0),
        (r"\boxed{[1, 2)}", "[1,2)", {}, 1.0),
        (r"\boxed{(2, 1)}", "(1,2)", {}, 0.0),
        (r"\boxed{1,000}", "1000", {}, 1.0),
        (r"\boxed{-3}", "3", {}, 0.0),
        (r"\boxed{3.14}", r"\pi", {}, 0.0),
        (r"\boxed{\infty}", r"\infty", {}, 1.0),
        # Orsta rows: gold boxed or plain, answer boxed inside the answer block
        (closeform(MIDPOINT, "4"), r"\boxed{4}", {}, 1.0),
        (closeform(MIDPOINT, "4"), "4", {}, 1.0),
        (closeform(MIDPOINT, "4 cm"), r"\boxed{4}", {}, 1.0),
        (closeform(MIDPOINT, "5"), r"\boxed{4}", {}, 0.0),
        # several boxes are read together: hedging yields a set
        (r"First guess \boxed{3}, final \boxed{4}", "4", {}, 0.0),
        (r"The roots are \boxed{3} and \boxed{4}", r"\boxed{3, 4}", {}, 1.0),
        (r"\boxed{3 \text{ or } 4}", "4", {}, 0.0),
        # boxed_match_priority: 0 reads the box first; later it yields to "final answer ... is"
        (r"The final answer is $5$. Double-check: \boxed{4}", "4", {}, 1.0),
        (r"The final answer is $5$. Double-check: \boxed{4}", "5", {"boxed_match_priority": 100}, 1.0),
        (r"\boxed{4}", "4", {"boxed_match_priority": -1}, 0.0),
        # GeoQA (R1-V) degrees and answer blocks
        (r"\boxed{140^\circ}", "140°", {}, 1.0),
        (r"\boxed{140°}", "140°", {}, 1.0),
        (r1v(ANGLES, "140"), "140°", {}, 0.0),  # no box, no anchor
        (r1v(ANGLES, "140"), "140°", BLOCK, 1.0),
        (r1v(ANGLES, "140°"), "140°", BLOCK, 1.0),
        (r1v("180 - 80 - 60 = 40.0", "40.0"), "140°", BLOCK, 0.0),
        (r1v("BC = 4 sin 60 = 2√3", "2√3"), "2√{3}", BLOCK, 1.0),
        (r1v("AB = 10", "10"), "10√{2}", BLOCK, 0.0),  # R1-V's old math-verify read the gold as 10
        (r1v("A = pi * 5 * 13", r" 65\pi "), "65π", BLOCK, 1.0),
        (r1v("cos A = 3/5", "0.6"), r"\frac{3}{5}", BLOCK, 1.0),
        (r1v("the answer is", "The answer is 40."), "40", BLOCK, 0.0),  # the block must hold the answer alone
        ("The answer is 40.", "40", {**BLOCK, **EXPR}, 1.0),  # no block: the completion as usual
        # anchors and settings
        ("so it equals $4$.", "4", {}, 0.0),
        ("so it equals $4$.", "4", {"try_extract_without_anchor": True}, 1.0),
        ("There are 3 apples and 4 pears.", "4", EXPR, 0.0),
        ("There are 3 apples and 4 pears.", "4", {**EXPR, "try_extract_without_anchor": True}, 1.0),
        (r"\boxed{0.33}", r"\frac{1}{3}", {}, 0.0),
        (r"\boxed{0.33}", r"\frac{1}{3}", {"float_rounding": 2}, 1.0),
        (r"\boxed{12 cm}", "12", {"units": False}, 0.0),
        # GeoQA-style golds with Chinese units: the unit is dropped, 度 is degrees
        (r"\boxed{6}", "6米", {}, 1.0),
        (r"\boxed{7}", "6米", {}, 0.0),
        (r"\boxed{6米}", "6米", {}, 1.0),
        (r"\boxed{12}", "12平方厘米", {}, 1.0),
        (r"\boxed{60^\circ}", "60度", {}, 1.0),
        (r"\boxed{60}", "60度", {}, 1.0),
        (r"\boxed{2\sqrt{3}}", "2√{3}厘米", {}, 1.0),
        (r"\boxed{0.5}", r"\frac{1}{2}米", {}, 1.0),
        (r"所以答案是\boxed{3个}", "3", {}, 1.0),
        (r"\boxed{STOP}", "STOP", {"lowercase": False}, 1.0),
        # malformed completions
        ("", "4", {}, 0.0),
        (r"\boxed{}", "4", {}, 0.0),
        (r"so the answer is \boxed{4", "4", {}, 0.0),
        (r"\boxed{\text{NaN}}", "5", {}, 0.0),
    ],
)  # fmt: skip
def test_math_table(completion, gold, params, accuracy):
    verdict = verify_math(completion, gold, MathParams(**params), CTX)
    assert verdict.status == "ok", verdict.message
    assert verdict.accuracy == accuracy, verdict.message


DEEP_FRAC = r"\boxed{" + r"\frac{" * 300 + "1" + "}{2}" * 300 + "}"


@pytest.mark.parametrize(
    ("completion", "why"),
    [
        (DEEP_FRAC, "nested deeper"),
        (r"\boxed{" + "(" * 40 + "1" + ")" * 40 + "}", "nested deeper"),
        (r"\boxed{" + "{" * 25 + "1" + "}" * 25 + "}", "nested deeper"),
        (r"\boxed{10^{10^{10}}}", "digits"),
        (r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", "digits"),
        (r"\boxed{1000000!}", "digits"),
        (r"\boxed{e^{10^{12}}}", "digits"),
        (r"\boxed{" + "+".join(["x"] * 600) + "}", "longer than"),
        ("$" + "1+" * 600 + "1$ is the final answer", "longer than"),
    ],
)
def test_pathological_completions_are_refused_quickly(completion, why):
    verdict = verify_math(completion, "1", MathParams(), CTX)
    assert verdict.status == "ok" and verdict.accuracy == 0.0
    assert "refused" in verdict.message and why in verdict.message


def test_long_reasoning_with_a_box_at_the_end():
    completion = "Let $x$ be the side; then $x^2 = 16$ and x + 1 = 5. " * 1200 + r"So \boxed{4}."
    assert len(completion) > 60_000
    assert verify_math(completion, "4", MathParams(), CTX).accuracy == 1.0


def test_many_unclosed_boxes_are_no_answer():
    verdict = verify_math(r"\boxed{" * 9000, "4", MathParams(), CTX)
    assert verdict.status == "ok" and verdict.accuracy == 0.0 and verdict.components["predicted"] == 0.0


@pytest.mark.parametrize(
    ("gold", "why"),
    [
        ("", "empty"),
        ("约6米", "cannot be parsed"),  # "about 6 m": a hedge, not a number
        ("???", "cannot be parsed"),
        ("{" * 20 + "1" + "}" * 20, "nested deeper"),
        (r"10^{10^{10}}", "digits"),
    ],
)
def test_unusable_gold_is_an_error(gold, why):
    with pytest.raises(VerifierError, match=why):
        verify_math(r"\boxed{4}", gold, MathParams(), CTX)
    result = score(ScoreItem(verifier="math", completion=r"\boxed{4}", ground_truth=gold))
    assert result.status == "error" and result.reward == 0.0 and why in result.message


def test_works_off_the_main_thread():
    # math-verify's signal.alarm timeout raises ValueError outside the main thread; it must be off there
    out = {}
    worker = threading.Thread(
        target=lambda: out.update(v=verify_math(r"\boxed{\frac{1}{2}}", "0.5", MathParams(), CTX))
    )
    worker.start()
    worker.join()
    assert out["v"].status == "ok" and out["v"].accuracy == 1.0


@pytest.mark.parametrize("name", ["math", "mathverify"])
def test_score_with_weights_and_alias(name):
    completion = closeform(MIDPOINT, "5")  # perfect format, wrong answer
    wrong = score(
        ScoreItem(
            verifier=name,
            completion=completion,
            ground_truth=r"\boxed{4}",
            accuracy_weight=1.0,
            format_weight=0.1,
        )
    )
    assert wrong.status == "ok" and (wrong.accuracy, wrong.format) == (0.0, 1.0)
    assert wrong.reward == pytest.approx(0.1 / 1.1)
    right = score(
        ScoreItem(
            verifier=name,
            completion=closeform(MIDPOINT, "4"),
            ground_truth="4",
            accuracy_weight=1.0,
            format_weight=0.0,
        )
    )
    assert right.reward == 1.0 and right.components == {"predicted": 1.0}
    assert get_verifier(name).name == "math"


def test_format_rule_is_configurable():
    completion = r"<answer>\boxed{4}</answer>"
    assert verify_math(completion, "4", MathParams(), CTX).format == 0.0  # strict newlines
    relaxed = MathParams(format={"mode": "think_answer", "strict_newlines": False})
    assert verify_math(completion, "4", relaxed, CTX).format == 0.5
    assert verify_math(completion, "4", MathParams(format={"mode": "boxed"}), CTX).format == 1.0


@pytest.mark.parametrize(
    "params",
    [{"max_nesting": 100}, {"units": "maybe"}, {"boxed_match_priority": -2}, {"extraction": "any"}],
)
def test_bad_params_are_errors(params):
    result = score(ScoreItem(verifier="math", completion=r"\boxed{4}", ground_truth="4", params=params))
    assert result.status == "error" and "verifier_params" in result.message


def test_defaults_are_v_triune_settings():
    p = parse_params("mathverify", {})
    assert (p.lowercase, p.boxed_match_priority, p.try_extract_without_anchor, p.units) == (
        True,
        0,
        False,
        True,
    )
    assert (p.plain_expressions, p.answer_block, p.format.mode) == (False, False, "think_answer")
