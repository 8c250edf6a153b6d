"""Phrase rule of V-Triune's grounding filter (paper §5.1.1.1, Fig. 9: "complex phrase labels").

The paper names the rule but fixes no threshold; this one measures a referring expression (a
grounding box's label) by its words and by the words that join clauses or objects into one
expression ("the man who holds a cup and wears a hat" joins three). Defaults: 1 to 10 words
(RefCOCO's expressions average under 4 words, RefCOCOg's about 8) and at most one joining word.
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters._columns import select_rowwise
from triune_data.filters._scope import default_tasks
from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.types import Task

# Words that join clauses or several objects into one expression.
JOINING_WORDS = ("which", "that", "who", "whom", "whose", "where", "while", "when", "and", "or", "but")


@register_filter
class PhraseComplexity(Filter):
    """Referring expression with no word, more than `max_words` words or `max_joins` joining words."""

    name: ClassVar[str] = "phrase_complexity"
    columns: ClassVar[tuple[str, ...]] = ("boxes",)
    tasks: list[Task] | None = default_tasks("grounding")
    min_words: int = Field(
        default=1, ge=1, description="Fewest words (containing a letter) an expression has."
    )
    max_words: int = Field(default=10, ge=1, description="Most words an expression may have.")
    max_joins: int = Field(default=1, ge=0, description="Most joining words (`joining_words`) it may have.")
    joining_words: list[str] = Field(
        default_factory=lambda: list(JOINING_WORDS), description="Words that join clauses or objects."
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        joins = r"(?i)\b(?:" + "|".join(re.escape(w) for w in self.joining_words) + r")\b"
        labels = (
            rows.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), "boxes")
            .explode("boxes")
            .filter(pl.col("boxes").is_not_null())
            .select("_i", pl.col("boxes").struct.field("label").fill_null("").alias("label"))
            .unique(maintain_order=True)
        )
        label = pl.col("label")
        words = label.str.count_matches(r"\S*\p{L}\S*")
        joined = label.str.count_matches(joins) if self.joining_words else pl.lit(0)
        shown = pl.lit("'") + label.str.slice(0, 60) + pl.lit("'")
        judged = select_rowwise(
            labels,
            pl.col("_i"),
            pl.when(words < self.min_words)
            .then(pl.format("{} has {} words (min {})", shown, words, pl.lit(self.min_words)))
            .when(words > self.max_words)
            .then(pl.format("{} has {} words (max {})", shown, words, pl.lit(self.max_words)))
            .when(joined > self.max_joins)
            .then(pl.format("{} has {} joining words (max {})", shown, joined, pl.lit(self.max_joins)))
            .alias("detail"),
        )
        first = judged.drop_nulls("detail").group_by("_i", maintain_order=True).first()
        detail = (
            rows.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"))
            .join(first, on="_i", how="left")
            .sort("_i")["detail"]
        )
        return Verdict(detail.is_not_null(), detail=detail)
