"""`triune build-dataset`: recipe -> adapters -> drafts -> samples -> shards, resumable.

The pipeline, top to bottom:

1. Every source entry's adapter yields drafts and rejects; each record gets a global index.
2. Records are cut into fixed-size chunks (by index). Duplicate ids are caught here, in order.
3. Chunks are materialized (image bytes loaded, sizes from headers, boxes to the canonical frame,
   validation) inline or in worker processes, at most a few chunks in flight (flat memory).
4. Results are written in chunk order into one shard series per (data_source, split), plus rejects.
5. When a shard closes, the build state is saved: a resumed build skips every record already
   committed and produces the same bytes as an uninterrupted one.

Determinism: chunk boundaries depend only on record indices and shard boundaries only on row
sizes, so the same input, recipe and seed give byte-identical shards for any number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from triune_data.errors import DatasetError
from triune_data.images import ImagePolicy
from triune_data.materialize import MaterializeOptions, SourceRun, materialize
from triune_data.recipe import LoadedRecipe, load_recipe
from triune_data.schema import SCHEMA_VERSION, Sample, arrow_schema, samples_to_table
from triune_data.sources.base import Draft, Reject, SourceContext, get_source, take
from triune_data.writer import (
    REJECT_SCHEMA,
    ShardSeries,
    atomic_write_json,
    write_table_atomic,
)

CHUNK_SIZE = 64  # records per unit of work; part of the resume contract
DUPLICATE_ID = "duplicate_id"
WORK_DIR = ".work"


@dataclass
class SourceCounts:
    """Per data_source. During a build only for progress; the final numbers are read back from
    the written shards and rejects, and `read == kept + rejected` is checked there."""

    read: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class BuildReport:
    out: Path
    sources: dict[str, SourceCounts]
    files: int
    bytes: int
    resumed_from: int = 0  # records skipped because a previous run had committed them


@dataclass
class Progress:
    records: int
    kept: int
    rejected: int
    bytes: int


# ----------------------------------------------------------------------------------------------
# Work done per chunk (in a worker process or inline).

_RUNS: list[SourceRun] = []
_OPTS = MaterializeOptions()
_SCHEMA: pa.Schema | None = None


def _init_worker(runs: list[SourceRun], opts: MaterializeOptions, schema: pa.Schema) -> None:
    global _RUNS, _OPTS, _SCHEMA
    _RUNS, _OPTS, _SCHEMA = runs, opts, schema


@dataclass
class ChunkResult:
    start: int
    tables: dict[tuple[str, str], pa.Table]  # (data_source, split) -> rows in record order
    rejects: list[tuple[int, int, Reject]]  # (record index, run index, reject)


def _process_chunk(start: int, items: list[tuple[int, int, Draft]]) -> ChunkResult:
    kept: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    rejects = []
    for index, run_index, draft in items:
        run = _RUNS[run_index]
        out = materialize(draft, run, _OPTS)
        if isinstance(out, Reject):
            rejects.append((index, run_index, out))
        else:
            kept[(run.data_source, run.split)].append(out)
    tables = {key: samples_to_table(rows, _SCHEMA) for key, rows in kept.items()}
    return ChunkResult(start, tables, rejects)


# ----------------------------------------------------------------------------------------------
# Records from the recipe's sources.


def _runs(loaded: LoadedRecipe) -> list[SourceRun]:
    runs = []
    for i, s in enumerate(loaded.recipe.sources):
        runs.append(
            SourceRun(
                adapter=s.adapter,
                data_source=s.data_source,
                split=s.split,
                sample_weight=s.sample_weight,
                license=s.license,
                revision=s.revision,
                verifier=s.reward.verifier,
                params=tuple(sorted(s.reward.params.items())),
                accuracy_weight=s.reward.accuracy_weight,
                format_weight=s.reward.format_weight,
                entry_index=i,
            )
        )
    return runs


def _records(loaded: LoadedRecipe) -> Iterator[tuple[int, Draft | Reject]]:
    for i, (entry, opts) in enumerate(zip(loaded.recipe.sources, loaded.options, strict=True)):
        ctx = SourceContext(
            data_source=entry.data_source,
            split=entry.split,
            seed=loaded.recipe.seed,
            base_dir=loaded.base_dir,
            prompts=loaded.prompts,
            limit=entry.limit,
        )
        for rec in take(get_source(entry.adapter).read(opts, ctx), entry.limit):
            yield i, rec


def _chunks(
    records: Iterator[tuple[int, Draft | Reject]],
) -> Iterator[tuple[int, list[tuple[int, int, Draft | Reject]]]]:
    chunk: list[tuple[int, int, Draft | Reject]] = []
    start = 0
    for index, (run_index, rec) in enumerate(records):
        chunk.append((index, run_index, rec))
        if len(chunk) == CHUNK_SIZE:
            yield start, chunk
            start, chunk = index + 1, []
    if chunk:
        yield start, chunk


# ----------------------------------------------------------------------------------------------
# The build.


class _Build:
    def __init__(self, loaded: LoadedRecipe, out: Path, *, resume: bool):
        self.loaded = loaded
        self.out = out
        self.work = out / WORK_DIR
        self.runs = _runs(loaded)
        self.schema = arrow_schema(
            {"triune_recipe": json.dumps({"name": loaded.recipe.name, "hash": loaded.hash})}
        )
        out_cfg = loaded.recipe.output
        self.cap = int(out_cfg.shard_size_mb * 1024 * 1024)
        self.row_group = int(out_cfg.row_group_mb * 1024 * 1024)
        self.series: dict[tuple[str, str], ShardSeries] = {}
        self.reject_rows: list[dict[str, Any]] = []
        self.reject_parts: list[str] = []
        self.rejects_upto = 0
        self.counts: dict[str, SourceCounts] = {r.data_source: SourceCounts() for r in self.runs}
        self.bytes_written = 0
        if resume and (self.work / "state.json").exists():
            self._load_state()
        else:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work.mkdir(parents=True)
            self._save_state()

    # -- state ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "recipe_hash": self.loaded.hash,
            "chunk_size": CHUNK_SIZE,
            "schema_version": SCHEMA_VERSION,
            "series": {s.key: s.state() for s in self.series.values()},
            "rejects": {"parts": self.reject_parts, "committed_upto": self.rejects_upto},
        }

    def _save_state(self) -> None:
        atomic_write_json(self.work / "state.json", self._state())

    def _load_state(self) -> None:
        state = json.loads((self.work / "state.json").read_text())
        if state.get("recipe_hash") != self.loaded.hash or state.get("chunk_size") != CHUNK_SIZE:
            raise DatasetError(
                f"{self.out}: the interrupted build used a different recipe; rebuild without --resume"
            )
        for key, st in state["series"].items():
            source, split = key.split("/", 1)
            s = self._series((source, split))
            s.shards, s.committed_upto = st["shards"], st["committed_upto"]
        self.reject_parts = state["rejects"]["parts"]
        self.rejects_upto = state["rejects"]["committed_upto"]
        for tmp in self.work.rglob("*.tmp"):
            tmp.unlink()

    def _series(self, key: tuple[str, str]) -> ShardSeries:
        if key not in self.series:
            self.series[key] = ShardSeries(self.work, key[0], key[1], self.schema, self.cap, self.row_group)
        return self.series[key]

    def committed(self, key: tuple[str, str]) -> int:
        s = self.series.get(key)
        return s.committed_upto if s else 0

    # -- writing --------------------------------------------------------------------------
    def _flush_rejects(self, upto: int) -> None:
        if self.reject_rows:
            name = f"rejects/part-{len(self.reject_parts):05d}.parquet"
            write_table_atomic(pa.Table.from_pylist(self.reject_rows, schema=REJECT_SCHEMA), self.work / name)
            self.reject_parts.append(name)
            self.reject_rows = []
        self.rejects_upto = upto

    def _commit(self, series: ShardSeries, upto: int) -> None:
        if series.commit(upto):
            self._flush_rejects(upto)
            self._save_state()

    def add_reject(self, index: int, run_index: int, rej: Reject) -> None:
        run = self.runs[run_index]
        self.counts[run.data_source].rejected[rej.reason] += 1
        if index < self.rejects_upto:
            return  # committed by the interrupted run
        self.reject_rows.append(
            {
                "data_source": run.data_source,
                "split": run.split,
                "id": f"{run.data_source}/{rej.id}" if rej.id else "",
                "original_id": rej.original_id,
                "reason": rej.reason,
                "detail": rej.detail[:1000],
                "file": rej.file,
            }
        )

    def add_result(self, result: ChunkResult, main_rejects: list[tuple[int, int, Reject]]) -> None:
        for key, table in result.tables.items():
            series = self._series(key)
            if series.needs_rotation(table.nbytes):
                self._commit(series, result.start)
            series.add(table)
            self.counts[key[0]].kept += table.num_rows
            self.bytes_written += table.nbytes
        for index, run_index, rej in sorted(main_rejects + result.rejects, key=lambda r: r[0]):
            self.add_reject(index, run_index, rej)

    def finish(self, end: int) -> None:
        for series in self.series.values():
            self._commit(series, end)
        self._flush_rejects(end)
        self._save_state()

    def abort(self) -> None:
        for series in self.series.values():
            series.abort()


def build_dataset(
    recipe_path: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> BuildReport:
    """Build the dataset described by the recipe into `out` (see module docstring)."""
    loaded = load_recipe(recipe_path)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise DatasetError(
                f"{out} is not empty: pass --resume to continue a build or --overwrite to replace it"
            )
        shutil.rmtree(out)
    if resume and (out / "manifest.json").exists() and not (out / WORK_DIR).exists():
        raise DatasetError(f"{out} is already complete; nothing to resume")
    out.mkdir(parents=True, exist_ok=True)
    b = _Build(loaded, out, resume=resume)
    policy = loaded.recipe.images
    opts = MaterializeOptions(
        images=ImagePolicy(
            check=policy.check, max_pixels=policy.max_pixels, max_aspect_ratio=policy.max_aspect_ratio
        ),
        box_tolerance_px=policy.box_tolerance_px,
    )
    _init_worker(b.runs, opts, b.schema)
    pool = None
    if workers > 1:
        ctx = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(b.runs, opts, b.schema)
        )
    seen: dict[str, set[str]] = defaultdict(set)
    skipped = 0
    end = 0
    records = 0
    try:
        inflight: list[tuple[Future[ChunkResult] | ChunkResult, list[tuple[int, int, Reject]]]] = []
        for start, chunk in _chunks(_records(loaded)):
            work: list[tuple[int, int, Draft]] = []
            main_rejects: list[tuple[int, int, Reject]] = []
            for index, run_index, rec in chunk:
                run = b.runs[run_index]
                b.counts[run.data_source].read += 1
                if isinstance(rec, Reject):
                    main_rejects.append((index, run_index, rec))
                elif rec.id in seen[run.data_source]:
                    main_rejects.append(
                        (
                            index,
                            run_index,
                            Reject(
                                DUPLICATE_ID, f"id {rec.id!r} seen before", rec.original_id, rec.id, rec.file
                            ),
                        )
                    )
                else:
                    seen[run.data_source].add(rec.id)
                    if index < b.committed((run.data_source, run.split)):
                        skipped += 1  # already in a committed shard or in the committed rejects
                    else:
                        work.append((index, run_index, rec))
            end = chunk[-1][0] + 1
            records = end
            job = pool.submit(_process_chunk, start, work) if pool else _process_chunk(start, work)
            inflight.append((job, main_rejects))
            while len(inflight) > (2 * workers if pool else 0):
                _drain_one(b, inflight, progress, records)
        while inflight:
            _drain_one(b, inflight, progress, records)
        b.finish(end)
    except BaseException:
        b.abort()
        raise
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return _finalize(b, skipped)


def _drain_one(b: _Build, inflight: list, progress: Callable[[Progress], None] | None, records: int) -> None:
    job, main_rejects = inflight.pop(0)
    result = job.result() if isinstance(job, Future) else job
    b.add_result(result, main_rejects)
    if progress:
        kept = sum(c.kept for c in b.counts.values())
        rejected = sum(c.rejected_total for c in b.counts.values())
        progress(Progress(records=records, kept=kept, rejected=rejected, bytes=b.bytes_written))


def _finalize(b: _Build, skipped: int) -> BuildReport:
    from triune_data.manifest import write_outputs

    return write_outputs(b, skipped)
