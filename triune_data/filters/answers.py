"""Answer rules of V-Triune's reasoning filter (paper §5.1.1.1, Fig. 9): choice questions, answers
with symbols math-verify misreads, long answers.

All three read the `answer` column (the plain answer; `ground_truth` may wrap it for a verifier).
A null answer is kept: there is nothing to judge, and `gold_verifies` reports unusable golds.
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters._columns import select_rowwise
from triune_data.filters._scope import default_tasks
from triune_data.filters.base import REASONING_TASKS, Context, Filter, Verdict, register_filter
from triune_data.types import Task

# Two or more option markers at line starts ("A. 3", "(B) 4", "C: 5") make a list of options.
_OPTION_MARKER = r"(?m)^\s*(?:\(\s*[A-H]\s*\)|[A-H]\s*[.):：])"
# "Choices:", "Options:", "Answer choices" name a list of options even when it is written inline.
_OPTION_HEADER = r"(?i)\b(?:choices|options)\s*[:：]"
# A bare option letter as the whole answer: "B", "(B)", "B.", \boxed{B}.
_LETTER_ANSWER = r"^\s*(?:\\boxed\{\s*)?\(?\s*[A-H]\s*\)?\.?\s*\}?\s*$"
_TRUE_FALSE = ("yes", "no", "true", "false")


@register_filter
class ChoiceAnswers(Filter):
    """Multiple-choice or true/false item (V-Triune §5.1.1.1 drops both: a guess scores too often)."""

    name: ClassVar[str] = "choice_answers"
    columns: ClassVar[tuple[str, ...]] = ("prompt", "answer", "reward")
    tasks: list[Task] | None = default_tasks(*REASONING_TASKS)
    multiple_choice: bool = Field(default=True, description="Drop multiple-choice items.")
    true_false: bool = Field(default=True, description="Drop items answered yes/no or true/false.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        mc, tf = pl.lit(self.multiple_choice), pl.lit(self.true_false)
        answer = pl.col("answer").fill_null("").str.strip_chars()
        text = pl.col("prompt").list.eval(pl.element().struct.field("content")).list.join("\n").fill_null("")
        folded = answer.str.strip_chars(".").str.to_lowercase()
        detail = select_rowwise(
            rows,
            pl.when(mc & (pl.col("reward").struct.field("verifier") == "mcq").fill_null(False))
            .then(pl.lit("multiple choice (mcq verifier)"))
            .when(mc & answer.str.contains(_LETTER_ANSWER))
            .then(pl.lit("multiple choice (answer ") + answer + pl.lit(" is an option)"))
            .when(mc & ((text.str.count_matches(_OPTION_MARKER) >= 2) | text.str.contains(_OPTION_HEADER)))
            .then(pl.lit("multiple choice (the prompt lists options)"))
            .when(tf & folded.is_in(_TRUE_FALSE))
            .then(pl.lit("true/false (answer ") + answer + pl.lit(")"))
            .alias("detail"),
        ).to_series()
        return Verdict(detail.is_not_null(), detail=detail)


def symbol_class(symbols: str) -> str:
    """A regex character class of `symbols` ("" matches nothing)."""
    return "[" + "".join(re.escape(c) for c in symbols) + "]"


@register_filter
class AnswerSymbols(Filter):
    """Answer containing one of `symbols` (default = [ ] ( ) ;, which math-verify misreads; §5.1.1.1)."""

    name: ClassVar[str] = "answer_symbols"
    columns: ClassVar[tuple[str, ...]] = ("answer",)
    tasks: list[Task] | None = default_tasks(*REASONING_TASKS)
    symbols: str = Field(default="=[]();", min_length=1, description="Characters an answer must not contain.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        found = rows["answer"].str.extract("(" + symbol_class(self.symbols) + ")", 1)
        detail = rows.select(pl.lit("contains '") + found + pl.lit("'")).to_series()
        return Verdict(found.is_not_null(), detail=detail)


@register_filter
class AnswerChars(Filter):
    """Answer longer than `max_chars` characters, surrounding spaces aside (§5.1.1.1: over 20)."""

    name: ClassVar[str] = "answer_chars"
    columns: ClassVar[tuple[str, ...]] = ("answer",)
    tasks: list[Task] | None = default_tasks(*REASONING_TASKS)
    max_chars: int = Field(default=20, ge=1, description="Longest answer kept, in characters.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        chars = rows["answer"].str.strip_chars().str.len_chars()
        return Verdict((chars > self.max_chars).fill_null(False), detail=chars.cast(pl.Utf8) + " chars")
