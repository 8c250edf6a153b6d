"""`contamination`: train rows that also appear in a test split or in an evaluation dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import Field

from triune_data.errors import DatasetError
from triune_data.filters.base import FILE, POS, ROW, Context, Filter, Verdict, register_filter
from triune_data.filters.hash_index import near_pairs
from triune_data.filters.image_keys import digests, phash_signatures, prompt_keys
from triune_data.filters.near_dedup import Match, hash_groups
from triune_data.manifest import read_manifest
from triune_data.writer import read_shard

# Rows, their Context, which are references, where they are (None: this dataset, by split).
_Part = tuple[pl.DataFrame, Context, np.ndarray, str | None]
# What a reference dataset's rows need (the columns of the rows this filter reads).
_REFERENCE_COLUMNS = ("id", "data_source", "split", "prompt")


@register_filter
class Contamination(Filter):
    """Train row matching a row of a test split or of an `against` dataset (dropped with `action: drop`).

    References: the rows of this dataset whose split is in `test_splits`, and every row of each
    dataset directory in `against` (triune datasets made by `build-dataset`, such as an evaluation
    benchmark; relative paths resolve against the filter recipe). A row of another split matches
    a reference with the same images (sha256 of the bytes; the path for an image stored by path)
    and, with `match: image_and_prompt`, the same normalised prompt; with `max_hamming`, also when
    its images are within that many pHash bits of the reference's (see `near_dedup`).

    By default (`match: image`) an image alone is enough: a model rewarded on an image's boxes has
    seen the test item even if the question differs. Rows without images then match nothing.
    `action: report` drops nothing and lists the hits per data_source in the facts, each with the
    other sample's id and where it is; `action: drop` also drops them, detail
    `matches {id} in {where}` (plus `(hamming d)` for a pHash match). Test rows are never dropped.
    """

    name: ClassVar[str] = "contamination"
    columns: ClassVar[tuple[str, ...]] = ("id", "data_source", "split", "prompt")

    test_splits: list[str] = Field(
        default_factory=lambda: ["test", "validation", "val"],
        description="Splits of this dataset that are references (never dropped).",
    )
    against: list[str] = Field(
        default_factory=list, description="Other triune dataset directories whose rows are references."
    )
    action: Literal["report", "drop"] = Field(
        default="report", description="Only report hits, or also drop them."
    )
    match: Match = Field(default="image", description="Images alone, or images and the normalised prompt.")
    max_hamming: int | None = Field(
        default=None,
        ge=0,
        le=24,
        description="Also match images within this many pHash bits (None: exact only).",
    )
    max_listed: int = Field(
        default=1000, ge=0, description="Hits listed in the facts per data_source (all are counted)."
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        n = rows.height
        parts: list[_Part] = [(rows, ctx, rows["split"].is_in(self.test_splits).to_numpy(), None)]
        for path in self.against:
            other_rows, other_ctx = _reference_rows(ctx.resolve(path), ctx)
            parts.append((other_rows, other_ctx, np.ones(other_rows.height, dtype=bool), path))
        frames = []
        for part_rows, part_ctx, is_ref, where in parts:
            frame = self._keys(part_rows, part_ctx).with_columns(
                pl.Series("is_ref", is_ref),
                pl.Series("id", part_rows["id"]),
                where=pl.lit(where, dtype=pl.Utf8)
                if where is not None
                else pl.lit("split ") + part_rows["split"],
            )
            frames.append(frame)
        table = pl.concat(frames, how="vertical_relaxed").with_row_index("i")
        hits = self._exact_hits(table)
        if self.max_hamming is not None:
            hits = pl.concat([hits, self._near_hits(parts, table)])
        # per train row: the nearest reference, then the first in order (own test rows come first)
        best = hits.sort("hamming", "ref", nulls_last=False).group_by("i", maintain_order=True).first()
        names = table.select(ref="i", other="id", **{"in": "where"})
        own = (
            table.head(n)
            .join(best, on="i", how="left", maintain_order="left")
            .join(names, on="ref", how="left", maintain_order="left")
        )
        hit = own["ref"].is_not_null()
        detail = own.select(
            pl.when(pl.col("ref").is_not_null()).then(
                pl.format("matches {} in {}", pl.col("other"), pl.col("in"))
                + pl.when(pl.col("hamming") > -1)
                .then(pl.format(" (hamming {})", pl.col("hamming")))
                .otherwise(pl.lit(""))
            )
        )[:, 0]
        facts = self._facts(rows, own.with_columns(hit=hit, detail=detail))
        drop = hit if self.action == "drop" else pl.repeat(False, n, dtype=pl.Boolean, eager=True)
        return Verdict(drop.alias("drop"), detail=detail.alias("detail"), facts=facts)

    def _keys(self, rows: pl.DataFrame, ctx: Context) -> pl.DataFrame:
        """Exact key columns (`digest`, `n_images`, and prompt keys when they must match)."""
        keys = digests(ctx, rows)
        if self.match == "image_and_prompt":
            keys = pl.concat([keys, prompt_keys(rows)], how="horizontal")
        return keys

    def _exact_hits(self, table: pl.DataFrame) -> pl.DataFrame:
        """(i: train row, ref: first reference with the same key, hamming: -1 for an exact match)."""
        key = [c for c in ("digest", "n_images", "p0", "p1") if c in table.columns]
        usable = table if self.match == "image_and_prompt" else table.filter(pl.col("n_images") > 0)
        first_ref = usable.filter("is_ref").group_by(key).agg(pl.col("i").min().alias("ref"))
        return (
            usable.filter(~pl.col("is_ref"))
            .join(first_ref, on=key, how="inner")
            .select(pl.col("i").cast(pl.UInt32), pl.col("ref").cast(pl.UInt32), hamming=pl.lit(-1, pl.Int64))
        )

    def _near_hits(self, parts: list[_Part], table: pl.DataFrame) -> pl.DataFrame:
        """Train rows within `max_hamming` of a reference: (i, ref, hamming)."""
        signatures, counts, hashed = [], [], []
        for part_rows, part_ctx, _, _ in parts:
            s, c, h = phash_signatures(part_ctx, part_rows)
            signatures.append(s)
            counts.append(c)
            hashed.append(h)
        width = max(s.shape[1] for s in signatures)
        sig = np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]))) for s in signatures])
        count = np.concatenate(counts)
        ok = np.concatenate(hashed)
        prompts = (
            pl.concat([p[0].select("prompt") for p in parts]) if self.match == "image_and_prompt" else None
        )
        groups = hash_groups(count, prompts)
        where = np.flatnonzero(ok)
        near = near_pairs(sig[where], groups[where], self.max_hamming or 0)
        is_ref = table["is_ref"].to_numpy()[where]
        unique = pl.DataFrame({"u": near.unique_of, "i": where, "is_ref": is_ref})
        first_ref = unique.filter("is_ref").group_by("u").agg(pl.col("i").min().alias("ref"))
        edges = pl.concat(
            [
                pl.DataFrame({"u": near.a, "v": near.b, "hamming": near.distance.astype(np.int64)}),
                pl.DataFrame({"u": near.b, "v": near.a, "hamming": near.distance.astype(np.int64)}),
                first_ref.select("u", v=pl.col("u"), hamming=pl.lit(0, pl.Int64)),
            ]
        )
        return (
            unique.filter(~pl.col("is_ref"))
            .join(edges, on="u")
            .join(first_ref.rename({"u": "v"}), on="v")
            .select(pl.col("i").cast(pl.UInt32), pl.col("ref").cast(pl.UInt32), "hamming")
        )

    def _facts(self, rows: pl.DataFrame, own: pl.DataFrame) -> dict[str, Any]:
        hits = own.with_columns(rows["data_source"], rows["id"]).filter("hit")
        counted = hits.group_by("data_source").len().sort("data_source")
        listed: dict[str, list[dict[str, Any]]] = {}
        for (source,), part in hits.group_by("data_source", maintain_order=True):
            listed[str(source)] = [
                {"id": i, "matches": o, "in": w} | ({"hamming": h} if h > -1 else {})
                for i, o, w, h in part.head(self.max_listed)
                .select("id", "other", "in", "hamming")
                .iter_rows()
            ]
        return {
            "action": self.action,
            "hits": dict(zip(counted["data_source"].to_list(), counted["len"].to_list(), strict=True)),
            "listed": dict(sorted(listed.items())),
        }


def _reference_rows(root: Path, ctx: Context) -> tuple[pl.DataFrame, Context]:
    """The rows of another triune dataset (reference columns + ROW, FILE, POS, in its order) and
    a Context reading its images, caching in this stage's work folder."""
    if not (root / "manifest.json").exists():
        raise DatasetError(
            f"{root}: contamination `against` needs a triune dataset directory (no manifest.json)"
        )
    manifest = read_manifest(root)
    files = tuple(root / f.path for f in manifest.files)
    frames = []
    for k, path in enumerate(files):
        frame = pl.from_arrow(read_shard(path, columns=list(_REFERENCE_COLUMNS)))
        assert isinstance(frame, pl.DataFrame)
        frames.append(
            frame.with_columns(
                pl.lit(k, pl.Int64).alias(FILE), pl.int_range(frame.height, dtype=pl.Int64).alias(POS)
            )
        )
    if not frames:  # a dataset with no rows: nothing to match
        message = pl.Struct({"role": pl.Utf8, "content": pl.Utf8})
        schema: dict[str, pl.DataType] = {"id": pl.Utf8(), "data_source": pl.Utf8(), "split": pl.Utf8()}
        schema |= {"prompt": pl.List(message), FILE: pl.Int64(), POS: pl.Int64()}
        frames = [pl.DataFrame(schema=schema)]
    rows = pl.concat(frames).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    other = Context(root=root, files=files, recipe_dir=ctx.recipe_dir, seed=ctx.seed, work=ctx.work)
    return rows, other
