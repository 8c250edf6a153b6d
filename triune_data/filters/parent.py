"""The parent of `triune filter`: its manifest and shards after the cheap checks (schema version,
each shard's Arrow schema), and its metadata columns loaded once with polars, with ROW / FILE /
POS (never the `images` column)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import polars as pl
import pyarrow as pa

from triune_data.errors import DatasetError
from triune_data.filters.base import FILE, POS, ROW
from triune_data.filters.output import COPY
from triune_data.manifest import MANIFEST, Manifest, read_manifest
from triune_data.schema import arrow_schema
from triune_data.types import SCHEMA_VERSION
from triune_data.writer import open_shard

ORIGINAL_ID = "_original_id"  # the row's provenance.original_id, for its reject rows


def open_parent(src: Path) -> tuple[Manifest, list[Path]]:
    """The parent's manifest and shard paths, after the cheap checks: schema version, and each
    shard's Arrow schema against the sample schema (field names and types; not the metadata)."""
    manifest = read_manifest(src)
    if manifest.schema_version != SCHEMA_VERSION:
        raise DatasetError(
            f"{src / MANIFEST}: schema version {manifest.schema_version}, this triune reads "
            f"{SCHEMA_VERSION}; rebuild the dataset with this version"
        )
    expected = arrow_schema()
    files = [src / f.path for f in manifest.files]
    for path in files:
        found = open_shard(path).schema_arrow
        if not found.equals(expected, check_metadata=False):
            raise DatasetError(
                f"{path}: not a triune shard of schema {SCHEMA_VERSION} ({_mismatch(found, expected)})"
            )
        meta = (found.metadata or {}).get(b"triune")
        version = json.loads(meta).get("schema_version") if meta else None
        if version != SCHEMA_VERSION:
            raise DatasetError(f"{path}: schema version {version}, this triune reads {SCHEMA_VERSION}")
    return manifest, files


def _mismatch(found: pa.Schema, expected: pa.Schema) -> str:
    missing = [n for n in expected.names if n not in found.names]
    if missing:
        return f"no column {missing[0]!r}"
    extra = [n for n in found.names if n not in expected.names]
    if extra:
        return f"unexpected column {extra[0]!r}"
    for f in expected:
        other = found.field(f.name)
        if not other.type.equals(f.type):
            return f"column {f.name!r} is {other.type}, expected {f.type}"
    return "columns in another order"


def load_rows(files: list[Path], columns: list[str]) -> pl.DataFrame:
    """The metadata `columns` of every shard, in dataset order, with ROW, FILE, POS, ORIGINAL_ID."""
    wanted = [c for c in dict.fromkeys(columns) if c != "images"]
    original_id = pl.col("provenance").struct.field("original_id").alias(ORIGINAL_ID)
    if not files:  # a dataset whose every row was rejected: no shards, the same columns
        empty = pl.from_arrow(arrow_schema().empty_table())
        assert isinstance(empty, pl.DataFrame)
        return empty.select(
            *wanted,
            original_id,
            pl.lit(0, dtype=pl.UInt32).alias(FILE),
            pl.lit(0, dtype=pl.UInt32).alias(POS),
            pl.lit(0, dtype=pl.UInt64).alias(ROW),
            pl.lit(0, dtype=pl.UInt32).alias(COPY),
        )
    try:
        # One scan of every shard (polars reads them in parallel, into one chunk per column: the
        # stages select, mask and gather these columns many times, several times faster on one
        # chunk); each row's FILE and POS follow from its place and the shards' row counts.
        counts = [open_shard(path).metadata.num_rows for path in files]
        df = (
            pl.scan_parquet(files, row_index_name=ROW)
            .select(*wanted, original_id, pl.col(ROW).cast(pl.UInt64))
            .collect()
            .rechunk()
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DatasetError(
            f"cannot read the shards of this dataset ({' '.join(str(exc).split())[:300]})"
        ) from None
    if df.height != sum(counts):
        raise DatasetError(f"the shards of this dataset hold {df.height} rows, their footers {sum(counts)}")
    starts = pl.Series(list(itertools.accumulate(counts[:-1], initial=0)), dtype=pl.UInt64)
    file = (starts.search_sorted(df[ROW], side="right") - 1).cast(pl.UInt32)
    pos = (df[ROW] - starts.gather(file)).cast(pl.UInt32)
    return df.select(
        *wanted,
        ORIGINAL_ID,
        file.alias(FILE),
        pos.alias(POS),
        ROW,
        pl.lit(0, dtype=pl.UInt32).alias(COPY),
    )
