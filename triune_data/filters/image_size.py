"""Image size bounds (V-Triune Fig. 9 lists an image-size rule among its filters; no value given).

Sizes come from `image_sizes` (read from the image headers at build time), so no image is decoded.
Defaults: a side under 28 px is less than one merged Qwen2-VL patch (14 px × merge 2), so the model
sees an upscaled blur; the upper bounds are off by default (the build already refuses decompression
bombs with `images.max_pixels`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters._columns import select_rowwise
from triune_data.filters.base import Context, Filter, Verdict, register_filter


@register_filter
class ImageSize(Filter):
    """An image with a side under `min_side`, a side over `max_side` or more than `max_pixels` pixels."""

    name: ClassVar[str] = "image_size"
    columns: ClassVar[tuple[str, ...]] = ("image_sizes",)
    min_side: int = Field(default=28, ge=1, description="Shortest side kept, in pixels.")
    max_side: int | None = Field(default=None, ge=1, description="Longest side kept, in pixels (None: any).")
    max_pixels: int | None = Field(
        default=None, ge=1, description="Most pixels an image may have (None: any)."
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        # Most rows have one image: judged straight from its struct, no explode; only the others
        # (none, several, a null entry) go through the general path. Same details either way.
        sizes = rows["image_sizes"]
        one = (sizes.list.len() == 1) & sizes.list.first().is_not_null()
        if bool(one.all()):
            return self._single(rows)
        detail = pl.Series("detail", [None] * rows.height, dtype=pl.Utf8)
        if bool(one.any()):
            detail = detail.scatter(one.arg_true(), self._single(rows.filter(one)).detail)
        rest = one.not_()
        detail = detail.scatter(rest.arg_true(), self._general(rows.filter(rest)))
        return Verdict(detail.is_not_null(), detail=detail)

    def _rules(self, w: pl.Expr, h: pl.Expr, k: pl.Expr) -> Any:
        shown = pl.format("image {} is {}×{} px", k + 1, w, h)
        rules: Any = pl.when(w.is_null() | h.is_null()).then(pl.format("image {} has no size", k + 1))
        rules = rules.when(pl.min_horizontal(w, h) < self.min_side).then(
            pl.format("{} (a side under {})", shown, pl.lit(self.min_side))
        )
        if self.max_side is not None:
            rules = rules.when(pl.max_horizontal(w, h) > self.max_side).then(
                pl.format("{} (a side over {})", shown, pl.lit(self.max_side))
            )
        if self.max_pixels is not None:
            rules = rules.when(w * h > self.max_pixels).then(
                pl.format("{} (over {} pixels)", shown, pl.lit(self.max_pixels))
            )
        return rules.otherwise(None)

    def _single(self, rows: pl.DataFrame) -> Verdict:
        size = pl.col("image_sizes").list.first()
        w, h = size.struct.field("width").cast(pl.Int64), size.struct.field("height").cast(pl.Int64)
        detail = select_rowwise(
            rows, self._rules(w, h, pl.lit(0, dtype=pl.UInt32)).alias("detail")
        ).to_series()
        return Verdict(detail.is_not_null(), detail=detail)

    def _general(self, rows: pl.DataFrame) -> pl.Series:
        images = (
            rows.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), "image_sizes")
            .explode("image_sizes")
            .filter(pl.col("image_sizes").is_not_null())
            .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over("_i").alias("k"))
            .unnest("image_sizes")
        )
        w, h = pl.col("width").cast(pl.Int64), pl.col("height").cast(pl.Int64)
        judged = images.select("_i", self._rules(w, h, pl.col("k")).alias("detail")).drop_nulls("detail")
        first = judged.group_by("_i", maintain_order=True).first()
        return (
            rows.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"))
            .join(first, on="_i", how="left")
            .sort("_i")["detail"]
        )
