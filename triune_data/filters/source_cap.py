"""`source_cap`: at most `max_rows` rows per data_source (per split with `per_split`)."""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.filters.caps import cap_rows


@register_filter
class SourceCap(Filter):
    """Rows of a data_source beyond `max_rows`; which ones is a seeded choice, stable across reruns."""

    name: ClassVar[str] = "source_cap"
    columns: ClassVar[tuple[str, ...]] = ("id", "data_source", "split")

    max_rows: int = Field(ge=0, description="Rows kept per data_source (per split with per_split).")
    per_split: bool = Field(False, description="Cap each (data_source, split) on its own.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        by = ["data_source", "split"] if self.per_split else ["data_source"]
        return cap_rows(rows, by, self.max_rows, ctx.seed)
