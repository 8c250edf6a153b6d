"""`triune build-dataset`: recipe -> adapters -> drafts -> samples -> shards, resumable.

The pipeline, top to bottom:

1. Every source entry's adapter yields drafts and rejects; each record gets a global index.
2. Records are cut into fixed-size chunks (by index). Duplicate ids are caught, in order.
3. Chunks are materialized (image bytes loaded, sizes from headers, boxes to the canonical frame,
   validation) inline or in worker processes (`triune_data.produce`), a few chunks in flight.
4. A writer thread writes results in chunk order into one shard series per (data_source, split),
   plus rejects, hashing each shard as it closes.
5. When a shard closes, the build state is saved: a resumed build skips every record already
   committed and produces the same bytes as an uninterrupted one.

Determinism: chunk boundaries depend only on record indices and shard boundaries only on row
sizes, so the same input, recipe and seed give byte-identical shards for any number of workers.
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from triune_data import atomic, outdir
from triune_data.card import write_card
from triune_data.errors import DatasetError
from triune_data.images import ImagePolicy
from triune_data.manifest import (
    MANIFEST,
    FileEntry,
    Manifest,
    RecipeInfo,
    SourceCounts,
    write_manifest,
)
from triune_data.materialize import MaterializeOptions
from triune_data.produce import CHUNK_SIZE, ChunkResult, Plan, Producer, fast_memory_pool, runs_of, spill_dir
from triune_data.recipe import LoadedRecipe, load_recipe
from triune_data.rejects import RejectRow
from triune_data.schema import arrow_schema
from triune_data.sources.base import Reject
from triune_data.types import SCHEMA_VERSION
from triune_data.writer import (
    REJECT_SCHEMA,
    ShardSeries,
    ShardSeriesSet,
    concat_parquet,
    final_shard_names,
    rejects_table,
    write_rejects,
    write_table,
)

WORK_DIR = ".work"


@dataclass
class BuildReport:
    out: Path
    sources: dict[str, SourceCounts]  # as in the manifest
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
# The build.


class _Build:
    def __init__(self, loaded: LoadedRecipe, out: Path, *, resume: bool):
        self.loaded = loaded
        self.out = out
        self.work = out / WORK_DIR
        self.runs = runs_of(loaded)
        self.schema = arrow_schema(
            {"triune_recipe": json.dumps({"name": loaded.recipe.name, "hash": loaded.hash})}
        )
        out_cfg = loaded.recipe.output
        self.cap = int(out_cfg.shard_size_mb * 1024 * 1024)
        self.row_group = int(out_cfg.row_group_mb * 1024 * 1024)
        # A shard is flushed while open and hashed once closed, on the set's background thread.
        self.shards = ShardSeriesSet(self.work, self.schema, self.cap, self.row_group, flush=_flush)
        self.series, self.hasher = self.shards.series, self.shards.hasher
        self._series, self.series_by_key = self.shards.get, self.shards.by_key
        self.reject_rows: list[RejectRow] = []
        self.reject_parts: list[str] = []
        self.rejects_upto = 0
        self.read: Counter = Counter()  # records read per data_source (including skipped ones)
        self.bytes_written = self.kept = self.rejected = 0  # progress only
        if outdir.fresh_work(self.work, resume=resume):
            self._load_state()
        else:
            self._save_state()

    # -- state ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "recipe_hash": self.loaded.hash,
            "chunk_size": CHUNK_SIZE,
            "schema_version": SCHEMA_VERSION,
            "series": self.shards.state(),
            "rejects": {"parts": self.reject_parts, "committed_upto": self.rejects_upto},
        }

    def _save_state(self) -> None:
        outdir.save_state(self.work, self._state())

    def _load_state(self) -> None:
        state = outdir.load_state(
            self.work,
            self.out,
            expected={"recipe_hash": self.loaded.hash, "chunk_size": CHUNK_SIZE},
            mismatch="the interrupted build used a different recipe",
        )
        self.shards.restore(state["series"])
        self.reject_parts = state["rejects"]["parts"]
        self.rejects_upto = state["rejects"]["committed_upto"]
        for tmp in self.work.rglob("*.tmp"):
            tmp.unlink()

    # -- writing --------------------------------------------------------------------------
    def _flush_rejects(self, upto: int) -> None:
        if self.reject_rows:
            name = f"rejects/part-{len(self.reject_parts):05d}.parquet"
            write_table(rejects_table(self.reject_rows), self.work / name)
            self.reject_parts.append(name)
            self.reject_rows = []
        self.rejects_upto = upto

    def _commit(self, series: ShardSeries, upto: int) -> None:
        if series.commit(upto):
            self._flush_rejects(upto)
            self._save_state()

    def add_reject(self, index: int, run_index: int, rej: Reject) -> None:
        run = self.runs[run_index]
        self.rejected += 1
        if index < self.rejects_upto:
            return  # committed by the interrupted run
        self.reject_rows.append(
            RejectRow(
                data_source=run.data_source,
                split=run.split,
                id=_utf8(f"{run.data_source}/{rej.id}"),
                original_id=_utf8(rej.original_id),
                reason=rej.reason,
                detail=_utf8(rej.detail[:1000]),
                file=None if rej.file is None else _utf8(rej.file),
            )
        )

    def add_result(self, result: ChunkResult) -> None:
        for key in result.tables:
            table = result.table(key)
            series = self._series(key)
            if series.needs_rotation(table.nbytes):
                self._commit(series, result.start)
            series.add(table)
            self.kept += table.num_rows
            self.bytes_written += table.nbytes
        for index, run_index, rej in result.rejects:
            self.add_reject(index, run_index, rej)
        self.read.update(result.read)

    def finish(self, end: int) -> None:
        for series in self.series.values():
            self._commit(series, end)
        self._flush_rejects(end)
        self._save_state()

    def abort(self) -> None:
        for series in self.series.values():
            series.abort()


def _flush(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        atomic.fsync_file(path)


def _utf8(text: str) -> str:
    """`text` as it can be written to a shard: a lone surrogate (from a JSON escape, or bytes that
    were not UTF-8) becomes its escape sequence, so a reject row can always be written."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


