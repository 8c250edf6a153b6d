"""Seeded, order-free ranks: which rows a subsampling filter keeps depends on (seed, id) only.

A row's rank is the first 8 bytes of BLAKE2b over the seed and its id, so the choice is the same
on every machine and Python version (polars' `hash` is not stable across releases), and does not
change when other rows are added or the shards are reordered.
"""

from __future__ import annotations

import hashlib

import polars as pl


def seeded_rank(ids: pl.Series, seed: int, salt: str) -> pl.Series:
    """UInt64 rank of each id under (seed, salt); a null id ranks as the empty string."""
    prefix = f"{seed}\x00{salt}\x00".encode()
    out = [
        int.from_bytes(hashlib.blake2b(prefix + (i or "").encode(), digest_size=8).digest(), "big")
        for i in ids.to_list()
    ]
    return pl.Series("rank", out, dtype=pl.UInt64)
