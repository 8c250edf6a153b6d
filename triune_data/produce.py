"""The producing half of a build: source records -> chunks -> materialized Arrow tables.

Records from the recipe's sources get a global index and are cut into fixed chunks of
`CHUNK_SIZE` indices. Each chunk is triaged (adapter rejects, duplicate ids, records a resumed
build already committed) and materialized into one Arrow table per (data_source, split).

With N workers, the build's own process and N - 1 worker processes each read the (cheap) record
stream and materialize the chunks whose number is theirs modulo N (the build's process: 0); the
build takes results round-robin, so they arrive in chunk order without sending a single draft
between processes. Worker rows travel back through memory-mapped Arrow files in tmpfs, not
through a pipe. Triage depends only on the stream, so every producer reaches the same decisions.
Producing in the build's process too saves one read of the stream and one copy of its rows: on
two cores it took `--workers 2` from slower than one producer to even (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import pickle
import queue
import shutil
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc

from triune_data.errors import DatasetError
from triune_data.lifeline import die_with_parent
from triune_data.materialize import MaterializeOptions, SourceRun, materialize
from triune_data.recipe import LoadedRecipe
from triune_data.schema import samples_to_table
from triune_data.sources.base import Draft, Reject, SourceContext, get_source, take
from triune_data.types import Sample

CHUNK_SIZE = 64  # records per unit of work; part of the resume contract

Key = tuple[str, str]  # (data_source, split)


@dataclass(frozen=True)
class Plan:
    """Everything a producer needs (sent once to each worker process)."""

    loaded: LoadedRecipe
    runs: list[SourceRun]
    opts: MaterializeOptions
    schema: pa.Schema
    committed: dict[Key, int]  # per stream: records below this index are in committed shards
    spill: str | None = None  # tmpfs directory for results, in worker processes


@dataclass
class ChunkResult:
    start: int
    end: int
    tables: dict[Key, pa.Table | str]  # rows in record order, or the spill file holding them
    rejects: list[tuple[int, int, Reject]]  # (record index, run index, reject), by index
    read: Counter = field(default_factory=Counter)  # records read per data_source
    skipped: int = 0  # records a resumed build had committed already

    def table(self, key: Key) -> pa.Table:
        t = self.tables[key]
        if isinstance(t, pa.Table):
            return t
        # Zero-copy view of the worker's file; unlinking keeps the mapping valid until released.
        table = pa.ipc.open_file(pa.memory_map(t)).read_all()
        os.unlink(t)
        return table


def runs_of(loaded: LoadedRecipe) -> list[SourceRun]:
    return [
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
        for i, s in enumerate(loaded.recipe.sources)
    ]


def _records(loaded: LoadedRecipe) -> Iterator[tuple[int, Draft | Reject]]:
    for i, (entry, opts) in enumerate(zip(loaded.recipe.sources, loaded.options, strict=True)):
        ctx = SourceContext(
            data_source=entry.data_source,
            split=entry.split,
            seed=loaded.recipe.seed,
            base_dir=loaded.base_dir,
            prompts=loaded.prompts,
            limit=entry.limit,
            images_outside_root=loaded.recipe.images.allow_outside_root,
        )
        named: dict[str, str] = {}  # each source file its records name -> the name they get
        for rec in take(get_source(entry.adapter).read(opts, ctx), entry.limit):
            if rec.file is not None:
                file = named.get(rec.file)
                if file is None:
                    file = named[rec.file] = _recipe_relative(rec.file, loaded.base_dir)
                if file != rec.file:
                    rec = _with_file(rec, file)
            yield i, rec


def _recipe_relative(file: str, base: Path) -> str:
    """A source file the recipe names by an absolute path, named relative to the recipe instead:
    shards and rejects never hold an absolute local path."""
    return os.path.relpath(file, base) if os.path.isabs(file) else file


def _with_file(rec: Draft | Reject, file: str) -> Draft | Reject:
    if isinstance(rec, Reject):
        return dataclasses.replace(rec, file=file)
    rec.file = file
    return rec


def _chunks(loaded: LoadedRecipe) -> Iterator[list[tuple[int, int, Draft | Reject]]]:
    chunk: list[tuple[int, int, Draft | Reject]] = []
    for index, (run_index, rec) in enumerate(_records(loaded)):
        chunk.append((index, run_index, rec))
        if len(chunk) == CHUNK_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _spill(spill: str, start: int, key: Key, table: pa.Table) -> str:
    path = os.path.join(spill, f"{start}-{key[0]}-{key[1]}.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def produce(plan: Plan, worker: int = 0, workers: int = 1, spill: str | None = None) -> Iterator[ChunkResult]:
    """Materialized chunks number `worker` modulo `workers`, in order; with `spill` (a directory)
    the tables are written there as Arrow files and results carry their paths."""
    seen: dict[str, set[str]] = defaultdict(set)
    for number, chunk in enumerate(_chunks(plan.loaded)):
        mine = number % workers == worker
        result = ChunkResult(start=chunk[0][0], end=chunk[-1][0] + 1, tables={}, rejects=[])
        kept: dict[Key, list[Sample]] = defaultdict(list)
        for index, run_index, rec in chunk:
            run = plan.runs[run_index]
            if isinstance(rec, Reject):
                result.rejects.append((index, run_index, rec))
            elif rec.id in seen[run.data_source]:
                dup = Reject(
                    reason="duplicate_id",
                    detail=f"id {rec.id!r} seen before",
                    id=rec.id,
                    original_id=rec.original_id,
                    file=rec.file,
                )
                result.rejects.append((index, run_index, dup))
            else:
                seen[run.data_source].add(rec.id)  # every worker tracks ids: they decide alike
                if not mine:
                    continue
                key = (run.data_source, run.split)
                if index < plan.committed.get(key, 0):
                    result.skipped += 1
                    continue
                out = materialize(rec, run, plan.opts)
                if isinstance(out, Reject):
                    result.rejects.append((index, run_index, out))
                else:
                    kept[key].append(out)
        if not mine:
            continue
        result.read.update(plan.runs[run_index].data_source for _, run_index, _ in chunk)
        result.rejects.sort(key=lambda r: r[0])
        for key, rows in kept.items():
            table = samples_to_table(rows, plan.schema)
            result.tables[key] = _spill(spill, result.start, key, table) if spill else table
        yield result


# ----------------------------------------------------------------------------------------------
# Worker processes.


def fast_memory_pool() -> pa.MemoryPool:
    """jemalloc when pyarrow has it: the default mimalloc hands freed chunks back to the OS and
    page-faults them in again, which made building a chunk's image column ~4x slower here."""
    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return pa.default_memory_pool()


