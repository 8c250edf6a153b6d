"""`duplicate`: write rows `factor` times (V-Triune doubles its puzzle data, paper §5.1.1)."""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.filters.caps import COPY_SUFFIX, base_ids
from triune_data.types import Task

PUZZLE: list[Task] = ["puzzle"]  # V-Triune doubles its puzzle data


@register_filter
class Duplicate(Filter):
    """Drops nothing: writes each row in scope `factor` times (copies get the id `{id}~{k}`)."""

    name: ClassVar[str] = "duplicate"
    drops: ClassVar[bool] = False
    columns: ClassVar[tuple[str, ...]] = ("id",)

    tasks: list[Task] | None = Field(PUZZLE, description="Only rows of these tasks (default: puzzle).")
    factor: int = Field(2, ge=1, le=100, description="Times each row is written (1: once, as it is).")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        # Idempotent: a row whose copies are already there (ids `{id}~{k}`) is not copied again.
        ids = rows["id"]
        base = base_ids(ids)
        is_copy = ids.str.contains(COPY_SUFFIX)
        have = pl.DataFrame({"b": base}).select(pl.len().over("b"))["len"]
        fresh = ~is_copy & (have == 1)
        copies = pl.select(pl.when(fresh).then(self.factor).otherwise(1).cast(pl.UInt32)).to_series()
        return Verdict.keep_all(
            rows.height,
            copies=copies,
            facts={"factor": self.factor, "copied": int(fresh.sum()) if self.factor > 1 else 0},
        )
