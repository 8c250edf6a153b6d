"""The output side of `triune filter`: the derived dataset's shard series, committed parent
shard by parent shard so that `--resume` continues where a run stopped, and the kept rows of one
parent shard with their copies and updated columns.

The shards go through the build's `ShardSeries` (triune_data/writer.py): filter and build write
the same way (row groups, size cap, atomic publish, hashes off the write path).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from triune_data import outdir
from triune_data.filters.base import POS
from triune_data.writer import ShardSeriesSet, open_shard

WORK_DIR = ".work"
COPY = "_copy"  # 0 for a parent row, k for its k-th extra copy (id `{id}~{k}`)


class ShardWriter:
    """The derived dataset's shard series, committed parent file by parent file (resumable)."""

    def __init__(
        self,
        out: Path,
        schema: pa.Schema,
        cap: int,
        row_group: int,
        state_key: dict[str, Any],
        *,
        resume: bool,
    ):
        self.out, self.work = out, out / WORK_DIR
        self.schema, self.cap, self.row_group = schema, cap, row_group
        self.state_key = state_key
        self.shards = ShardSeriesSet(self.work, schema, cap, row_group)
        self.series, self.hasher = self.shards.series, self.shards.hasher
        self.get, self.series_by_key = self.shards.get, self.shards.by_key
        self.lock = threading.Lock()
        if outdir.fresh_work(self.work, resume=resume):
            self._load_state()
        else:
            self._save_state()

    def _state(self) -> dict[str, Any]:
        return {**self.state_key, "series": self.shards.state()}

    def _save_state(self) -> None:
        outdir.save_state(self.work, self._state())

    def _load_state(self) -> None:
        state = outdir.load_state(
            self.work,
            self.out,
            expected=self.state_key,
            mismatch="the interrupted run used another parent, recipe or mode",
        )
        self.shards.restore(state["series"])
        for tmp in self.work.rglob("*.tmp"):
            tmp.unlink()

    def add(self, key: tuple[str, str], file_index: int, table: pa.Table) -> None:
        """Add parent file `file_index`'s rows to series `key` (called from several threads, one per
        series at a time): a commit and the state it saves happen under one lock, so the saved
        state never holds a series half-way through its commit."""
        series = self.series[key]
        if series.needs_rotation(table.nbytes):
            with self.lock:
                if series.commit(file_index):
                    self._save_state()
        series.add(table)

    def close_series(self, key: tuple[str, str], end: int) -> None:
        """Commit series `key` once its last parent file is in, on the thread that wrote it (so the
        series' last row group, often its only one, is written in parallel with the others, not
        one series after another in `finish`); the same bytes, committed sooner."""
        with self.lock:
            if self.series[key].commit(end):
                self._save_state()

    def finish(self, end: int) -> None:
        for series in self.series.values():
            series.commit(end)
        self._save_state()

    def abort(self) -> None:
        for series in self.series.values():
            series.abort()
        self.hasher.shutdown(cancel_futures=True)

    def digest(self, key: str, name: str) -> str | None:
        """The sha256 of committed shard `name` if this run wrote it (a resumed run hashes the rest)."""
        future = self.series_by_key(key).digests.get(name)
        return None if future is None else future.result()


def shard_table(path: Path, kept: pl.DataFrame, updated: set[str], schema: pa.Schema) -> pa.Table:
    """The kept rows of one parent shard (sorted by POS, COPY), full columns, updates applied."""
    table = open_shard(path).read()
    copied = bool((kept[COPY] > 0).any())
    if kept.height == table.num_rows and not copied:
        out = table  # every row kept, none copied: nothing to gather
    elif not copied:  # rows dropped, none copied: a mask is cheaper than a gather
        mask = pl.repeat(False, table.num_rows, dtype=pl.Boolean, eager=True).scatter(kept[POS], True)
        out = table.filter(mask.to_arrow())
    else:
        out = table.take(pa.array(kept[POS].to_numpy()))
    columns = {name: out.column(name) for name in out.column_names}
    for col in sorted(updated):
        columns[col] = kept[col].to_arrow().cast(schema.field(col).type)
    return pa.Table.from_arrays([columns[n] for n in schema.names], schema=schema)