class _Writer(threading.Thread):
    """Writes chunk results in order on its own thread.

    pyarrow's parquet writer and hashlib release the GIL, so writing overlaps with producing
    (materializing inline, or collecting from workers). The queue is bounded: memory stays flat
    however large the source.
    """

    def __init__(self, b: _Build):
        super().__init__(name="triune-writer", daemon=True)
        self.b = b
        self.queue: queue.Queue[ChunkResult | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.stopping = False

    def run(self) -> None:
        while (result := self.queue.get()) is not None:
            if self.stopping or self.error:
                continue
            try:
                self.b.add_result(result)
            except BaseException as exc:
                self.error = exc

    def put(self, result: ChunkResult) -> None:
        self.check()
        self.queue.put(result)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self, *, abort: bool = False) -> None:
        self.stopping = abort
        self.queue.put(None)
        self.join()


def build_dataset(
    recipe_path: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> BuildReport:
    """Build the dataset described by the recipe into `out` (see module docstring).

    `out` is claimed first (`triune_data.outdir`): only an empty directory or one a triune build
    made is written, and a lock keeps a second build out. Errors writing it (a file in the way, a
    read-only or full disk) are one-line `DatasetError`s; after a full disk, `resume` continues.
    """
    loaded = load_recipe(recipe_path)
    out = Path(out)
    lock = outdir.claim(out, resume=resume, overwrite=overwrite, inputs=_inputs(loaded))
    try:
        if resume and (out / MANIFEST).exists() and not (out / WORK_DIR).exists():
            raise DatasetError(f"{out} is already complete; nothing to resume")
        return _build(loaded, out, workers=workers, resume=resume, progress=progress)
    except OSError as exc:
        raise outdir.write_error(out, exc) from None
    finally:
        outdir.release(lock)


def _inputs(loaded: LoadedRecipe) -> list[Path]:
    """The recipe file and every existing file or folder its sources' options name."""
    found = [loaded.path]
    for opts in loaded.options:
        for value in opts.model_dump().values():
            if isinstance(value, str) and value:
                p = loaded.base_dir / Path(value).expanduser()
                if p.exists():
                    found.append(p)
    return found


def _build(
    loaded: LoadedRecipe,
    out: Path,
    *,
    workers: int,
    resume: bool,
    progress: Callable[[Progress], None] | None,
) -> BuildReport:
    b = _Build(loaded, out, resume=resume)
    images = loaded.recipe.images
    plan = Plan(
        loaded=loaded,
        runs=b.runs,
        opts=MaterializeOptions(
            images=ImagePolicy(
                check=images.check,
                max_pixels=images.max_pixels,
                max_aspect_ratio=images.max_aspect_ratio,
                max_bytes=images.max_bytes,
            ),
            box_tolerance_px=images.box_tolerance_px,
            full_ground_truth_check=loaded.recipe.check_ground_truth == "full",
            exif_box_frame=images.exif_box_frame,
        ),
        schema=b.schema,
        committed={key: s.committed_upto for key, s in b.series.items()},
        spill=spill_dir() if workers > 1 else None,
    )
    previous_pool = pa.default_memory_pool()
    pa.set_memory_pool(fast_memory_pool())
    producer = Producer(plan, workers)  # before any thread of ours starts (see Producer)
    writer = _Writer(b)
    writer.start()
    skipped = end = 0
    try:
        for result in producer:
            skipped += result.skipped
            end = result.end
            writer.put(result)
            if progress:
                progress(Progress(records=end, kept=b.kept, rejected=b.rejected, bytes=b.bytes_written))
        writer.close()
        writer.check()
        b.finish(end)
    except BaseException:
        if writer.is_alive():
            writer.close(abort=True)
        b.abort()
        b.hasher.shutdown(cancel_futures=True)
        raise
    finally:
        producer.close()
        pa.set_memory_pool(previous_pool)
        if plan.spill:
            shutil.rmtree(plan.spill, ignore_errors=True)
    try:
        return _finish(b, skipped)
    finally:
        b.hasher.shutdown()


# ----------------------------------------------------------------------------------------------
# Finishing: shards to their Hub names, the rejects shard, the manifest, the card.


def _finish(b: _Build, skipped: int) -> BuildReport:
    """Put the committed shards in place and write the ledger from plain numbers.

    The rejects shard, `manifest.json` and `README.md` go through the same calls every producer
    uses (`write_rejects`, `write_manifest`, `write_card`); the manifest is written last.
    """
    out, work = b.out, b.work
    b.hasher.shutdown(wait=True)  # shards are hashed where they were written: before they move
    states = {s.key: s.state() for s in b.series.values()}
    mapping = final_shard_names(states)
    for provisional, final in mapping.items():
        src, dst = work / provisional, out / final
        if src.exists():
            atomic.move(src, dst)
        elif not dst.exists():
            raise DatasetError(f"{out}: shard {provisional} is missing from the build state")

    rejects = concat_parquet([work / p for p in b.reject_parts], REJECT_SCHEMA)
    rejects_entry = write_rejects(out, rejects)
    by_reason: dict[str, Counter[str]] = defaultdict(Counter)
    if rejects.num_rows:
        grouped = rejects.group_by(["data_source", "reason"]).aggregate([("reason", "count")])
        for row in grouped.to_pylist():
            by_reason[row["data_source"]][row["reason"]] = row["reason_count"]

    files = []
    splits: dict[str, dict[str, int]] = defaultdict(dict)
    for key, st in sorted(states.items()):
        source, split = key.split("/", 1)
        splits[source][split] = sum(s["rows"] for s in st["shards"])
        for shard in st["shards"]:
            name = mapping[shard["name"]]
            future = b.series_by_key(key).digests.get(shard["name"])  # resumed builds hash now
            files.append(
                FileEntry.of(
                    out,
                    name,
                    rows=shard["rows"],
                    data_source=source,
                    split=split,
                    sha256=future.result() if future is not None else None,
                )
            )

    sources: dict[str, SourceCounts] = {}
    for run in b.runs:
        ds = run.data_source
        if ds not in sources:
            sources[ds] = SourceCounts(
                read=b.read[ds],
                kept=sum(splits.get(ds, {}).values()),
                rejected_by_reason=dict(by_reason.get(ds, {})),
                rows_by_split=dict(splits.get(ds, {})),
                adapters=sorted({r.adapter for r in b.runs if r.data_source == ds}),
                licenses=sorted({r.license for r in b.runs if r.data_source == ds and r.license}),
            )
    recipe = b.loaded.recipe
    manifest = Manifest(
        recipe=RecipeInfo(
            name=recipe.name, hash=b.loaded.hash, seed=recipe.seed, description=recipe.description
        ),
        files=files,
        rejects=rejects_entry,
        sources=sources,
    )
    atomic.write_json(out / "recipe.json", b.loaded.resolved)
    write_card(out, manifest)
    write_manifest(out, manifest)
    shutil.rmtree(work, ignore_errors=True)
    total = sum(f.bytes for f in files)
    return BuildReport(out=out, sources=sources, files=len(files), bytes=total, resumed_from=skipped)
