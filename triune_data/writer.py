"""Shards on disk: atomic parquet files, size-capped series, resumable state, the Hub layout.

Layout of a finished dataset directory::

    README.md                                   dataset card (configs per data_source + default, features)
    manifest.json                               files + sha256, rows per source and split, rejects, recipe hash
    data/{data_source}/{split}-NNNNN-of-MMMMM.parquet
    rejects/rejects-00000-of-00001.parquet      one row per rejected record, with `reason` and `detail`

While a build runs, shards live in `.work/` under provisional names together with `state.json`;
a shard enters the state only after its file is complete and renamed into place, so an interrupted
build resumes from the last committed shard and writes the same bytes it would have written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from triune_data import atomic
from triune_data.errors import DatasetError
from triune_data.manifest import FileEntry, sha256_file
from triune_data.rejects import RejectRow
from triune_data.schema import record_schema, records_to_table

IMAGE_BYTES_COLUMN = "images.list.element.bytes"

REJECTS_FILE = "rejects/rejects-00000-of-00001.parquet"
REJECT_SCHEMA = record_schema(RejectRow)


# Sample columns whose values (almost) never repeat: a dictionary for them is built, outgrows its
# page limit and is thrown away, which costs time (about a fifth of a metadata shard's write) and
# leaves a larger file than plain encoding does.
UNIQUE_VALUE_COLUMNS = frozenset(
    {
        "id",
        "provenance.original_id",
        "provenance.file",
        "images.list.element.path",
        "prompt.list.element.content",
        "boxes.list.element.x1",
        "boxes.list.element.y1",
        "boxes.list.element.x2",
        "boxes.list.element.y2",
    }
)


def _parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    # Image bytes are already compressed (JPEG/PNG): store them as-is and skip their statistics.
    has_images = "images" in schema.names
    compression: str | dict[str, str] = "zstd"
    others: bool | list[str] = True
    dictionary: bool | list[str] = True
    if has_images:
        leaves = _leaf_paths(schema)
        compression = {p: ("NONE" if p == IMAGE_BYTES_COLUMN else "ZSTD") for p in leaves}
        others = [p for p in leaves if p != IMAGE_BYTES_COLUMN]
        # Dictionary-encoding image bytes would hash every image to find no repeats.
        dictionary = [p for p in others if p not in UNIQUE_VALUE_COLUMNS]
    return pq.ParquetWriter(
        path, schema, compression=compression, write_statistics=others, use_dictionary=dictionary
    )


def _leaf_paths(schema: pa.Schema) -> list[str]:
    out: list[str] = []

    def walk(prefix: str, t: pa.DataType) -> None:
        if pa.types.is_struct(t):
            for f in t:
                walk(f"{prefix}.{f.name}", f.type)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(f"{prefix}.list.element", t.value_type)
        else:
            out.append(prefix)

    for f in schema:
        walk(f.name, f.type)
    return out


def write_table(table: pa.Table, path: Path) -> None:
    """Write `table` as one parquet file (one row group), atomically."""

    def produce(tmp: Path) -> None:
        writer = _parquet_writer(tmp, table.schema)
        try:
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
        finally:
            writer.close()

    atomic.write_file(path, produce)


def rejects_table(rows: list[RejectRow]) -> pa.Table:
    """Reject rows as a table of `REJECT_SCHEMA` (the schema derived from `RejectRow`)."""
    return records_to_table(rows, RejectRow, REJECT_SCHEMA)


def write_rejects(root: Path, rejects: pa.Table | list[RejectRow]) -> FileEntry:
    """Write the rejects shard `root/REJECTS_FILE` from reject rows (or their table); returns its
    ledger entry. Every producer of a dataset directory writes its rejects through this."""
    table = rejects_table(rejects) if isinstance(rejects, list) else rejects.cast(REJECT_SCHEMA)
    write_table(table, root / REJECTS_FILE)
    return FileEntry.of(root, REJECTS_FILE, rows=table.num_rows)


def _unreadable(path: Path, exc: Exception) -> DatasetError:
    if isinstance(exc, FileNotFoundError):
        why = "missing"
    else:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:300]
    return DatasetError(
        f"{path}: cannot read this dataset file ({why}); rebuild the dataset or restore the file"
    )


def read_shard(path: Path, **kwargs: Any) -> pa.Table:
    """`pq.read_table(path, **kwargs)`; a missing, truncated or foreign file is a DatasetError naming it."""
    try:
        return pq.read_table(path, **kwargs)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def open_shard(path: Path) -> pq.ParquetFile:
    """`pq.ParquetFile(path)`, with `read_shard`'s error (a failure mid-file raises pyarrow's own)."""
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def read_rejects(root: str | Path) -> pa.Table:
    """The rejects of a dataset directory (an empty table when it has none)."""
    p = Path(root) / REJECTS_FILE
    return read_shard(p, schema=REJECT_SCHEMA) if p.exists() else REJECT_SCHEMA.empty_table()


@dataclass
class ShardSeries:
    """Size-capped parquet shards of one (data_source, split) stream, written under `work`.

    Rows arrive as tables (one per processed chunk); they are buffered into row groups of about
    `row_group_bytes` and a shard is closed before it would exceed `cap_bytes`.
    """

    work: Path
    data_source: str
    split: str
    schema: pa.Schema
    cap_bytes: int
    row_group_bytes: int
    shards: list[dict[str, Any]] = field(default_factory=list)  # committed: name, rows
    committed_upto: int = 0  # every draft index below this is in a committed shard
    hasher: Callable[[Path], Future[str]] | None = None  # hashes a closed shard off the writer thread
    # Called with the open shard's path after each row group: flushing it to disk in the background
    # leaves little for the fsync when the shard is committed (it would otherwise write it all then).
    flusher: Callable[[Path], object] | None = None
    digests: dict[str, Future[str]] = field(default_factory=dict)
    _writer: pq.ParquetWriter | None = None
    _tmp: Path | None = None
    _buffer: list[pa.Table] = field(default_factory=list)
    _buffer_bytes: int = 0
    _shard_bytes: int = 0
    _shard_rows: int = 0

    @property
    def key(self) -> str:
        return f"{self.data_source}/{self.split}"

    def _name(self, index: int) -> str:
        return f"{self.data_source}/{self.split}-{index:05d}.parquet"

    def needs_rotation(self, incoming_bytes: int) -> bool:
        open_bytes = self._shard_bytes + self._buffer_bytes
        return open_bytes > 0 and open_bytes + incoming_bytes > self.cap_bytes

    def add(self, table: pa.Table) -> None:
        self._buffer.append(table)
        self._buffer_bytes += table.nbytes
        self._shard_rows += table.num_rows
        if self._buffer_bytes >= self.row_group_bytes:
            self._flush_buffer()

    def _flush_buffer(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self._tmp = self.work / (self._name(len(self.shards)) + ".tmp")
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _parquet_writer(self._tmp, self.schema)
        group = pa.concat_tables(self._buffer)
        self._writer.write_table(group, row_group_size=max(group.num_rows, 1))
        if self.flusher is not None and self._tmp is not None:
            self.flusher(self._tmp)
        self._shard_bytes += self._buffer_bytes
        self._buffer, self._buffer_bytes = [], 0

    def commit(self, upto: int) -> bool:
        """Close the open shard (if any rows) and record that drafts below `upto` are committed."""
        if self._shard_rows == 0:
            self.committed_upto = upto
            return False
        self._flush_buffer()
        assert self._writer is not None and self._tmp is not None
        self._writer.close()
        name = self._name(len(self.shards))
        size = self._tmp.stat().st_size
        atomic.publish(self._tmp, self.work / name)
        self.shards.append({"name": name, "rows": self._shard_rows, "bytes": size})
        if self.hasher is not None:
            self.digests[name] = self.hasher(self.work / name)
        self._writer, self._tmp = None, None
        self._shard_bytes = self._shard_rows = 0
        self.committed_upto = upto
        return True

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # closing flushes, which fails on a full disk too
                self._writer.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def state(self) -> dict[str, Any]:
        return {"shards": self.shards, "committed_upto": self.committed_upto}


class ShardSeriesSet:
    """The shard series of one output directory, one per (data_source, split), made on first use
    and restored from a resumable state; closed shards are hashed (and, with `flush`, open ones
    flushed) on one background thread, off the writer's critical path (hashlib releases the GIL).
    `build-dataset` and `triune filter` both write through this."""

    def __init__(
        self,
        work: Path,
        schema: pa.Schema,
        cap_bytes: int,
        row_group_bytes: int,
        *,
        flush: Callable[[Path], object] | None = None,
    ):
        self.work, self.schema = work, schema
        self.cap_bytes, self.row_group_bytes = cap_bytes, row_group_bytes
        self.series: dict[tuple[str, str], ShardSeries] = {}
        self.hasher = ThreadPoolExecutor(1, thread_name_prefix="triune-sha256")
        self._flush = flush

    def get(self, key: tuple[str, str]) -> ShardSeries:
        if key not in self.series:
            flush = self._flush
            self.series[key] = ShardSeries(
                self.work,
                key[0],
                key[1],
                self.schema,
                self.cap_bytes,
                self.row_group_bytes,
                hasher=lambda path: self.hasher.submit(sha256_file, path),
                flusher=None if flush is None else (lambda path: self.hasher.submit(flush, path)),
            )
        return self.series[key]

    def by_key(self, key: str) -> ShardSeries:
        """The series of `"{data_source}/{split}"` (a key of `state()`)."""
        source, split = key.split("/", 1)
        return self.series[(source, split)]

    def state(self) -> dict[str, dict[str, Any]]:
        return {s.key: s.state() for s in self.series.values()}

    def restore(self, state: dict[str, dict[str, Any]]) -> None:
        """Take up the committed shards of an interrupted run (its `state()`)."""
        for key, st in state.items():
            source, split = key.split("/", 1)
            s = self.get((source, split))
            s.shards, s.committed_upto = st["shards"], st["committed_upto"]


def final_shard_names(series_state: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Map provisional shard names to Hub names `data/{source}/{split}-NNNNN-of-MMMMM.parquet`."""
    mapping = {}
    for key, st in series_state.items():
        total = len(st["shards"])
        source, split = key.split("/", 1)
        for i, shard in enumerate(st["shards"]):
            mapping[shard["name"]] = f"data/{source}/{split}-{i:05d}-of-{total:05d}.parquet"
    return mapping


def concat_parquet(paths: Iterable[Path], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(p, schema=schema) for p in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()
