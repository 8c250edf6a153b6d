"""`task_cap`: at most `max_rows` rows per task (per split with `per_split`)."""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.filters.caps import cap_rows


@register_filter
class TaskCap(Filter):
    """Rows of a task beyond `max_rows`; which ones is a seeded choice, stable across reruns."""

    name: ClassVar[str] = "task_cap"
    columns: ClassVar[tuple[str, ...]] = ("id", "task", "split")

    max_rows: int = Field(ge=0, description="Rows kept per task (per split with per_split).")
    per_split: bool = Field(False, description="Cap each (task, split) on its own.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        by = ["task", "split"] if self.per_split else ["task"]
        return cap_rows(rows, by, self.max_rows, ctx.seed)
