"""Hand-made rows and a context for filter table tests (no dataset on disk needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from triune_data.filters.base import FILE, POS, ROW, Context


def rows(**columns: list[Any]) -> pl.DataFrame:
    """A row batch as the runner passes it: the given columns plus ROW, FILE and POS."""
    n = len(next(iter(columns.values())))
    return pl.DataFrame(columns).with_columns(
        pl.int_range(n, dtype=pl.UInt64).alias(ROW),
        pl.lit(0, dtype=pl.UInt32).alias(FILE),
        pl.int_range(n, dtype=pl.UInt32).alias(POS),
    )


def context(tmp_path: Path, seed: int = 0) -> Context:
    return Context(root=tmp_path, files=(), recipe_dir=tmp_path, seed=seed, work=tmp_path / "work")
