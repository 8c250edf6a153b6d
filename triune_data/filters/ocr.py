"""OCR rules of V-Triune's filter (paper §5.1.1.1, Fig. 9): English only, verifiable labels.

Both read the `answer` column: the text expected in the image (the ground truth may wrap it).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import polars as pl
from pydantic import Field

from triune_data.filters._columns import select_rowwise
from triune_data.filters._scope import default_tasks
from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.types import Task

Script = Literal[
    "Latin", "Greek", "Cyrillic", "Han", "Hiragana", "Katakana", "Hangul", "Arabic", "Hebrew",
    "Devanagari", "Thai",
]  # fmt: skip


@register_filter
class OcrLanguage(Filter):
    """Expected text with a letter outside the allowed `scripts` (V-Triune §5.1.1.1: English only).

    Letters are checked by Unicode script; digits, punctuation and symbols are in every language.
    The default, Latin, is the nearest rule-checkable stand-in for "English".
    """

    name: ClassVar[str] = "ocr_language"
    columns: ClassVar[tuple[str, ...]] = ("answer",)
    tasks: list[Task] | None = default_tasks("ocr")
    scripts: list[Script] = Field(
        default=["Latin"], min_length=1, description="Unicode scripts letters may be in."
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        allowed = "".join(rf"\p{{{s}}}" for s in self.scripts)
        found = rows["answer"].str.extract(rf"([\p{{L}}--[{allowed}]])", 1)
        scripts = "/".join(self.scripts)
        detail = rows.select(pl.lit("'") + found + pl.lit(f"' is not {scripts}")).to_series()
        return Verdict(found.is_not_null(), detail=detail)


# Labels that say the text could not be read (ICDAR's "###", TextVQA's "unanswerable", ...).
PLACEHOLDERS = (
    "###",
    "unanswerable",
    "unreadable",
    "illegible",
    "[illegible]",
    "<unk>",
    "[unk]",
    "n/a",
    "handwritten",
    "[handwritten]",
)


@register_filter
class OcrVerifiable(Filter):
    """Expected text no rule can check: empty, no letter or digit, a placeholder, or too long.

    V-Triune §5.1.1.1 keeps only OCR labels its rule verifier can check; a label that is only
    punctuation, says the text is unreadable, or runs past `max_chars` (exact match of a long
    transcription rewards nothing) cannot be.
    """

    name: ClassVar[str] = "ocr_verifiable"
    columns: ClassVar[tuple[str, ...]] = ("answer",)
    tasks: list[Task] | None = default_tasks("ocr")
    max_chars: int = Field(default=100, ge=1, description="Longest expected text kept, in characters.")
    placeholders: list[str] = Field(
        default_factory=lambda: list(PLACEHOLDERS),
        description="Labels that mean 'unreadable' (compared case-insensitively, spaces trimmed).",
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        text = pl.col("answer").str.strip_chars()
        folded = text.str.to_lowercase()
        chars = text.str.len_chars()
        placeholders = sorted({p.strip().lower() for p in self.placeholders})
        detail = select_rowwise(
            rows,
            pl.when(text.is_null() | (text == ""))
            .then(pl.lit("empty"))
            .when(folded.is_in(placeholders))
            .then(pl.lit("placeholder '") + text + pl.lit("'"))
            .when(text.str.contains(r"[\p{L}\p{N}]").not_())
            .then(pl.lit("no letter or digit in '") + text.str.slice(0, 20) + pl.lit("'"))
            .when(chars > self.max_chars)
            .then(chars.cast(pl.Utf8) + pl.lit(" chars"))
            .alias("detail"),
        ).to_series()
        return Verdict(detail.is_not_null(), detail=detail)
