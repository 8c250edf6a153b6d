"""A process pool for verifiers with a hard per-item timeout enforced from outside the worker.

Why not `concurrent.futures.ProcessPoolExecutor`: it cannot stop one hung task (math-verify's
`signal.alarm` only works on a main thread and cannot interrupt C code), and one dead worker breaks
the whole executor. Here a dispatcher thread owns N worker processes:

- items travel in chunks (one pickle and one pipe message per chunk, not per item) sized from the
  measured cost of an item to ~5 ms of work, at least 16 items: cheap verifiers amortise IPC,
  costly ones stay balanced over the workers, and a GRPO group's rollouts (sent together) mostly
  share a worker and its verifier caches; a worker gets a second small chunk ahead so that it
  does not wait a round trip between chunks;
- before scoring an item a worker writes (start time, index, chunk) into shared memory; the
  dispatcher kills a worker whose current item has run longer than `timeout_s`, gives that item
  status "timeout", re-queues the rest and starts a replacement;
- a worker that dies (a signal, `os._exit`) has its current item retried once, alone, on a fresh
  worker, then reported as error "worker crashed"; its other items are re-queued;
- results keep request order; `score()` (sync) and `ascore()` (asyncio) are thread-safe.

Verifiers are pure, so items a killed worker had finished but not yet sent are simply scored again.
Items are `ScoreItem`s (sent as the tuple of their fields in declared order, which pickles fast,
and rebuilt by field name) or JSON items from the wire, both validated in the worker by the one
item validator (`check_item`, `items_from_wire`), so that the server process only parses and
forwards and an item is refused here exactly when the reward service would refuse it. Results come back the same way. Workers start with "forkserver": safe in a
threaded server (plain fork is not), and forking from a server that has already imported the
verifiers makes a replacement ready in ~10 ms where "spawn" pays ~0.4 s of interpreter start and
imports. `workers=0` scores inline in the calling thread (no hard timeout), for tiny runs and tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import importlib
import logging
import math
import multiprocessing as mp
import multiprocessing.forkserver
import os
import pickle
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from triune_data.lifeline import die_with_parent
from triune_data.verifiers import RewardResult, ScoreItem, score
from triune_data.verifiers.base import ITEM_FIELDS, RESULT_FIELDS, check_item
from triune_data.verifiers.common.wire import item_id, items_from_wire
from triune_train.rewards.protocol import RewardServiceError

log = logging.getLogger("triune.rewards.pool")

MAX_CHUNK = 256
CHUNK_SECONDS = 0.005  # aim: a chunk is ~5 ms of work (IPC amortised, yet workers stay balanced)
# ... but never fewer than 16 items (when a request has enough): the rollouts of a GRPO group arrive
# together and verifiers cache per-group work (the parsed gold, repeated answers, math-verify's
# small LaTeX cache); split over workers, each redoes it (~30 % more CPU an item in bench/reward_bench.py).
MIN_CHUNK = 16
QUEUED_PER_WORKER = 2  # chunks sent ahead to one worker ...
PIPELINE_BYTES = 64 * 1024  # ... when the second one is small enough never to block the sender
_START_TIMEOUT_S = 120.0
_MAX_START_FAILURES = 5  # consecutive failed worker starts before the pool gives up
# Shared progress slots written by a worker: start time of its current item (0 = between items),
# index of that item in its chunk (-1 = none yet), sequence number of that chunk.
_T, _I, _SEQ = 0, 1, 2

ItemLike = ScoreItem | Mapping[str, Any]


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _row(r: RewardResult) -> tuple:
    """A result as the tuple of its fields (cheap to pickle); non-finite numbers become an error."""
    if not (math.isfinite(r.reward) and math.isfinite(r.accuracy) and math.isfinite(r.format)):
        r = RewardResult.failed("error", f"verifier returned a non-finite value: {r.message}"[:500], id=r.id)
    return tuple(getattr(r, name) for name in RESULT_FIELDS)


def _result(row: tuple) -> RewardResult:
    return RewardResult(**dict(zip(RESULT_FIELDS, row, strict=True)))


def _payload(item: ItemLike) -> Any:
    """What travels to a worker: a `ScoreItem` as the tuple of its fields, a JSON item as it is."""
    if isinstance(item, ScoreItem):
        return tuple(getattr(item, name) for name in ITEM_FIELDS)
    return item


def _prepare(payloads: list[Any]) -> list[ScoreItem | tuple]:
    """Validated ScoreItems to score, or ready error rows for invalid items.

    Both kinds of item pass the one validator: a `ScoreItem` through `check_item`, JSON items
    through `items_from_wire` (one call for all of them), so an item scored here and the same item
    sent to the reward service are accepted or refused alike.
    """
    out: list[ScoreItem | tuple] = []
    for p in payloads:
        if type(p) is not tuple:
            out.append(p)
            continue
        try:
            out.append(check_item(ScoreItem(**dict(zip(ITEM_FIELDS, p, strict=True)))))
        except ValueError as exc:
            out.append(_row(RewardResult.failed("error", f"invalid item: {exc}", id=_payload_id(p))))
    dicts = [i for i, p in enumerate(payloads) if type(p) is not tuple]
    if dicts:
        for i, item in zip(dicts, items_from_wire([payloads[i] for i in dicts]), strict=True):
            if isinstance(item, ScoreItem):
                out[i] = item
            else:
                out[i] = _row(RewardResult.failed("error", f"invalid item: {item}", id=item_id(payloads[i])))
    return out


def _verifier_name(payload: Any) -> str:
    if type(payload) is tuple:
        return str(payload[_VERIFIER])
    return str(payload.get("verifier")) if isinstance(payload, Mapping) else "?"


def _payload_id(payload: Any) -> str | int | None:
    if type(payload) is tuple:
        return payload[_ID] if type(payload[_ID]) in (str, int) else None
    return item_id(payload)


_VERIFIER, _ID = ITEM_FIELDS.index("verifier"), ITEM_FIELDS.index("id")


def score_inline(items: Sequence[ItemLike]) -> list[RewardResult]:
    """Score in the calling thread exactly as a worker would (validation and sanitising included)."""
    prepared = _prepare([_payload(item) for item in items])
    return [_result(_row(score(x, checked=True)) if isinstance(x, ScoreItem) else x) for x in prepared]


def _worker_main(conn: Any, progress: Any, preload: tuple[str, ...]) -> None:
    """Worker loop: receive seq + pickled payloads, answer (seq, rows, seconds); b"" means stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    die_with_parent()  # a worker stuck in a hung verifier cannot outlive a killed server
    try:
        for name in preload:
            importlib.import_module(name)
    except BaseException as exc:
        conn.send_bytes(_dumps(("error", f"cannot import {name!r}: {type(exc).__name__}: {exc}")))
        return
    gc.freeze()  # imported modules stay out of every later collection
    conn.send_bytes(_dumps(("ready", os.getpid())))
    clock = time.monotonic
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        if not data:
            return
        seq, payloads = int.from_bytes(data[:8], "little"), pickle.loads(memoryview(data)[8:])
        progress[_I], progress[_SEQ] = -1.0, seq
        rows, started = [], clock()
        for i, item in enumerate(_prepare(payloads)):
            progress[_T] = clock()
            progress[_I] = i
            rows.append(_row(score(item, checked=True)) if isinstance(item, ScoreItem) else item)
        progress[_T] = 0.0
        conn.send_bytes(_dumps((seq, rows, clock() - started)))


