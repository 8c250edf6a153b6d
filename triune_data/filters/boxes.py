"""Box rules of V-Triune's detection and grounding filters (paper §5.1.1.1, Fig. 9).

Boxes are in the canonical frame (absolute pixels of image 0; `image_sizes[0]` is its size), so
areas compare with that image's area directly; the paper's 0-1000 conversion changes no ratio.

`single_multi_ratio` and `category_balance` subsample: which rows they keep depends only on the
filter recipe's seed and the rows' ids (`_seeded`), never on row order or other runs.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import polars as pl
from pydantic import Field

from triune_data.filters._scope import default_tasks
from triune_data.filters._seeded import seeded_rank
from triune_data.filters.base import BOX_TASKS, Context, Filter, Verdict, register_filter
from triune_data.types import Task

_I = "_i"  # the row's position in the batch: results are joined back on it, in order


def _indexed(rows: pl.DataFrame, *columns: str | pl.Expr) -> pl.DataFrame:
    return rows.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(_I), *columns)


def _per_label(rows: pl.DataFrame) -> pl.DataFrame:
    """(_i, label, n): how many boxes of each label each row has (rows without boxes: none)."""
    boxes = _indexed(rows, "boxes").explode("boxes").filter(pl.col("boxes").is_not_null())
    return (
        boxes.select(_I, pl.col("boxes").struct.field("label").fill_null("")).group_by(_I, "label").len("n")
    )


def _aligned(rows: pl.DataFrame, per_row: pl.DataFrame) -> pl.DataFrame:
    """`per_row` (keyed by _i, at most one row each) joined onto every row of the batch, in order."""
    return _indexed(rows).join(per_row, on=_I, how="left").sort(_I)


def _box_stats(rows: pl.DataFrame) -> pl.DataFrame:
    """Per row: `most` (largest number of boxes of one label), its `label` (the first by name when
    several tie), and `boxes` (total)."""
    top = (
        _per_label(rows)
        .group_by(_I)
        .agg(  # (sort_by, not filter().min(): polars 2.1 can panic formatting a string min of a filter)
            pl.col("n").max().alias("most"),
            pl.col("label").sort_by("n", "label", descending=[True, False]).first(),
            pl.col("n").sum().alias("boxes"),
        )
    )
    return _aligned(rows, top).with_columns(pl.col("most", "boxes").fill_null(0))


@register_filter
class BoxesPerCategory(Filter):
    """More than `max_boxes` boxes of one category (V-Triune §5.1.1.1 drops detection samples over 10)."""

    name: ClassVar[str] = "boxes_per_category"
    columns: ClassVar[tuple[str, ...]] = ("boxes",)
    tasks: list[Task] | None = default_tasks("detection")
    max_boxes: int = Field(default=10, ge=1, description="Most boxes one category may have in a sample.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        stats = _box_stats(rows)
        detail = stats.select(
            pl.col("most").cast(pl.Utf8) + pl.lit(" boxes of '") + pl.col("label") + pl.lit("'")
        ).to_series()
        return Verdict(stats["most"] > self.max_boxes, detail=detail)


@register_filter
class BoxArea(Filter):
    """A box covering more than `max_fraction` of the image (V-Triune §5.1.1.1: over 50%)."""

    name: ClassVar[str] = "box_area"
    columns: ClassVar[tuple[str, ...]] = ("boxes", "image_sizes")
    tasks: list[Task] | None = default_tasks(*BOX_TASKS)
    max_fraction: float = Field(
        default=0.5, gt=0, le=1, description="Largest share of image 0 one box may cover."
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        size = pl.col("image_sizes").list.first()
        boxes = (
            _indexed(
                rows, "boxes", size.struct.field("width").alias("w"), size.struct.field("height").alias("h")
            )
            .explode("boxes")
            .filter(pl.col("boxes").is_not_null())
            .unnest("boxes")
        )
        sized = (pl.col("w") > 0) & (pl.col("h") > 0)
        area = (pl.col("x2") - pl.col("x1")) * (pl.col("y2") - pl.col("y1"))
        share = pl.when(sized).then(area / (pl.col("w").cast(pl.Float64) * pl.col("h"))).otherwise(None)
        worst = (
            boxes.with_columns(share.alias("share"), sized.fill_null(False).alias("sized"))
            .sort([_I, "share"], descending=[False, True], nulls_last=False)
            .group_by(_I, maintain_order=True)
            .agg(pl.col("share").first(), pl.col("label").first(), pl.col("sized").all())
        )
        stats = _aligned(rows, worst)
        percent = (pl.col("share") * 100).round(1).cast(pl.Utf8)
        out = stats.select(
            pl.when(pl.col("sized").not_())
            .then(pl.lit("no size for image 0 to measure boxes against"))
            .when(pl.col("share") > self.max_fraction)
            .then(
                pl.lit("box '") + pl.col("label").fill_null("") + pl.lit("' covers ") + percent + pl.lit("%")
            )
            .alias("detail")
        ).to_series()
        return Verdict(out.is_not_null(), detail=out)


def _seeded_order(frame: pl.DataFrame, candidate: pl.Expr, by: list[str], seed: int, salt: str) -> pl.Series:
    """1-based place of each candidate row within its `by` group, in seeded-rank order of its id
    (ties, which need equal ids, by id); null for the other rows. Only candidates are hashed."""
    picked = frame.filter(candidate).select(_I, "id", *by)
    ordered = (
        picked.with_columns(seeded_rank(picked["id"], seed, salt))
        .sort([*by, "rank", "id"])
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(by).alias("order"))
    )
    return frame.select(_I).join(ordered.select(_I, "order"), on=_I, how="left", maintain_order="left")[
        "order"
    ]


def _groups(rows: pl.DataFrame, per_source: bool) -> pl.Expr:
    return pl.col("data_source").fill_null("") if per_source else pl.lit("")


@register_filter
class SingleMultiRatio(Filter):
    """Single-box sample beyond `single_per_multi` per multi-box sample (V-Triune §5.1.1.1: 1:2).

    A sample is single-box when each of its categories has one box (V-Triune's single-box samples
    keep one box per category) and multi-box when some category has several; samples without boxes
    are neither and kept. Excess single-box samples are dropped by seeded rank of their id.
    """

    name: ClassVar[str] = "single_multi_ratio"
    columns: ClassVar[tuple[str, ...]] = ("id", "data_source", "boxes")
    tasks: list[Task] | None = default_tasks("detection")
    single_per_multi: float = Field(
        default=0.5, ge=0, description="Single-box samples kept per multi-box sample."
    )
    single: Literal["one_per_category", "one_box"] = Field(
        default="one_per_category",
        description="What makes a sample single-box: one box per category, or one box.",
    )
    per_source: bool = Field(default=True, description="Apply the ratio within each data_source.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        stats = _box_stats(rows)
        count = pl.col("most") if self.single == "one_per_category" else pl.col("boxes")
        frame = pl.DataFrame(
            {
                _I: stats[_I],
                "group": rows.select(_groups(rows, self.per_source)).to_series(),
                "id": rows["id"].fill_null(""),
                "kind": stats.select(
                    pl.when(count == 0)
                    .then(pl.lit("none"))
                    .when(count == 1)
                    .then(pl.lit("single"))
                    .otherwise(pl.lit("multi"))
                ).to_series(),
            }
        )
        frame = frame.with_columns(
            (pl.col("kind") == "multi").sum().over("group").alias("multi"),
            (pl.col("kind") == "single").sum().over("group").alias("singles"),
        ).with_columns(
            (pl.col("multi").cast(pl.Float64) * self.single_per_multi)
            .floor()
            .cast(pl.Int64)
            .alias("allowed"),
        )
        trimmed = (pl.col("kind") == "single") & (pl.col("singles") > pl.col("allowed"))
        frame = frame.with_columns(_seeded_order(frame, trimmed, ["group"], ctx.seed, self.name))
        drop = (pl.col("order") > pl.col("allowed")).fill_null(False)
        out = frame.select(
            drop.alias("drop"),
            pl.when(drop)
            .then(
                pl.format(
                    "single-box beyond {} per multi-box: {} of {} kept for {} multi-box",
                    pl.lit(self.single_per_multi),
                    pl.min_horizontal("allowed", "singles"),
                    "singles",
                    "multi",
                )
            )
            .alias("detail"),
        )
        facts = {
            str(g["group"]): {"single": int(g["singles"]), "multi": int(g["multi"])}
            for g in frame.unique("group", maintain_order=True).iter_rows(named=True)
        }
        return Verdict(out["drop"], detail=out["detail"], facts={"box_kinds": facts})


@register_filter
class CategoryBalance(Filter):
    """Sample of a category holding more than its balanced share (V-Triune §5.1.1.1: no long tails).

    Each sample is counted once, under its primary category: the rarest of its labels (fewest
    samples carrying it; ties by name), so a sample that carries a rare category is protected by
    it. A primary category may hold at most `max_over_mean` times the mean number of samples per
    category (and at most `max_per_category`); the excess is dropped by seeded rank of the id. A
    balanced set loses nothing, whatever its number of categories. Samples without boxes are kept.
    """

    name: ClassVar[str] = "category_balance"
    columns: ClassVar[tuple[str, ...]] = ("id", "data_source", "boxes")
    tasks: list[Task] | None = default_tasks("detection")
    max_over_mean: float | None = Field(
        default=3.0, ge=1, description="Cap per category, as a multiple of the mean samples per category."
    )
    max_per_category: int | None = Field(default=None, ge=1, description="Cap per category, in samples.")
    per_source: bool = Field(default=True, description="Balance within each data_source.")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        caps = [pl.lit(float(self.max_per_category))] if self.max_per_category else []
        if self.max_over_mean is not None:
            mean = pl.len().over("group") / pl.col("primary").n_unique().over("group")
            caps.append((mean * self.max_over_mean).ceil())
        if not caps:
            return Verdict.keep_all(rows.height)
        labels = _per_label(rows).join(
            _indexed(rows, "id", _groups(rows, self.per_source).alias("group")), on=_I, how="left"
        )
        carriers = pl.col("carriers")
        primary = (
            labels.with_columns(pl.len().over("group", "label").alias("carriers"))
            .group_by(_I)
            .agg(
                pl.col("label").sort_by(carriers, "label").first().alias("primary"),
                pl.col("group", "id").first(),
            )
            .with_columns(
                pl.min_horizontal(caps).alias("cap"), pl.len().over("group", "primary").alias("held")
            )
        )
        over = pl.col("held") > pl.col("cap")
        primary = primary.with_columns(
            _seeded_order(primary, over, ["group", "primary"], ctx.seed, self.name).alias("order")
        )
        decided = primary.filter(pl.col("order") > pl.col("cap")).select(
            _I,
            pl.format("'{}' holds {} samples, cap {}", "primary", "held", pl.col("cap").cast(pl.Int64)).alias(
                "detail"
            ),
        )
        detail = _aligned(rows, decided)["detail"]
        return Verdict(detail.is_not_null(), detail=detail)
