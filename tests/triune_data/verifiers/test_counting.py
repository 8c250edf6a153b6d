"""The `counting` verifier: one integer, read from the answer block, a box or the last number."""

import pytest

from triune_data.errors import VerifierError
from triune_data.verifiers import ScoreItem, VerifyContext, score
from triune_data.verifiers.counting import CountingParams, verify_counting

CTX = VerifyContext()
ITEMS = "There are four distinct objects: a cyan fighter, a red van, a cyan bike and a green bike."


@pytest.mark.parametrize(
    ("completion", "gold", "params", "accuracy", "abs_error"),
    [
        # R1-V SuperCLEVR layouts
        ("<answer>4</answer>", "4", {}, 1.0, 0.0),
        (f"<think>\n    {ITEMS}\n    </think>\n<answer>\n    4\n    </answer>", "4", {}, 1.0, 0.0),
        ("<think>\nA. 10\nB. 9\nB. 9\n</think>\n<answer>\n9\n</answer>", "9", {}, 1.0, 0.0),
        ("<think>\nA. 10\n</think>\n<answer>\n10\n</answer>", "9", {}, 0.0, 1.0),
        ("<think>\nA. 7\nB. 6\nC. 5\n</think>\n<answer>Q</answer>", "7", {}, 0.0, -1.0),  # a letter, not a count
        # words and numerals in the block
        ("<answer>There are 3 cars.</answer>", "3", {}, 1.0, 0.0),
        ("<answer>three</answer>", "3", {}, 1.0, 0.0),
        ("<answer>Twelve</answer>", "12", {}, 1.0, 0.0),
        ("<answer>4 (four)</answer>", "4", {}, 1.0, 0.0),
        ("<answer>3.0</answer>", "3", {}, 1.0, 0.0),
        ("<answer>1,024</answer>", "1024", {}, 1.0, 0.0),
        ("<answer>\\boxed{6}</answer>", "6", {}, 1.0, 0.0),
        ("<answer>I count 5 objects, so \\boxed{6}</answer>", "6", {}, 1.0, 0.0),  # the box inside wins
        # hedging and nonsense in the block: no answer
        ("<answer>2 or 3</answer>", "3", {}, 0.0, -1.0),
        ("<answer>2 red + 3 blue = 5</answer>", "5", {}, 0.0, -1.0),
        ("<answer>1, 2, 3, 4, 5, 6, 7, 8, 9, 10</answer>", "5", {}, 0.0, -1.0),
        ("<answer></answer> 4", "4", {}, 0.0, -1.0),  # the block is the answer even when empty
        # wrong whatever the tolerance
        ("<answer>-3</answer>", "3", {"tolerance": 10}, 0.0, 6.0),
        ("<answer>3.5</answer>", "3", {"tolerance": 1}, 0.0, 0.5),
        ("<answer>" + "9" * 40 + "</answer>", "3", {}, 0.0, 1e9),
        # tolerance
        ("<answer>11</answer>", "10", {"tolerance": 1}, 1.0, 1.0),
        ("<answer>12</answer>", "10", {"tolerance": 1}, 0.0, 2.0),
        # no block: box, else the last number
        ("So the total is \\boxed{7}.", "7", {}, 1.0, 0.0),
        ("I see 2 dogs and 5 cats, 7 animals in total", "7", {}, 1.0, 0.0),
        ("There are three cars in the image.", "3", {}, 1.0, 0.0),
        ("I see 2 red cubes; one is small.", "2", {}, 1.0, 0.0),  # numerals beat number words
        ("<think>\nA. 6\nB. 5\nC. 4\nD. 3\nZ. 5\nY. 3\nZ.", "3", {}, 0.0, -1.0),  # truncated mid-reasoning
        ("<think>\nA. 6\nB. 5\nY. 3\nZ.", "3", {"extract": "last_number"}, 1.0, 0.0),  # explicit: any text
        ("<think>\nFirst I guess \\boxed{2}.\n</think>\nThere are 3.", "3", {}, 1.0, 0.0),  # after </think>
        ("<think>\nA. 8\nB. 7\n</think>\n<answer>\nA. 8\n</answer>", "8", {}, 1.0, 0.0),  # letter + count
        ("I cannot tell.", "2", {}, 0.0, -1.0),
        # explicit extraction modes
        ("<answer>4</answer> and later 5", "5", {"extract": "last_number"}, 1.0, 0.0),
        ("\\boxed{4} <answer>5</answer>", "4", {"extract": "boxed"}, 1.0, 0.0),
        ("There are 4 objects.", "4", {"extract": "answer_tag"}, 0.0, -1.0),
        ("<answer>4</answer>", "4", {"extract": "boxed"}, 0.0, -1.0),
        # gold in Orsta style
        ("<answer>4</answer>", "\\boxed{4}", {}, 1.0, 0.0),
        ("<answer>0</answer>", "0", {}, 1.0, 0.0),
    ],
)  # fmt: skip
def test_counting_table(completion, gold, params, accuracy, abs_error):
    verdict = verify_counting(completion, gold, CountingParams(**params), CTX)
    assert verdict.status == "ok"
    assert verdict.accuracy == accuracy, verdict.message
    assert verdict.components["abs_error"] == abs_error
    assert verdict.components["predicted"] == (0.0 if abs_error == -1.0 else 1.0)


@pytest.mark.parametrize("gold", ["", "three", "-1", "2.5", "4 cars", "1e3", "\\boxed{x}", "1" * 13])
def test_gold_must_be_a_non_negative_integer(gold):
    with pytest.raises(VerifierError, match="not a non-negative integer"):
        verify_counting("<answer>4</answer>", gold, CountingParams(), CTX)
    assert (
        score(ScoreItem(verifier="counting", completion="<answer>4</answer>", ground_truth=gold)).status
        == "error"
    )


def test_score_with_format_weight():
    completion = "<think>\nTwo dogs and a cat.\n</think>\n<answer>\n3\n</answer>"
    result = score(
        ScoreItem(
            verifier="counting",
            completion=completion,
            ground_truth="3",
            accuracy_weight=1.0,
            format_weight=0.5,
        )
    )
    assert (result.status, result.accuracy, result.format, result.reward) == ("ok", 1.0, 1.0, 1.0)
    sloppy = score(
        ScoreItem(
            verifier="counting",
            completion="<answer>3</answer>",
            ground_truth="3",
            accuracy_weight=1.0,
            format_weight=1.0,
        )
    )
    assert (sloppy.format, sloppy.reward) == (0.0, 0.5)  # V-Triune's newline-sensitive tag checks


@pytest.mark.parametrize("params", [{"tolerance": -1}, {"extract": "first_number"}, {"tol": 1}])
def test_bad_params_are_errors(params):
    result = score(
        ScoreItem(verifier="counting", completion="<answer>3</answer>", ground_truth="3", params=params)
    )
    assert result.status == "error" and "verifier_params" in result.message


def test_adversarial_inputs_stay_linear():
    # thousands of unclosed tags and boxes, and a huge run of digits: still one quick verdict
    completion = "<answer>" * 4000 + "\\boxed{" * 4000 + "7" * 20_000
    verdict = verify_counting(completion, "7", CountingParams(), CTX)
    assert verdict.status == "ok" and verdict.accuracy == 0.0
