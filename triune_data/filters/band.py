"""Difficulty curation, phase two: `difficulty_band` keeps rows whose statistics lie in a band.

It reads the `difficulty` struct that `difficulty_stats` wrote (phase one) and applies V-Triune's
thresholds (paper §5.1.1.2) by default:

- reasoning rows keep `min_pass_rate <= pass_rate < max_pass_rate`: with the defaults 0 and 1.0,
  items the model already solves in every one of its k samples (pass@8 = 100% in the paper) go,
  and items it never solves stay, as the paper writes it;
- detection and grounding rows keep `min_reward_sum <= reward_sum <= max_reward_sum`, both edges
  included, where `reward_sum = mean_reward × num_rollouts`: the IoU@0.5 reward summed over the
  samples, [2, 10] over 16 samples in the paper, which removes both too easy and too hard items.

A row without statistics (no completions, or none scorable) is kept unless `unscored: drop`;
either way it is counted in the facts. Detail of a dropped row: `pass_rate 1.00 ≥ 1.0`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field, model_validator

from triune_data.filters.base import BOX_TASKS, REASONING_TASKS, Context, Filter, Verdict, register_filter
from triune_data.types import Task


@register_filter
class DifficultyBand(Filter):
    """Difficulty outside the band: pass rate (reasoning) or summed IoU reward (boxes) too high or too low."""

    name: ClassVar[str] = "difficulty_band"
    columns: ClassVar[tuple[str, ...]] = ("data_source", "task", "difficulty")

    tasks: list[Task] | None = Field(
        default=list(REASONING_TASKS + BOX_TASKS),
        description="Only rows of these tasks (default: the paper's; OCR and counting have no band).",
    )
    min_pass_rate: float = Field(
        default=0.0, ge=0, le=1, description="Reasoning: drop pass_rate below this (inclusive edge)."
    )
    max_pass_rate: float | None = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Reasoning: drop pass_rate at or above this (exclusive edge); null: no cap.",
    )
    min_reward_sum: float | None = Field(
        default=2.0, ge=0, description="Boxes: drop a summed reward below this (kept at it)."
    )
    max_reward_sum: float | None = Field(
        default=10.0, ge=0, description="Boxes: drop a summed reward above this (kept at it)."
    )
    unscored: Literal["keep", "drop"] = Field(
        default="keep", description="Rows without statistics: keep or drop."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DifficultyBand:
        if self.max_pass_rate is not None and self.max_pass_rate <= self.min_pass_rate:
            raise ValueError("max_pass_rate must be above min_pass_rate")
        low, high = self.min_reward_sum, self.max_reward_sum
        if low is not None and high is not None and high < low:
            raise ValueError("max_reward_sum must be at least min_reward_sum")
        return self

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        d = rows["difficulty"]
        frame = pl.DataFrame(
            {
                "box": rows["task"].is_in(list(BOX_TASKS)),
                "rate": d.struct.field("pass_rate"),
                "n": d.struct.field("num_rollouts").fill_null(0),
                # Rounded so that 16 × 0.125 is exactly 2 at the inclusive edges, whatever the floats did.
                "sum": (
                    d.struct.field("mean_reward") * d.struct.field("num_rollouts").cast(pl.Float64)
                ).round(9),
            }
        )
        box, rate, total = pl.col("box"), pl.col("rate"), pl.col("sum")
        scored = (pl.col("n") > 0) & pl.when(box).then(total.is_not_null()).otherwise(rate.is_not_null())
        easy = (
            pl.when(box)
            .then(_above(total, self.max_reward_sum))
            .otherwise(_at_or_above(rate, self.max_pass_rate))
        )
        hard = (
            pl.when(box).then(_below(total, self.min_reward_sum)).otherwise(_below(rate, self.min_pass_rate))
        )
        flags = frame.select(
            unscored=~scored,
            too_easy=(scored & easy).fill_null(False),
            too_hard=(scored & ~easy.fill_null(False) & hard).fill_null(False),
        )
        unscored, too_easy, too_hard = flags["unscored"], flags["too_easy"], flags["too_hard"]
        drop = too_easy | too_hard
        if self.unscored == "drop":
            drop = drop | unscored

        # Details for dropped rows only (usually few), formatted in Python for exact wording.
        detail: list[str | None] = [None] * rows.height
        by_source: dict[str, Counter[str]] = {}
        cols = zip(
            rows["data_source"].to_list(),
            frame["box"].to_list(),
            frame["rate"].to_list(),
            frame["sum"].to_list(),
            too_easy.to_list(),
            too_hard.to_list(),
            unscored.to_list(),
            strict=True,
        )
        for i, (source, is_box, rate, total, easy, hard, none) in enumerate(cols):
            counts = by_source.setdefault(source, Counter())
            if none:
                counts["unscored"] += 1
                if self.unscored == "drop":
                    detail[i] = "no difficulty statistics"
            elif easy:
                counts["too_easy"] += 1
                detail[i] = (
                    f"reward_sum {total:.2f} > {self.max_reward_sum!r}"
                    if is_box
                    else f"pass_rate {rate:.2f} ≥ {self.max_pass_rate!r}"
                )
            elif hard:
                counts["too_hard"] += 1
                detail[i] = (
                    f"reward_sum {total:.2f} < {self.min_reward_sum!r}"
                    if is_box
                    else f"pass_rate {rate:.2f} < {self.min_pass_rate!r}"
                )
            else:
                counts["in_band"] += 1
        keys = ("in_band", "too_easy", "too_hard", "unscored")
        facts: dict[str, Any] = {
            "pass_rate": [self.min_pass_rate, self.max_pass_rate],
            "reward_sum": [self.min_reward_sum, self.max_reward_sum],
            "unscored": self.unscored,
            "by_source": {src: {k: c[k] for k in keys} for src, c in sorted(by_source.items())},
        }
        return Verdict(drop, detail=pl.Series("detail", detail, dtype=pl.Utf8), facts=facts)


def _above(x: pl.Expr, edge: float | None) -> pl.Expr:
    return pl.lit(False) if edge is None else x > edge


def _at_or_above(x: pl.Expr, edge: float | None) -> pl.Expr:
    return pl.lit(False) if edge is None else x >= edge


def _below(x: pl.Expr, edge: float | None) -> pl.Expr:
    return pl.lit(False) if edge is None else x < edge


__all__ = ["DifficultyBand"]
