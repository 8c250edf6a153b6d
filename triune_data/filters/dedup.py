"""`exact_dedup`: the same sample twice (same image bytes and prompt) keeps only its first row."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.filters.image_keys import SECOND_SEED, digests, prompt_keys


@register_filter
class ExactDedup(Filter):
    """Same images and normalised prompt as an earlier row (and the same answer with `answer: true`).

    Images compare by the sha256 of their bytes (an image stored by path only, by its path);
    prompts after lowercasing and collapsing whitespace (the `<image>` placeholder is kept, so a
    prompt with the image before the text differs from one with it after). The first row in
    dataset order is kept; the others name it: `duplicate of {id}`. Across data sources too: the
    same sample in two sources is one sample. Image digests are cached per shard in the stage's
    work folder, so a rerun or `--resume` does not read the bytes again.
    """

    name: ClassVar[str] = "exact_dedup"
    columns: ClassVar[tuple[str, ...]] = ("id", "prompt", "answer")

    answer: bool = Field(default=False, description="Also require the same answer (exactly, as stored).")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        if rows.height == 0:
            return Verdict.keep_all(0)
        # Everything as 64-bit hashes (two independent ones per text: 128 bits, no chance
        # collisions); group-bys on a few integer columns are what polars does fastest.
        # The image digests (shard reads, a cache) and the prompt keys (string work) are
        # independent: computed side by side, on two threads.
        with ThreadPoolExecutor(1, thread_name_prefix="triune-digests") as pool:
            pending = pool.submit(digests, ctx, rows)
            prompts = prompt_keys(rows)
            digest = pending.result()["digest"]
        columns = [digest.hash(seed=0).alias("d0"), digest.hash(seed=SECOND_SEED).alias("d1")]
        if self.answer:
            columns += [
                rows["answer"].hash(seed=0).alias("a0"),
                rows["answer"].hash(seed=SECOND_SEED).alias("a1"),
            ]
        keys = pl.concat([pl.DataFrame(columns), prompts], how="horizontal")
        names = keys.columns
        decided = keys.with_row_index("i").select(pl.col("i"), first=pl.col("i").first().over(names))
        first = decided["first"]
        drop = first != decided["i"]
        detail = pl.select(pl.when(drop).then(pl.lit("duplicate of ") + rows["id"].gather(first)))[:, 0]
        decided = pl.DataFrame({"drop": drop, "detail": detail})
        return Verdict(decided["drop"], detail=decided["detail"])