def _worker_main(plan: Plan, worker: int, workers: int, out: multiprocessing.Queue) -> None:
    die_with_parent()  # a build killed with SIGKILL (the OOM killer) takes its workers with it
    pa.set_memory_pool(fast_memory_pool())
    try:
        for result in produce(plan, worker, workers, plan.spill):
            out.put(("chunk", result))
        out.put(("done", None))
    except BaseException as exc:
        try:
            pickle.dumps(exc)
        except Exception:
            exc = DatasetError(f"worker {worker}: {type(exc).__name__}: {exc}")
        out.put(("error", exc))


SPILL_ROOT = "/dev/shm"
SPILL_PREFIX = "triune-build-"  # + the pid of the build that made it


def spill_dir() -> str | None:
    """A tmpfs directory with room to spare, or None (then results travel through the queue).

    Its name holds the build's pid; spill directories of builds that are gone (killed before they
    could clean up) are removed first.
    """
    remove_stale_spills()
    try:
        st = os.statvfs(SPILL_ROOT)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < 1 << 30:
        return None
    return tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", dir=SPILL_ROOT)


def remove_stale_spills() -> list[str]:
    """Remove this user's spill directories whose build process no longer runs; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(SPILL_ROOT):
            pid = entry.name.removeprefix(SPILL_PREFIX).split("-", 1)[0]
            if not (
                entry.name.startswith(SPILL_PREFIX) and pid.isdigit() and entry.is_dir(follow_symlinks=False)
            ):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or _alive(int(pid)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class Producer:
    """All chunk results in order: produced inline (workers <= 1), or by this process and
    `workers - 1` worker processes taking turns.

    Worker processes start in the constructor: with no other thread alive yet they are forked
    (instant, modules already loaded); otherwise they come from a forkserver, since forking a
    threaded process can copy a lock some thread holds. With workers, results may reference files
    in `plan.spill` (see `spill_dir`); the caller removes that directory once it has consumed them.
    """

    def __init__(self, plan: Plan, workers: int):
        self.plan, self.workers = plan, max(workers, 1)
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.queues: list[multiprocessing.Queue] = []
        if self.workers == 1:
            return
        mp: multiprocessing.context.BaseContext
        if threading.active_count() == 1:
            mp = multiprocessing.get_context("fork")
        else:
            server = multiprocessing.get_context("forkserver")
            # import once, fork many
            server.set_forkserver_preload(["triune_data.produce", "triune_data.sources"])
            mp = server
        for w in range(1, self.workers):  # producer 0 is this process
            out = mp.Queue(maxsize=2)  # bounded: flat memory
            proc = mp.Process(
                target=_worker_main, args=(plan, w, self.workers, out), daemon=True, name=f"triune-build-{w}"
            )
            proc.start()
            self.queues.append(out)
            self.procs.append(proc)

    def __iter__(self) -> Iterator[ChunkResult]:
        turns = [produce(self.plan, 0, self.workers)]
        turns += [_received(q, p) for q, p in zip(self.queues, self.procs, strict=True)]
        # Chunk n comes from producer n % workers: the first producer with nothing left on its
        # turn marks the end of the stream.
        for producer in itertools.cycle(turns):
            result = next(producer, None)
            if result is None:
                return
            yield result

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _received(q: multiprocessing.Queue, proc: multiprocessing.process.BaseProcess) -> Iterator[ChunkResult]:
    while True:
        kind, payload = _get(q, proc)
        if kind == "done":
            return
        if kind == "error":
            raise payload  # type: ignore[misc]
        yield payload  # type: ignore[misc]


def _get(q: multiprocessing.Queue, proc: multiprocessing.process.BaseProcess) -> tuple[str, object]:
    while True:
        try:
            return q.get(timeout=1.0)
        except queue.Empty:
            if not proc.is_alive():
                raise DatasetError(f"build worker {proc.name} died (exit code {proc.exitcode})") from None
