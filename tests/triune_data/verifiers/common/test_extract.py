"""Answer extraction helpers: Markdown emphasis, balanced braces; and emphasis in every text verifier."""

import pytest

from triune_data.verifiers import ScoreItem, score
from triune_data.verifiers.common.extract import braces_balanced, strip_emphasis


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("the answer is **32**", "the answer is 32"),
        ("The answer is __32__.", "The answer is 32."),
        ("the answer is *32*", "the answer is 32"),
        ("the answer is _32_", "the answer is 32"),
        ("***32***", "32"),
        ("**Answer:** 32", "Answer: 32"),
        ("**(C) 145°**", "(C) 145°"),
        ("<answer>**STOP**</answer>", "<answer>STOP</answer>"),
        # not emphasis
        ("2*3*4", "2*3*4"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("a**2 + b**2", "a**2 + b**2"),
        ("x_1 and y_1", "x_1 and y_1"),
        ("\\mathbf{v}_{1} + \\mathbf{w}_{2}", "\\mathbf{v}_{1} + \\mathbf{w}_{2}"),
        ("x^{2}_1 + y^{2}_1", "x^{2}_1 + y^{2}_1"),
        ("z^* w^*", "z^* w^*"),
        ("** 32 **", "** 32 **"),
        ("**32", "**32"),
    ],
)
def test_strip_emphasis_table(text, stripped):
    assert strip_emphasis(text) == stripped


def test_strip_emphasis_is_linear_on_hostile_input():
    text = "**a" * 20_000 + "_b" * 20_000
    assert strip_emphasis(text) == text  # nothing closes: returns at once rather than backtracking


@pytest.mark.parametrize(
    ("text", "balanced"),
    [
        ("\\frac{3}{4}", True),
        ("\\frac{", False),
        ("}{", False),
        ("\\{1, 2\\}", True),
        ("\\\\{x}", True),
        ("", True),
    ],
)
def test_braces_balanced(text, balanced):
    assert braces_balanced(text) is balanced


EMPHASISED = ["the answer is **32**", "The answer is __32__.", "Final answer: *32*", "**Answer:** 32"]


@pytest.mark.parametrize(
    ("verifier", "params", "wrap"),
    [
        ("math", {"plain_expressions": True}, "{}"),
        ("math", {"answer_block": True}, "<answer>{}</answer>"),
        ("counting", {}, "{}"),
        ("ocr", {}, "<answer>{}</answer>"),
        ("mcq", {"options": ["10", "32", "5"]}, "{}"),
    ],
)
@pytest.mark.parametrize("completion", EMPHASISED)
def test_emphasis_around_an_answer_is_not_part_of_it(verifier, params, wrap, completion):
    if verifier == "ocr" or (verifier == "math" and "answer_block" in params):
        completion = completion.split(" ")[-1].rstrip(".")  # these read the block whole: the answer alone
    result = score(
        ScoreItem(verifier=verifier, completion=wrap.format(completion), ground_truth="32", params=params)
    )
    assert (result.status, result.accuracy) == ("ok", 1.0), (completion, result.prediction, result.message)
    assert result.prediction in ("32", "B")
