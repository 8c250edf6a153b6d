"""Deterministic caps shared by `source_cap` and `task_cap`: keep a seeded subsample per group.

A row's rank in its group is a stable hash of (seed, id) (blake2b, not polars' hash, which may
change between polars versions); the `max_rows` smallest are kept. The choice depends on nothing
but the seed and the ids, so it is stable, and idempotent: a capped group is under its cap.
"""

from __future__ import annotations

import hashlib

import polars as pl

from triune_data.filters.base import ROW, Verdict


def seeded_rank_key(ids: pl.Series, seed: int) -> pl.Series:
    """A UInt64 per id: the first 8 bytes of blake2b(seed, id)."""
    salt = seed.to_bytes(8, "little", signed=True)
    keys = [
        int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, salt=salt).digest(), "little")
        for i in ids.to_list()
    ]
    return pl.Series("_key", keys, dtype=pl.UInt64)


def cap_rows(rows: pl.DataFrame, by: list[str], max_rows: int, seed: int) -> Verdict:
    """Drop every row of a group (`by` columns) beyond the `max_rows` with the smallest seeded key."""
    sizes = rows.select(pl.len().over(by).alias("n"))["n"]
    over = sizes > max_rows
    if not over.any():
        return Verdict.keep_all(rows.height)
    part = rows.filter(over).select(*by, "id", ROW)
    part = part.with_columns(seeded_rank_key(part["id"], seed)).with_columns(
        rank=pl.struct("_key", ROW).rank("ordinal").over(by)
    )
    dropped = part.filter(pl.col("rank") > max_rows).select(ROW, drop=pl.lit(True))
    flags = rows.select(ROW).join(dropped, on=ROW, how="left", maintain_order="left")["drop"]
    return Verdict(
        flags.fill_null(False),
        detail=(f"cap {max_rows} of " + sizes.cast(pl.Utf8)).rename("detail"),
        facts={"max_rows": max_rows, "groups_capped": int(part.select(pl.struct(by).n_unique()).item())},
    )
