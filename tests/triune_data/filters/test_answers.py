"""choice_answers, answer_symbols, answer_chars: exact drops and details on hand-made rows."""

from pathlib import Path

import polars as pl
import pytest

from tests.triune_data.filters._rows import context, outcome, rows, sample, with_null
from triune_data.filters.answers import AnswerChars, AnswerSymbols, ChoiceAnswers

MCQ = '{"options": ["3", "4", "5"]}'


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"answer": "4"}, None),
        ({"answer": "B"}, "multiple choice (answer B is an option)"),
        ({"answer": "(C)"}, "multiple choice (answer (C) is an option)"),
        ({"answer": "\\boxed{D}"}, "multiple choice (answer \\boxed{D} is an option)"),
        ({"answer": "x"}, None),  # a lower-case letter is a variable, not an option
        ({"answer": "4", "verifier": "mcq", "params": MCQ}, "multiple choice (mcq verifier)"),
        ({"question": "<image>How many?\nA. 3\nB. 4\nC. 5"}, "multiple choice (the prompt lists options)"),
        ({"question": "<image>How many?\n(A) 3\n(B) 4"}, "multiple choice (the prompt lists options)"),
        ({"question": "<image>How many? Choices: 3, 4, 5"}, "multiple choice (the prompt lists options)"),
        ({"question": "<image>Point A. is where?"}, None),  # one marker is not a list of options
        ({"answer": "Yes"}, "true/false (answer Yes)"),
        ({"answer": " false. "}, "true/false (answer false.)"),
        ({"answer": "Not sure"}, None),
    ],
)
def test_choice_answers(tmp_path: Path, kwargs: dict, expected: str | None) -> None:
    verdict = ChoiceAnswers().apply(rows(sample(**kwargs)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_choice_answers_switches(tmp_path: Path) -> None:
    batch = rows(sample("a", answer="B"), sample("b", answer="no"))
    ctx = context(tmp_path)
    assert outcome(ChoiceAnswers(multiple_choice=False).apply(batch, ctx)) == [
        (False, None),
        (True, "true/false (answer no)"),
    ]
    assert outcome(ChoiceAnswers(true_false=False).apply(batch, ctx)) == [
        (True, "multiple choice (answer B is an option)"),
        (False, None),
    ]


def test_choice_answers_null_answer_and_prompt_kept(tmp_path: Path) -> None:
    batch = with_null(with_null(rows(sample("a"), sample("b", answer="yes")), "answer"), "prompt")
    assert outcome(ChoiceAnswers().apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "true/false (answer yes)"),
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("4", None),
        ("x=5", "contains '='"),
        ("[1, 2]", "contains '['"),
        ("(3, 4)", "contains '('"),
        ("a; b", "contains ';'"),
        ("f(x)", "contains '('"),
        ("\\frac{1}{2}", None),
        ("", None),
    ],
)
def test_answer_symbols(tmp_path: Path, answer: str, expected: str | None) -> None:
    verdict = AnswerSymbols().apply(rows(sample(answer=answer)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_answer_symbols_custom_set_and_null(tmp_path: Path) -> None:
    batch = with_null(rows(sample("a"), sample("b", answer="3 + 4"), sample("c", answer="x=1")), "answer")
    assert outcome(AnswerSymbols(symbols="+").apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "contains '+'"),
        (False, None),
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("4", None),
        ("a" * 20, None),
        ("a" * 21, "21 chars"),
        ("  " + "a" * 20 + "  ", None),  # surrounding spaces are not the answer
        ("é" * 21, "21 chars"),  # characters, not bytes
        ("", None),
    ],
)
def test_answer_chars(tmp_path: Path, answer: str, expected: str | None) -> None:
    verdict = AnswerChars().apply(rows(sample(answer=answer)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_answer_chars_param_and_null(tmp_path: Path) -> None:
    batch = with_null(rows(sample("a", answer="12345"), sample("b", answer="123456")), "answer")
    verdict = AnswerChars(max_chars=5).apply(batch, context(tmp_path))
    assert outcome(verdict) == [(False, None), (True, "6 chars")]
    assert verdict.drop.dtype == pl.Boolean and verdict.detail is not None and verdict.detail.dtype == pl.Utf8


def test_reasoning_scope_by_default() -> None:
    for cls in (ChoiceAnswers, AnswerSymbols, AnswerChars):
        assert cls().tasks == ["math", "puzzle", "science", "chart"]
