"""Deterministic caps shared by `source_cap` and `task_cap`: keep a seeded subsample per group.

A group's size is its number of samples: a row and its copies (`{id}~{k}`, made by `duplicate`)
are one sample, kept or dropped together, so a cap neither undoes a duplication nor is undone by
one, whichever runs first. A sample's rank in its group is a stable hash of (seed, id) (blake2b,
not polars' hash, which may change between polars versions); the `max_rows` smallest are kept.
The choice depends on nothing but the seed and the ids: stable, and idempotent (a capped group is
under its cap).
"""

from __future__ import annotations

import hashlib

import polars as pl

from triune_data.filters.base import Verdict

COPY_SUFFIX = r"~\d+$"  # the runner names the k-th extra copy of a row `{id}~{k}`


def base_ids(ids: pl.Series) -> pl.Series:
    """The ids without a copy suffix: a row and its copies share one."""
    return ids.str.replace(COPY_SUFFIX, "")


def seeded_rank_key(ids: pl.Series, seed: int) -> pl.Series:
    """A UInt64 per id: the first 8 bytes of blake2b(id) salted with the seed."""
    salt = seed.to_bytes(8, "little", signed=True)
    keys = [
        int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, salt=salt).digest(), "little")
        for i in ids.to_list()
    ]
    return pl.Series("_key", keys, dtype=pl.UInt64)


def cap_rows(rows: pl.DataFrame, by: list[str], max_rows: int, seed: int) -> Verdict:
    """Drop every sample of a group (`by` columns) beyond the `max_rows` with the smallest seeded key."""
    if rows.height == 0 or int(rows.select(pl.len().over(by).max()).item()) <= max_rows:
        return Verdict.keep_all(rows.height)  # no group has more rows, let alone samples, than the cap
    df = rows.select(*by, _base=base_ids(rows["id"]))
    sizes = df.select(pl.col("_base").n_unique().over(by))["_base"]
    over = sizes > max_rows
    if not over.any():
        return Verdict.keep_all(rows.height)
    keys = pl.Series("_key", [0] * rows.height, dtype=pl.UInt64)
    part = df.with_columns(_key=keys).with_row_index("_i").filter(over)
    part = part.with_columns(_key=seeded_rank_key(part["_base"], seed))
    rank = part.select(pl.struct("_key", "_base").rank("dense").over(by))["_key"]
    drop = pl.Series("drop", [False] * rows.height).scatter(part["_i"].filter(rank > max_rows), True)
    return Verdict(
        drop,
        detail=(f"cap {max_rows} of " + sizes.cast(pl.Utf8)).rename("detail"),
        facts={"max_rows": max_rows, "groups_capped": int(part.select(pl.struct(by).n_unique()).item())},
    )
