"""Hand-made rows for filter tests, typed exactly as the runner passes them.

`sample(...)` makes a `Sample` with plain defaults; `rows(*samples)` turns samples into the polars
DataFrame a filter's `apply` receives: every sample column but `images` (structs and lists as polars
structs and lists, through the project's own Arrow schema) plus ROW, FILE and POS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from triune_data.filters.base import FILE, POS, ROW, Context
from triune_data.schema import samples_to_table
from triune_data.types import (
    TASK_CATEGORY,
    Box,
    Image,
    ImageSize,
    Message,
    Provenance,
    RewardSpec,
    Sample,
    Task,
)


def sample(
    id: str = "s0",
    *,
    task: Task = "math",
    data_source: str = "src",
    answer: str = "4",
    ground_truth: str | None = None,
    question: str = "<image>What is 2 + 2?",
    prompt: list[Message] | None = None,
    sizes: list[tuple[int, int]] | None = None,
    boxes: list[tuple[str, float, float, float, float]] | None = None,
    verifier: str = "math",
    params: str = "{}",
    accuracy_weight: float = 1.0,
    format_weight: float = 0.0,
) -> Sample:
    """A sample; `sizes` are (width, height) of its images (default one 640×480 image)."""
    sizes = [(640, 480)] if sizes is None else sizes
    return Sample(
        id=id,
        data_source=data_source,
        task=task,
        category=TASK_CATEGORY[task],
        split="train",
        images=[Image(bytes=None, path=f"{id}_{k}.png") for k in range(len(sizes))],
        image_sizes=[ImageSize(w, h) for w, h in sizes],
        prompt=[Message("user", question)] if prompt is None else prompt,
        answer=answer,
        ground_truth=answer if ground_truth is None else ground_truth,
        boxes=[Box(*b) for b in boxes or []],
        reward=RewardSpec(verifier, params, accuracy_weight, format_weight),
        sample_weight=1.0,
        difficulty=None,
        provenance=Provenance(source="test", original_id=id),
    )


def rows(*samples: Sample) -> pl.DataFrame:
    """The rows of `samples` as a filter sees them (one file, dataset order)."""
    table = pl.from_arrow(samples_to_table(list(samples)))
    assert isinstance(table, pl.DataFrame)
    frame = table.drop("images")
    n = frame.height
    return frame.with_columns(
        pl.Series(ROW, range(n), dtype=pl.UInt32),
        pl.Series(FILE, [0] * n, dtype=pl.UInt32),
        pl.Series(POS, range(n), dtype=pl.UInt32),
    )


def with_null(frame: pl.DataFrame, column: str, index: int = 0) -> pl.DataFrame:
    """`frame` with `column` null in row `index` (what a foreign or damaged shard may hold)."""
    values: list[Any] = frame[column].to_list()
    values[index] = None
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


def context(tmp_path: Path, seed: int = 0) -> Context:
    return Context(root=tmp_path, files=(), recipe_dir=tmp_path, seed=seed, work=tmp_path / "work")


def outcome(verdict: Any) -> list[tuple[bool, str | None]]:
    """(drop, detail) per row; the detail only of dropped rows (the runner keeps no other)."""
    drop = verdict.drop.to_list()
    detail = verdict.detail.to_list() if verdict.detail is not None else [None] * len(drop)
    return [(bool(d), t if d else None) for d, t in zip(drop, detail, strict=True)]
