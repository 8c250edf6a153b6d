"""The `mcq` verifier: one option, named by label or text; naming several is no answer."""

import pytest

from triune_data.errors import VerifierError
from triune_data.verifiers import ScoreItem, VerifyContext, score
from triune_data.verifiers.mcq import McqParams, verify_mcq

CTX = VerifyContext()
ANGLES = McqParams(options=["135°", "140°", "145°", "150°"])  # MathVista-style geometry choices, gold C
YES_NO = McqParams(options=["Yes", "No"])
SCIENCE = McqParams(options=["weather", "climate"])  # ScienceQA-style two-way choice, gold B
SAMPLES = McqParams(options=["neither; the samples have the same temperature", "sample A", "sample B"])

BARD = (
    "The correct answer is **(C) 145°**.\n\nSince the angle bisectors of angles B and C intersect at point O, "
    "then ∠BOC = 90° + ∠A/2 = 90° + 110°/2 = **145°**.\n\nI hope this helps!"
)
BARD_WRONG_LETTER = (
    "The answer is (D).\n\nSince D is the midpoint of AC, then AD = DC. Therefore AC = 11.0 cm, answer (D)."
)


@pytest.mark.parametrize(
    ("completion", "gold", "params", "accuracy", "predicted"),
    [
        # label forms
        ("C", "C", ANGLES, 1.0, 1.0),
        ("(C)", "C", ANGLES, 1.0, 1.0),
        ("C.", "C", ANGLES, 1.0, 1.0),
        ("c", "C", ANGLES, 1.0, 1.0),
        ("Answer: C", "C", ANGLES, 1.0, 1.0),
        ("The answer is C", "C", ANGLES, 1.0, 1.0),
        ("\\boxed{C}", "C", ANGLES, 1.0, 1.0),
        ("\\boxed{\\text{(C)}}", "C", ANGLES, 1.0, 1.0),
        ("<think>\nBOC = 90 + A/2 = 145.\n</think>\n<answer>\nC\n</answer>", "C", ANGLES, 1.0, 1.0),
        ("<think>\nBOC = 90 + A/2 = 145.\n</think>\n<answer>\n\\boxed{C}\n</answer>", "C", ANGLES, 1.0, 1.0),
        ("<answer>B</answer>", "C", ANGLES, 0.0, 1.0),
        # option text, alone or with its label
        ("145°", "C", ANGLES, 1.0, 1.0),
        ("<answer>(C) 145°</answer>", "C", ANGLES, 1.0, 1.0),
        ("<answer>145°</answer>", "145°", ANGLES, 1.0, 1.0),
        ("\\boxed{145°}", "C", ANGLES, 1.0, 1.0),
        # free text (MathVista Bard, ScienceQA GPT-3): the sentence after "answer is"
        (BARD, "C", ANGLES, 1.0, 1.0),
        (BARD_WRONG_LETTER, "C", ANGLES, 0.0, 1.0),
        ("The correct answer is (B), No.\n\nThere are zero tiny gray bicycles.", "Yes", YES_NO, 0.0, 1.0),
        ("The correct answer is (A), Yes.\n\nThe bus is larger than the car.", "Yes", YES_NO, 1.0, 1.0),
        ("The answer is B. BECAUSE: A place's climate is the pattern of weather over many years.", "B", SCIENCE, 1.0, 1.0),
        ("The answer is A. BECAUSE: Weather is what the atmosphere is like at one time.", "B", SCIENCE, 0.0, 1.0),
        ("Looking at the figure, I think the answer is c.", "C", ANGLES, 1.0, 1.0),
        ("The best option is: climate", "B", SCIENCE, 1.0, 1.0),
        ("The answer is **(B) sample A**.\n\nThe kinetic energy is higher.", "sample A", SAMPLES, 1.0, 1.0),
        ("The answer is (B).\n\nSince KL is tangent, $x = MO = \\boxed{2\\sqrt{15}}$.", "B", ANGLES, 1.0, 1.0),
        ("Based on the given information, we can determine that ∠C = 85°.", "C", ANGLES, 0.0, 0.0),  # prose
        # several options named: no answer
        ("A or B", "A", ANGLES, 0.0, 0.0),
        ("<answer>A, B, C, D</answer>", "C", ANGLES, 0.0, 0.0),
        ("\\boxed{C, D}", "C", ANGLES, 0.0, 0.0),
        ("<answer>(C) 140°</answer>", "C", ANGLES, 0.0, 0.0),  # label and text disagree
        ("The answer is 145° or 150°.", "C", ANGLES, 0.0, 0.0),
        ("<answer>weather and climate</answer>", "B", SCIENCE, 0.0, 0.0),
        # nothing usable
        ("", "C", ANGLES, 0.0, 0.0),
        ("<answer>E</answer>", "C", ANGLES, 0.0, 0.0),  # no option E
        ("<answer>I am not sure.</answer>", "C", ANGLES, 0.0, 0.0),
        ("Sure, I can help with that. " * 10 + "Angle BOC is half of the sum.", "C", ANGLES, 0.0, 0.0),
        ("<answer>C", "C", ANGLES, 1.0, 1.0),  # unclosed block: a short bare answer is still read
    ],
)  # fmt: skip
def test_mcq_table(completion, gold, params, accuracy, predicted):
    verdict = verify_mcq(completion, gold, params, CTX)
    assert verdict.status == "ok"
    assert verdict.accuracy == accuracy, verdict.message
    assert verdict.components["predicted"] == predicted


