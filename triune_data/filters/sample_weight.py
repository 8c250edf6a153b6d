"""`sample_weight`: set or multiply the `sample_weight` of the rows in scope."""

from __future__ import annotations

from typing import ClassVar, Literal

import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter


@register_filter
class SampleWeight(Filter):
    """Drops nothing: sets (or multiplies) `sample_weight` of the rows in scope."""

    name: ClassVar[str] = "sample_weight"
    drops: ClassVar[bool] = False
    columns: ClassVar[tuple[str, ...]] = ("sample_weight",)

    weight: float = Field(gt=0, allow_inf_nan=False, description="The new weight, or the factor.")
    mode: Literal["set", "multiply"] = Field("set", description="set: weight; multiply: weight × current.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        current = rows["sample_weight"].cast(pl.Float64)
        new = (
            current * self.weight
            if self.mode == "multiply"
            else pl.repeat(self.weight, rows.height, eager=True)
        )
        return Verdict.keep_all(
            rows.height,
            updates={"sample_weight": new.rename("sample_weight")},
            facts={self.mode: self.weight},
        )
