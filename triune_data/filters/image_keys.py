"""What the dedup filters know about a row's images and prompt, computed once and cached.

- `digests`: per row, its images in order: each image's sha256, or for an image stored by path
  only, its path (we never open files a dataset merely points at).
- `phash_signatures`: one pHash per image (`phash.py`), and whether every image had one.
- `prompt_keys`: the normalised prompt (lowercase, whitespace collapsed, `<image>` kept, one line
  per message as `role: content`) as two independent 64-bit hashes (a 128-bit key, so a chance
  collision between different prompts is out of reach; the key never leaves the run).

Image work is cached per shard file in `Context.work` (kept across `--resume` and reruns), under
the file's sha256 from its dataset's manifest (or its path, size and mtime when the manifest does
not list it), so a second pass neither reads the image bytes nor decodes them again.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from triune_data import atomic
from triune_data.errors import DatasetError
from triune_data.filters._columns import select_rowwise
from triune_data.filters.base import FILE, POS, ROW, Context
from triune_data.filters.phash import phashes
from triune_data.manifest import read_manifest
from triune_data.writer import open_shard

CACHE_VERSION = "1"  # bump when what a cache file holds changes meaning
BATCH_ROWS = 512
SECOND_SEED = 0x9E3779B97F4A7C15  # a second, independent polars hash of the same text
_AT = "_at"  # a row's place in the rows asked about


@functools.lru_cache(maxsize=64)
def _manifest_shas(root: Path, mtime_ns: int) -> dict[Path, str]:
    """Resolved shard path -> sha256 from the manifest of `root` (as it was at `mtime_ns`)."""
    try:
        manifest = read_manifest(root)
    except DatasetError:
        return {}
    return {(root / f.path).resolve(): f.sha256 for f in manifest.files}


def file_identity(path: Path) -> str:
    """A name for the content of a shard file: its sha256 from its dataset's manifest, else its
    resolved path, size and mtime."""
    path = path.resolve()
    for root in (path.parent.parent.parent, path.parent.parent):  # data/{source}/{file}
        manifest = root / "manifest.json"
        if manifest.is_file() and path in (shas := _manifest_shas(root, manifest.stat().st_mtime_ns)):
            return shas[path]
    st = path.stat()
    return hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


def _cached(
    ctx: Context,
    rows: pl.DataFrame,
    kind: str,
    schema: dict[str, pl.DataType],
    compute: Callable[[pl.DataFrame], pl.DataFrame],
) -> pl.DataFrame:
    """Per-row values (columns `schema`) for `rows`, aligned with them: read from the cache of
    each file, computing (and caching) only the positions it lacks. `compute` gets rows (ROW,
    FILE, POS) of one file and returns POS plus the `schema` columns."""
    parts, places = [], []
    indexed = rows.select(ROW, FILE, POS).with_row_index(_AT)
    for (file_index,), part in indexed.group_by(FILE, maintain_order=True):
        shard = ctx.files[int(file_index)]
        cache = ctx.work / "image_keys" / f"{kind}-v{CACHE_VERSION}-{file_identity(shard)[:40]}.parquet"
        known = _read_cache(cache, {POS: pl.Int64(), **schema})
        missing = part.filter(part[POS].is_in(known[POS].implode()).not_()) if known.height else part
        if missing.height:
            fresh = compute(missing.drop(_AT)).select(pl.col(POS).cast(pl.Int64), *schema)
            known = pl.concat([known, fresh.cast(schema)]).sort(POS)  # type: ignore[arg-type]
            _write_cache(cache, known)
        # `known` is sorted by POS, each once and every one of `part` in it: a binary search
        # finds each row's values (cheaper than a join).
        parts.append(known.select(*schema)[known[POS].search_sorted(part[POS], side="left")])
        places.append(part[_AT])
    if not parts:
        return pl.DataFrame(schema=schema)
    merged, at = pl.concat(parts), pl.concat(places)
    # Rows in dataset order come back in order; any other order is restored by their place.
    return merged if at.is_sorted() else merged[pl.Series(at.arg_sort())]


def _read_cache(path: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The cache file's rows, or none when it is missing or unreadable (then it is recomputed)."""
    try:
        known = pl.read_parquet(path)
        if dict(known.schema) == schema:
            return known
    except (OSError, pl.exceptions.PolarsError):
        pass
    return pl.DataFrame(schema=schema)


def _write_cache(path: Path, table: pl.DataFrame) -> None:
    def produce(tmp: Path) -> None:
        table.write_parquet(tmp)

    atomic.write_file(path, produce)