@dataclass(eq=False)
class _Job:
    items: list[Any]  # payloads
    results: list[RewardResult | None]
    future: Future
    remaining: int
    crashes: dict[int, int] = field(default_factory=dict)
    chunks: list[_Chunk] = field(default_factory=list)  # cut by the caller, queued by the dispatcher


@dataclass(eq=False)
class _Chunk:
    job: _Job
    indices: list[int]
    payload: bytes | None = None  # pickled payloads, made when first cut (in the caller's thread)


class _Worker:
    def __init__(self, ctx: Any, preload: tuple[str, ...]) -> None:
        self.progress = ctx.RawArray("d", 3)
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, self.progress, preload),
            name="triune-reward-worker",
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.ready = False
        self.inflight: dict[int, _Chunk] = {}  # seq -> chunk, in the order sent


class RewardPool:
    """Score items in `workers` processes with a hard per-item timeout.

    Args:
        workers: number of verifier processes; 0 scores inline in the calling thread.
        timeout_s: hard limit for one item; the worker running it is killed.
        preload: modules each worker imports at start (e.g. ones registering extra verifiers).
        chunk_size: items per message; default splits a request over the workers, at most 256.
        start_method: "forkserver" (default) or "spawn".
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout_s: float = 10.0,
        preload: Sequence[str] = (),
        chunk_size: int | None = None,
        start_method: str = "forkserver",
    ) -> None:
        if workers < 0 or timeout_s <= 0:
            raise ValueError("workers must be >= 0 and timeout_s > 0")
        self.workers, self.timeout_s, self.chunk_size = workers, float(timeout_s), chunk_size
        self.preload = ("triune_data.verifiers", *preload)
        for name in self.preload:  # fail fast on a typo, and know the verifiers here too
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise RewardServiceError(f"cannot import preload module {name!r}: {exc}") from None
        self.counts = collections.Counter(
            dict.fromkeys(("scored", "error", "timeout", "restarts", "crashes"), 0)
        )
        self._closed = False
        self._queue_depth = 0
        self._broken: str | None = None
        if workers == 0:
            return
        if start_method == "forkserver":  # takes effect when this process first starts its forkserver
            # '__main__' (the default) lets the forkserver import the main script once, so that
            # workers do not each re-import it (a training script imports torch, for one).
            mp.set_forkserver_preload(["__main__", *self.preload, __name__])
        self._ctx = mp.get_context(start_method)
        self._workers: list[_Worker] = []
        self._pending: collections.deque[_Chunk] = collections.deque()
        self._inbox: collections.deque[_Job | None] = collections.deque()
        self._seq = 0
        self._item_s = 2e-4  # running estimate of one item's scoring time, from workers' reports
        self._start_failures = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self._start_workers()
        except BaseException:
            self._shutdown_workers()
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise
        self._thread = threading.Thread(target=self._run, name="triune-reward-pool", daemon=True)
        self._thread.start()

    # -- public API ---------------------------------------------------------------------------

    def submit(self, items: Sequence[ItemLike]) -> Future[list[RewardResult]]:
        """Queue `items`; the future resolves to their results, in order.

        Items are `ScoreItem`s or dicts of the protocol's Item fields (validated in the worker: an
        invalid one gets status error). Raises ValueError only if an item cannot be pickled.
        """
        if self._closed:
            raise RewardServiceError("the reward pool is closed")
        fut: Future[list[RewardResult]] = Future()
        if self.workers == 0 or not items:
            fut.set_result(score_inline(items))
            return fut
        n = len(items)
        job = _Job([_payload(i) for i in items], [None] * n, fut, n)
        # Cut and pickle here, in the caller's thread: an unpicklable item raises to the caller.
        by_cost = round(CHUNK_SECONDS / self._item_s)  # cheap items: big chunks; costly ones: small
        size = self.chunk_size or max(
            1, min(MAX_CHUNK, math.ceil(n / (2 * self.workers)), max(MIN_CHUNK, by_cost))
        )
        try:
            job.chunks = [
                _Chunk(job, list(range(a, min(n, a + size))), _dumps(job.items[a : a + size]))
                for a in range(0, n, size)
            ]
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ValueError(f"an item cannot be sent to a worker process: {exc}") from None
        self._inbox.append(job)
        self._wake()
        return fut

    def score(self, items: Sequence[ItemLike]) -> list[RewardResult]:
        return self.submit(items).result()

    async def ascore(self, items: Sequence[ItemLike]) -> list[RewardResult]:
        if self.workers == 0:  # keep an event loop responsive while scoring inline
            return await asyncio.to_thread(score_inline, items)
        return await asyncio.wrap_future(self.submit(items))

    def pids(self) -> list[int]:
        """Process ids of the live workers (for health reports and tests)."""
        if self.workers == 0:
            return []
        return [w.proc.pid for w in list(self._workers) if w.proc.pid is not None]

    def stats(self) -> dict[str, Any]:
        """Workers, their pids, items queued or running, and counters since start."""
        return {
            "workers": self.workers,
            "pids": self.pids(),
            "queue_depth": self._queue_depth,
            "broken": self._broken,
            **self.counts,
        }

    def close(self) -> None:
        """Stop the workers; items still queued or running resolve as error "reward pool closed"."""
        if self._closed:
            return
        self._closed = True
        if self.workers == 0:
            return
        self._inbox.append(None)
        self._wake()
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dispatcher thread --------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe holds enough wake-ups already
            os.write(self._wake_w, b"\0")

    def _start_workers(self) -> None:
        self._workers = [_Worker(self._ctx, self.preload) for _ in range(self.workers)]
        deadline = time.monotonic() + _START_TIMEOUT_S
        for w in self._workers:
            if not w.conn.poll(max(0.0, deadline - time.monotonic())):
                raise RewardServiceError(f"reward worker did not start within {_START_TIMEOUT_S:.0f}s")
            try:
                kind, value = pickle.loads(w.conn.recv_bytes())
            except (EOFError, OSError):
                raise RewardServiceError("reward worker died while starting") from None
            if kind != "ready":
                raise RewardServiceError(f"reward worker failed to start: {value}")
            w.ready = True

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException:  # a dispatcher bug must not leave callers waiting forever
            log.exception("reward pool dispatcher failed")
            self._broken = "reward pool dispatcher failed"
        self._shutdown_workers()
        self._fail_all(self._broken or "reward pool closed")

    def _step(self) -> bool:
        while self._inbox:
            job = self._inbox.popleft()
            if job is None:
                return False
            self._pending.extend(job.chunks)
            job.chunks = []
        if self._broken:
            self._fail_all(self._broken)
        self._dispatch()
        owner: dict[Any, _Worker] = {}
        for w in self._workers:
            owner[w.conn] = owner[w.proc.sentinel] = w
        ready = wait([self._wake_r, *owner], timeout=self._tick())
        if self._wake_r in ready:
            os.read(self._wake_r, 65536)
        for w in {owner[o] for o in ready if o in owner}:
            self._service(w)
        self._check_timeouts()
        self._queue_depth = sum(len(c.indices) for c in self._pending)
        self._queue_depth += sum(len(c.indices) for w in self._workers for c in w.inflight.values())
        return True

    def _dispatch(self) -> None:
        for w in self._workers:
            while w.ready and self._pending and len(w.inflight) < QUEUED_PER_WORKER:
                chunk = self._pending[0]
                if chunk.job.future.done():  # cancelled by its caller
                    self._pending.popleft()
                    continue
                if chunk.payload is None:
                    chunk.payload = _dumps([chunk.job.items[i] for i in chunk.indices])
                # A busy worker does not read: sending it more than its socket buffer holds would
                # block this thread, and a hung item would then never be timed out.
                if w.inflight and len(chunk.payload) > PIPELINE_BYTES:
                    break
                self._pending.popleft()
                self._seq += 1
                w.inflight[self._seq] = chunk
                try:  # an 8-byte sequence number, then the chunk pickled once
                    w.conn.send_bytes(self._seq.to_bytes(8, "little") + chunk.payload)
                except OSError:
                    self._on_death(w, killed=False)
                    return

    def _tick(self) -> float | None:
        """How long the dispatcher may sleep: until the earliest possible timeout, or until woken."""
        busy = [w.progress[_T] for w in self._workers if w.inflight]
        if not busy:
            return None
        started = [t for t in busy if t > 0]
        until = min(started) + self.timeout_s - time.monotonic() if started else self.timeout_s
        return min(max(until, 0.005), 0.25)

    def _service(self, w: _Worker) -> None:
        """Handle what a worker sent, or its death."""
        try:
            if not w.conn.poll():
                raise EOFError  # only the sentinel fired: the process is gone
            msg = pickle.loads(w.conn.recv_bytes())
        except (EOFError, OSError):
            self._on_death(w, killed=False)
            return
        if isinstance(msg[0], str):  # ("ready", pid) or ("error", why) from a replacement
            if msg[0] == "ready":
                w.ready, self._start_failures = True, 0
            else:
                log.error("reward worker failed to start: %s", msg[1])
            return
        self._complete(w, *msg)

    def _complete(self, w: _Worker, seq: int, rows: list[tuple], seconds: float) -> None:
        chunk = w.inflight.pop(seq)
        if rows:
            self._item_s = 0.8 * self._item_s + 0.2 * max(seconds / len(rows), 1e-7)
        for i, row in zip(chunk.indices, rows, strict=True):
            self._set(chunk.job, i, _result(row))

    def _set(self, job: _Job, i: int, result: RewardResult) -> None:
        if job.results[i] is not None:
            return
        if result.id is None:  # timeouts and crashes are made here, without the item's id
            result.id = _payload_id(job.items[i])
        job.results[i] = result
        self.counts["scored"] += 1
        if result.status in ("error", "timeout"):
            self.counts[result.status] += 1
        job.remaining -= 1
        if job.remaining == 0 and not job.future.done():
            job.future.set_result(job.results)

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            started = w.progress[_T]
            if w.inflight and started > 0 and now - started > self.timeout_s:
                w.proc.kill()
                self._on_death(w, killed=True)

    def _on_death(self, w: _Worker, *, killed: bool) -> None:
        """A worker died or was killed for a timeout: keep what it sent, blame one item, requeue."""
        if w.proc.is_alive():  # its pipe broke but it still runs: make sure it is gone
            w.proc.kill()
        w.proc.join()
        with contextlib.suppress(EOFError, OSError):
            while w.conn.poll():  # complete results it sent before dying
                msg = pickle.loads(w.conn.recv_bytes())
                if not isinstance(msg[0], str):
                    self._complete(w, *msg)
        if not w.ready:
            self._start_failures += 1
            if self._start_failures >= _MAX_START_FAILURES:
                self._broken = f"reward workers keep dying at start (exit code {w.proc.exitcode})"
        # After death the progress slots are stable. Blame needs a started item; a timeout blame
        # also needs that item to have run past the limit (it may have just finished).
        t, index, seq = w.progress[_T], int(w.progress[_I]), int(w.progress[_SEQ])
        current = w.inflight.get(seq)
        job = current.job if current is not None else None  # the job of the item to blame
        bad = current.indices[index] if current is not None and t > 0 and index >= 0 else None
        if killed and bad is not None and time.monotonic() - t < self.timeout_s:
            bad = None
        if job is not None and bad is not None and killed:
            msg = f"verifier exceeded the {self.timeout_s:g}s timeout; its worker was killed"
            log.warning("%s (verifier %r)", msg, _verifier_name(job.items[bad]))
            self._set(job, bad, RewardResult.failed("timeout", msg))
        if not killed and not self._closed:
            self.counts["crashes"] += 1
            log.warning("reward worker %s died (exit code %s)", w.proc.pid, w.proc.exitcode)
        if job is not None and bad is not None and not killed:
            tries = job.crashes[bad] = job.crashes.get(bad, 0) + 1
            if tries >= 2:
                msg = f"worker crashed (exit code {w.proc.exitcode}) while scoring this item, also on retry"
                self._set(job, bad, RewardResult.failed("error", msg))
        for chunk in reversed(list(w.inflight.values())):  # back to the front of the queue, in order
            rest = [i for i in chunk.indices if chunk.job.results[i] is None and i != bad]
            if rest:
                self._pending.appendleft(_Chunk(chunk.job, rest))
        if job is not None and bad is not None and job.results[bad] is None:
            self._pending.appendleft(_Chunk(job, [bad]))  # the retry runs alone: exact blame
        w.inflight.clear()
        w.conn.close()
        self._workers.remove(w)
        if not self._closed and not self._broken:
            self.counts["restarts"] += 1
            self._workers.append(_Worker(self._ctx, self.preload))

    def _fail_all(self, why: str) -> None:
        jobs = {c.job for c in self._pending} | {c.job for w in self._workers for c in w.inflight.values()}
        jobs |= {j for j in self._inbox if j is not None}
        self._pending.clear()
        for job in jobs:
            for i, r in enumerate(job.results):
                if r is None:
                    self._set(job, i, RewardResult.failed("error", why))

    def _shutdown_workers(self) -> None:
        for w in self._workers:
            with contextlib.suppress(OSError):
                w.conn.send_bytes(b"")
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.proc.join(timeout=0 if w.inflight else max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