def test_hedging_is_reported():
    verdict = verify_mcq("<answer>A, B, C, D</answer>", "C", ANGLES, CTX)
    assert verdict.components == {"predicted": 0.0, "ambiguous": 1.0}
    assert "several options (A, B, C, D)" in verdict.message


def test_single_letter_labels_are_read_in_upper_case_only():
    seven = McqParams(options=[f"{n} apples" for n in range(1, 8)])  # labels A..G
    assert verify_mcq("<answer>I see a bowl with 7 apples</answer>", "G", seven, CTX).accuracy == 1.0
    # with nine options the pronoun "I" is label I: a known limit of reading labels in prose
    nine = McqParams(options=[f"{n} apples" for n in range(1, 10)])
    assert verify_mcq("<answer>I see a bowl with 7 apples</answer>", "G", nine, CTX).accuracy == 0.0


def test_custom_labels_and_longer_option_texts_first():
    params = McqParams(options=["red", "dark red", "blue"], labels=["1", "2", "3"])
    assert verify_mcq("<answer>dark red</answer>", "2", params, CTX).accuracy == 1.0
    assert verify_mcq("<answer>It is dark red.</answer>", "dark red", params, CTX).accuracy == 1.0
    assert verify_mcq("Answer: (3)", "blue", params, CTX).accuracy == 1.0
    assert verify_mcq("<answer>B</answer>", "2", params, CTX).components["predicted"] == 0.0


@pytest.mark.parametrize(
    ("gold", "options", "why"),
    [
        ("E", ["1", "2", "3", "4"], "matches no option"),
        ("five", ["1", "2", "3", "4"], "matches no option"),
        ("(F)", ["(a)", "(b)", "(c)", "(d)", "(e)"], "matches no option"),
    ],
)
def test_unusable_gold_is_an_error(gold, options, why):
    with pytest.raises(VerifierError, match=why):
        verify_mcq("A", gold, McqParams(options=options), CTX)
    result = score(ScoreItem(verifier="mcq", completion="A", ground_truth=gold, params={"options": options}))
    assert result.status == "error" and why in result.message


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"options": ["only one"]},
        {"options": [str(i) for i in range(27)]},
        {"options": ["a", " "]},
        {"options": ["x", "y"], "labels": ["A"]},
        {"options": ["x", "y"], "labels": ["A", "a"]},
        {"options": ["x", "y"], "answer": "A"},
        {"options": ["red", "Red", "blue"]},  # the same option twice: a gold "red" would be ambiguous
        {"options": ["(a)", "a"]},
    ],
)
def test_bad_params_are_errors(params):
    result = score(ScoreItem(verifier="mcq", completion="A", ground_truth="A", params=params))
    assert result.status == "error" and "verifier_params" in result.message


def test_score_combines_format():
    completion = "<think>\nThe climate is the long-term pattern.\n</think>\n<answer>\nB\n</answer>"
    params = {"options": ["weather", "climate"]}
    result = score(
        ScoreItem(
            verifier="mcq",
            completion=completion,
            ground_truth="B",
            params=params,
            accuracy_weight=1.0,
            format_weight=0.1,
        )
    )
    assert (result.status, result.accuracy, result.format, result.reward) == ("ok", 1.0, 1.0, 1.0)
    result = score(
        ScoreItem(
            verifier="mcq",
            completion="A",
            ground_truth="B",
            params=params,
            accuracy_weight=1.0,
            format_weight=0.1,
        )
    )
    assert result.reward == 0.0 and result.components == {"predicted": 1.0, "ambiguous": 0.0}


LETTERS = McqParams(options=["(a)", "(b)", "(c)", "(d)", "(e)"])  # option texts that look like labels
SHUFFLED = McqParams(options=["B", "A", "D", "C"])  # "Which point is the centre?": letters as texts


@pytest.mark.parametrize(
    ("completion", "gold", "params", "accuracy"),
    [
        # a bare label is read as the label first, for the gold and for the answer alike
        ("<answer>C</answer>", "C", LETTERS, 1.0),
        ("<answer>(c)</answer>", "C", LETTERS, 1.0),
        ("<answer>(c)</answer>", "(c)", LETTERS, 1.0),
        ("The answer is (c).", "c", LETTERS, 1.0),
        ("<answer>D</answer>", "(c)", LETTERS, 0.0),
        ("<answer>A</answer>", "A", SHUFFLED, 1.0),  # label A (the option "B") on both sides
        ("<answer>B</answer>", "A", SHUFFLED, 0.0),
        ("\\boxed{D}", "D", SHUFFLED, 1.0),
        ("<answer>The centre is point A.</answer>", "A", SHUFFLED, 1.0),
    ],
)
def test_labels_are_read_first_when_option_texts_look_like_labels(completion, gold, params, accuracy):
    verdict = verify_mcq(completion, gold, params, CTX)
    assert (verdict.status, verdict.accuracy) == ("ok", accuracy), verdict.message


@pytest.mark.parametrize("gold", ["A", "(a)", "a", "\\boxed{A}"])
def test_a_gold_letter_that_is_also_an_option_text_is_a_label(gold):
    result = score(
        ScoreItem(
            verifier="mcq", completion="<answer>A</answer>", ground_truth=gold, params={"options": ["B", "A"]}
        )
    )
    assert (result.status, result.accuracy, result.prediction) == ("ok", 1.0, "A")
