"""Format rewards: V-Triune's newline-sensitive tag rules, the relaxed variant, and the `format` verifier."""

import pytest

from triune_data.verifiers import ScoreItem, VerifyContext, score
from triune_data.verifiers.common import extract
from triune_data.verifiers.common.extract import answer_block
from triune_data.verifiers.format import FormatOnlyParams, FormatSpec, format_score, verify_format

# Completions in the layouts models actually emit (R1-V, VLM-R1, Orsta closeform prompts).
CLOSEFORM = "<think>\nBD = 1 and D is the midpoint, so AB = 4.\n</think>\n<answer>\n\\boxed{4}\n</answer>"
R1V_INLINE = "<think>Angle CED = 180 - 40 = 140.</think>\n<answer>140</answer>"
R1V_SPACED = "<think> CD is parallel to AB, so angle CDB = 35. </think> <answer>35</answer>"
VLMR1_DET = (
    "<think>\nThe table with bananas is at the bottom.\n</think>\n\n<answer>\n```json\n"
    '[\n\t{"bbox_2d": [0, 134, 644, 415], "label": "table"}\n]\n```json\n</answer>'
)
SUPERCLEVR = "<think>\n    There are four objects.\n    </think>\n<answer>\n    4\n    </answer>"
NO_THINK = "<answer>\n4\n</answer>"
ANSWER_FIRST = "<answer>\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}]\n</answer>"
TWO_ANSWERS = "<think>\nx\n</think>\n<answer>\n3\n</answer>\n<answer>\n4\n</answer>"
DOUBLE_THINK = "<think>\na\n</think>\n<think>\nb\n</think>\n<answer>\n4\n</answer>"
UNCLOSED = "<think>\nThe count is 4\n</think>\n<answer>\n4"
BOXED_ONLY = "The length is \\boxed{4}."
PLAIN = "The answer is 4."


@pytest.mark.parametrize(
    ("completion", "mode", "strict", "expected"),
    [
        # think_answer (paper Eq. 4 with the code's newlines): 0.25 per tag check
        (CLOSEFORM, "think_answer", True, 1.0),
        (SUPERCLEVR, "think_answer", True, 0.5),  # indented closing tags miss "\n</think>\n", "\n</answer>"
        (SUPERCLEVR, "think_answer", False, 1.0),
        (VLMR1_DET, "think_answer", True, 1.0),
        (R1V_INLINE, "think_answer", True, 0.0),
        (R1V_INLINE, "think_answer", False, 1.0),
        (R1V_SPACED, "think_answer", True, 0.0),
        (R1V_SPACED, "think_answer", False, 1.0),
        (NO_THINK, "think_answer", True, 0.25),  # "\n</answer>" only: "<answer>" starts the text
        (TWO_ANSWERS, "think_answer", True, 0.5),
        (DOUBLE_THINK, "think_answer", True, 0.5),
        (UNCLOSED, "think_answer", True, 0.75),
        (PLAIN, "think_answer", True, 0.0),
        ("", "think_answer", False, 0.0),
        # answer_block (V-Triune's detection rule, without its box-parse check)
        (CLOSEFORM, "answer_block", True, 1.0),
        (VLMR1_DET, "answer_block", True, 1.0),
        (ANSWER_FIRST, "answer_block", True, 0.0),  # docs/vtriune.md §3: starting with <answer> scores 0
        (ANSWER_FIRST, "answer_block", False, 1.0),
        (TWO_ANSWERS, "answer_block", True, 0.0),  # "\n</answer>" must occur exactly once
        (UNCLOSED, "answer_block", True, 0.0),
        (R1V_INLINE, "answer_block", False, 1.0),
        # boxed and none
        (BOXED_ONLY, "boxed", True, 1.0),
        (CLOSEFORM, "boxed", True, 1.0),
        (PLAIN, "boxed", True, 0.0),
        (CLOSEFORM, "none", True, 0.0),
    ],
)
def test_format_score_table(completion, mode, strict, expected):
    assert format_score(completion, FormatSpec(mode=mode, strict_newlines=strict)) == expected


@pytest.mark.parametrize(
    ("completion", "block"),
    [
        (CLOSEFORM, "\n\\boxed{4}\n"),
        (R1V_INLINE, "140"),
        (TWO_ANSWERS, "\n3\n"),  # the first block
        (UNCLOSED, None),
        ("</answer> then <answer>5</answer>", "5"),
        ("<answer><answer>6</answer>", "<answer>6"),
        ("<answer>" * 50 + "</answer>", "<answer>" * 49),
        (PLAIN, None),
        ("", None),
    ],
)
def test_answer_block(completion, block):
    assert answer_block(completion) == block
    # the one scanner every verifier uses (text and box verifiers alike)
    assert extract.answer_block(completion) == block


def test_format_verifier_through_score():
    result = score(ScoreItem(verifier="format", completion=CLOSEFORM, ground_truth="ignored"))
    assert (result.status, result.accuracy, result.format, result.reward) == ("ok", 1.0, 1.0, 1.0)
    relaxed = {"format": {"mode": "think_answer", "strict_newlines": False}}
    assert (
        score(ScoreItem(verifier="format", completion=R1V_SPACED, ground_truth="", params=relaxed)).reward
        == 1.0
    )
    half = score(
        ScoreItem(
            verifier="format", completion=TWO_ANSWERS, ground_truth="", accuracy_weight=1.0, format_weight=1.0
        )
    )
    assert (half.accuracy, half.format, half.reward) == (0.5, 0.5, 0.5)


def test_format_verifier_direct_call():
    verdict = verify_format(NO_THINK, "", FormatOnlyParams(), VerifyContext())
    assert (verdict.accuracy, verdict.format, verdict.status) == (0.25, 0.25, "ok")


@pytest.mark.parametrize(
    "params",
    [{"format": {"mode": "tags"}}, {"format": {"strict": True}}, {"mode": "boxed"}, {"format": "boxed"}],
)
def test_bad_format_params_are_errors(params):
    result = score(ScoreItem(verifier="format", completion=CLOSEFORM, ground_truth="", params=params))
    assert result.status == "error" and "verifier_params" in result.message


def test_default_spec_is_think_answer_strict():
    spec = FormatSpec()
    assert (spec.mode, spec.strict_newlines) == ("think_answer", True)