def digests(ctx: Context, rows: pl.DataFrame) -> pl.DataFrame:
    """`digest` (Utf8: one token per image, NUL-separated: `b` + the sha256 of its bytes in hex, or
    `p` + its path for an image stored by path only; "" for no images) and `n_images` (Int32),
    aligned with `rows`. Columnar: Python touches only the bytes it hashes."""

    def compute(part: pl.DataFrame) -> pl.DataFrame:
        shard = ctx.files[int(part[FILE][0])]
        positions = part[POS].sort()
        column = open_shard(shard).read(columns=["images"]).column("images")
        images = column.take(positions.to_arrow()).combine_chunks()
        flat = images.flatten()  # every image of these rows, in row order
        data, paths = flat.flatten() if len(flat) else (pa.array([], pa.binary()), pa.array([], pa.utf8()))
        tokens = "p" + pl.Series("t", paths, dtype=pl.Utf8).fill_null("")
        if data.null_count < len(data):
            hexes = pl.Series("h", list(_sha256_hex(data)), dtype=pl.Utf8)
            tokens = pl.select(pl.when(hexes.is_not_null()).then("b" + hexes).otherwise(tokens))[:, 0]
        counts = pl.Series(pc.list_value_length(images).fill_null(0)).cast(pl.Int32)
        if len(tokens) == len(images) and bool((counts == 1).all()):
            digest = tokens  # one image a row (the common case): its token is the row's key
        else:
            per_image = pl.DataFrame({"row": pc.list_parent_indices(images), "token": tokens})
            joined = per_image.group_by("row", maintain_order=True).agg(pl.col("token").str.join("\x00"))
            keys = pl.DataFrame({"row": pl.int_range(len(images), eager=True, dtype=pl.Int64)}).join(
                joined.with_columns(pl.col("row").cast(pl.Int64)), on="row", how="left", maintain_order="left"
            )
            digest = keys["token"].fill_null("")
        return pl.DataFrame({POS: positions, "digest": digest, "n_images": counts})

    schema: dict[str, pl.DataType] = {"digest": pl.Utf8(), "n_images": pl.Int32()}
    return _cached(ctx, _with_row_pos(rows), "digest", schema, compute)


def _sha256_hex(data: pa.Array, batch: int = 256) -> Iterator[str | None]:
    """The sha256 (hex) of each value of a binary array (None for a null), a batch at a time."""
    for start in range(0, len(data), batch):
        for value in data.slice(start, batch).to_pylist():
            yield None if value is None else hashlib.sha256(value).hexdigest()


def phash_signatures(
    ctx: Context, rows: pl.DataFrame, *, exact: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes uint64 (n, K) padded with 0, image counts int64 (n,), hashed bool (n,)) for `rows`;
    `hashed` is False for a row with an image that has no hash (undecodable, stored by path only,
    too large) and for a row without images."""

    def compute(part: pl.DataFrame) -> pl.DataFrame:
        pos_of = dict(zip(part[ROW].to_list(), part[POS].to_list(), strict=True))
        out_pos: list[int] = []
        out_hashes: list[list[int]] = []
        out_ok: list[bool] = []
        for row_ids, images in ctx.images(part, batch_rows=BATCH_ROWS):
            flat = [data for ims in images for data in ims]
            hashes, ok = phashes(flat, exact=exact)
            at = 0
            for ims in images:
                n = len(ims)
                out_hashes.append(hashes[at : at + n].tolist())
                out_ok.append(n > 0 and bool(ok[at : at + n].all()))
                at += n
            out_pos.extend(pos_of[r] for r in row_ids.to_list())
        return pl.DataFrame(
            {POS: out_pos, "phash": out_hashes, "hashed": out_ok},
            schema={POS: pl.Int64, "phash": pl.List(pl.UInt64), "hashed": pl.Boolean},
        )

    kind = "phash-exact" if exact else "phash"
    got = _cached(
        ctx, _with_row_pos(rows), kind, {"phash": pl.List(pl.UInt64()), "hashed": pl.Boolean()}, compute
    )
    counts = got["phash"].list.len().to_numpy().astype(np.int64)
    width = max(1, int(counts.max()) if len(counts) else 1)
    signatures = np.zeros((got.height, width), dtype=np.uint64)
    for k in range(width):
        signatures[:, k] = got["phash"].list.get(k, null_on_oob=True).fill_null(0).to_numpy()
    return signatures, counts, got["hashed"].to_numpy()


def prompt_keys(rows: pl.DataFrame) -> pl.DataFrame:
    """Two UInt64 columns `p0`, `p1`: the normalised prompt's 128-bit key, aligned with `rows`.
    The string work runs on every core (`select_rowwise`)."""
    prompts = rows.select("prompt")
    text: pl.Series | None = None
    if bool((prompts["prompt"].list.len() == 1).fill_null(False).all()):  # one message a row
        first = pl.col("prompt").list.first()
        line = first.struct.field("role") + ": " + first.struct.field("content")
        text = select_rowwise(prompts, line.str.to_lowercase().alias("t"))["t"]
        text = None if text.null_count() else text  # a null part: the general path decides
    if text is None:
        lines = pl.col("prompt").list.eval(
            pl.element().struct.field("role") + pl.lit(": ") + pl.element().struct.field("content")
        )
        text = select_rowwise(prompts, lines.list.join("\n").str.to_lowercase().alias("t"))["t"]
    # Collapsing whitespace is the costly step: only rows with a run of it or a tab or newline
    # change, so only those go through the replace.
    texts = text.to_frame("t")
    uneven = select_rowwise(texts, pl.col("t").str.contains(r"\s\s|[\s&&[^ ]]").fill_null(False))["t"]
    if bool(uneven.any()):
        texts = texts.with_columns(
            text.scatter(uneven.arg_true(), text.filter(uneven).str.replace_all(r"\s+", " ")).alias("t")
        )
    stripped = pl.col("t").str.strip_chars()
    return select_rowwise(
        texts, stripped.hash(seed=0).alias("p0"), stripped.hash(seed=SECOND_SEED).alias("p1")
    )


def _with_row_pos(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(pl.col(ROW).cast(pl.Int64), pl.col(FILE), pl.col(POS).cast(pl.Int64))
