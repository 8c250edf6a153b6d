"""`near_dedup`: resized, re-encoded or slightly cropped copies of an image keep only the first row."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.filters.hash_index import first_of_clusters, near_pairs
from triune_data.filters.image_keys import phash_signatures, prompt_keys
from triune_data.types import Task

PHOTO_TASKS: list[Task] = ["detection", "grounding", "counting"]
Match = Literal["image_and_prompt", "image"]


def hash_groups(counts: np.ndarray, rows: pl.DataFrame | None) -> np.ndarray:
    """Dense int64 group ids: rows compare only within a group of the same image count and, when
    `rows` (with `prompt`) is given, the same normalised prompt."""
    keys = pl.DataFrame({"n": counts})
    if rows is not None:
        keys = pl.concat([keys, prompt_keys(rows)], how="horizontal")
    return keys.select(pl.struct(keys.columns).rank("dense"))[:, 0].to_numpy().astype(np.int64)


@register_filter
class NearDedup(Filter):
    """Images a near-copy (pHash within `max_hamming` bits) of an earlier row's, with the same prompt.

    Perceptual hash (64-bit DCT pHash, `imagehash.phash`'s algorithm) of every image; rows whose
    hashes are within `max_hamming` bits are copies, and the first of them in dataset order is
    kept: `near-copy of {id} (hamming {d})`. Every dropped row is within the threshold of the row
    it names (leader clustering, no chains). Copies made by resizing, re-encoding (another JPEG
    quality, PNG <-> JPEG) land at 0-2 bits; a crop of 1.5% off every side at 2-8 (median 4);
    distinct photos at 14 and more. Distances are almost always even (the median threshold sets
    32 of the 64 bits), so an odd threshold acts as the even one below it.

    By default (`match: image_and_prompt`) the prompt must match too: RefCOCO asks several
    questions about one image, and those are different samples. `match: image` compares images
    alone. Rows of detection, grounding and counting only by default: charts, diagrams, documents
    and rendered text are mostly flat white, and their low frequencies agree across different
    images (false positives). A row without a hash for every image (undecodable, over the pixel
    limit, stored by path only, or no image at all) is kept and counted per data_source in the
    facts (`unhashed`); exact copies of it are `exact_dedup`'s. Hashes are cached per shard in the
    stage's work folder.
    """

    name: ClassVar[str] = "near_dedup"
    columns: ClassVar[tuple[str, ...]] = ("id", "data_source", "prompt")

    tasks: list[Task] | None = Field(
        default_factory=lambda: list(PHOTO_TASKS), description="Only rows of these tasks (photos)."
    )
    max_hamming: int = Field(
        default=6, ge=0, le=24, description="Most differing bits of two copies' 64-bit pHashes."
    )
    match: Match = Field(
        default="image_and_prompt", description="Also require the same prompt, or compare images alone."
    )
    exact_decode: bool = Field(
        default=False,
        description="Decode JPEGs in full (bit-exact imagehash) instead of libjpeg's fast downscale.",
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        n = rows.height
        if n == 0:
            return Verdict.keep_all(0)
        signatures, counts, hashed = phash_signatures(ctx, rows, exact=self.exact_decode)
        groups = hash_groups(counts, rows if self.match == "image_and_prompt" else None)
        where = np.flatnonzero(hashed)
        near = near_pairs(signatures[where], groups[where], self.max_hamming)
        keeper, distance = first_of_clusters(near)
        copy_of = np.full(n, -1, dtype=np.int64)
        copied = keeper >= 0
        copy_of[where[copied]] = where[keeper[copied]]
        dist = np.zeros(n, dtype=np.int64)
        dist[where[copied]] = distance[copied]
        decided = pl.DataFrame(
            {"k": copy_of, "d": dist, "other": rows["id"].gather(np.maximum(copy_of, 0))}
        ).select(
            drop=pl.col("k") >= 0,
            detail=pl.when(pl.col("k") >= 0).then(
                pl.format("near-copy of {} (hamming {})", pl.col("other"), pl.col("d"))
            ),
        )
        unhashed = Counter(rows["data_source"].filter(pl.Series(~hashed)).to_list())
        facts = {
            "max_hamming": self.max_hamming,
            "match": self.match,
            "unhashed": dict(sorted(unhashed.items())),
        }
        return Verdict(decided["drop"], detail=decided["detail"], facts=facts)
