"""The library side of `triune score`: score JSONL files offline, locally or on reward services.

- `score_items_file`: a JSONL of JSON items (`verifiers.common.wire`), one a line -> one result a line;
- `score_dataset`: a completions file joined to the samples of a triune dataset -> one result a
  line per completion, with the sample's `id`, its `data_source` and the completion's `index`.

The completions file is the project's contract between inference servers, `triune eval`,
`triune filter` and `triune score`: JSONL, one ``{"id": str, "completions": [str, ...]}`` a sample
(``{"id": str, "completion": str}`` is read as a single completion; either may carry
``"model_input_size": [w, h]``, the size of the image the model saw).

Input problems never stop a run: a malformed line, an unknown or missing id, a completion that is
not a string or a sample with broken params give an error result whose message names the line
(or sample), and are counted in the summary. What stops it, before any scoring, is a file that
cannot be read or an output that cannot be written (`FileAccessError`, naming the file). Output is written atomically (`triune_data.atomic`),
so a partial file never looks finished. Both functions return a per-data_source summary; means
are over status ``ok`` only (errors and timeouts are counted, not averaged in as zeros, as in
training).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from triune_data import atomic
from triune_data.errors import DatasetError, FileAccessError, TriuneInternalError
from triune_data.schema import arrow_schema, row_to_sample
from triune_data.types import Sample
from triune_data.verifiers import RewardResult, ScoreItem, score_item_for
from triune_data.verifiers.common.wire import item_from_wire, item_id, result_to_wire
from triune_train.rewards.client import InProcessBackend, RewardBackend, RewardClient

BLOCK = 20_000  # items scored per backend call: bounds memory, gives progress updates
Meta = dict[str, Any]  # what an output line echoes besides the result: data_source, index
Entry = tuple[Meta, ScoreItem | RewardResult]  # (echo, item to score or early error)
Progress = Callable[[int], None]


def score_items_file(
    items_path: str | Path,
    out_path: str | Path,
    *,
    server_urls: Sequence[str] | None = None,
    workers: int = 2,
    timeout_s: float = 10.0,
    token: str | None = None,
    preload: Sequence[str] = (),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score a JSONL of JSON items into a JSONL of results (same order).

    Each output line is the result (with the item's ``id``) plus the item's ``data_source`` when
    it had one. `progress`, if given, is called with the number of lines finished after each block.
    """

    out = Path(out_path)
    _check_out(out)
    with _lines(items_path):  # readable, before a backend starts
        pass

    def entries() -> Iterator[Entry]:
        with _lines(items_path) as lines:
            yield from (_item_entry(n, line) for n, line in lines)

    return _run(entries, out, _backend(server_urls, workers, timeout_s, token, preload), progress)


def score_dataset(
    data_dir: str | Path,
    completions_path: str | Path,
    out_path: str | Path,
    *,
    server_urls: Sequence[str] | None = None,
    workers: int = 2,
    timeout_s: float = 10.0,
    token: str | None = None,
    preload: Sequence[str] = (),
    step: int = 0,
    total_steps: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score a completions file (see the module docstring) against a triune dataset.

    Samples come from ``data_dir/data/**/*.parquet``; only the rows whose ids occur in the
    completions are read, without image bytes or prompts. `step`/`total_steps` default to 0,
    which verifiers read as "end of training" (e.g. the strictest dynamic IoU threshold).
    """
    out = Path(out_path)
    _check_out(out)
    with _lines(completions_path) as lines:
        ids = {d["id"] for _, line in lines if type(d := _loads(line)) is dict and type(d.get("id")) is str}
    samples, broken = _load_samples(Path(data_dir), ids)

    def entries() -> Iterator[Entry]:
        with _lines(completions_path) as lines:
            for n, line in lines:
                yield from _completion_entries(n, line, samples, broken, step=step, total_steps=total_steps)

    return _run(entries, out, _backend(server_urls, workers, timeout_s, token, preload), progress)


# ----------------------------------------------------------------------------------------------
# Entries: one per item or completion, either a ScoreItem to score or an early error result.


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _item_entry(n: int, line: bytes) -> Entry:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return {}, RewardResult.failed("error", f"line {n}: not valid JSON: {exc}")
    source = obj.get("data_source") if type(obj) is dict else None
    meta = {"data_source": source} if type(source) is str else {}
    try:
        return meta, item_from_wire(obj)
    except ValueError as exc:
        return meta, RewardResult.failed("error", f"line {n}: invalid item: {exc}", id=item_id(obj))


_EXPECTED = 'expected an object {"id": str, "completions": [str, ...]} or {"id": str, "completion": str}'


def _completion_entries(
    n: int,
    line: bytes,
    samples: dict[str, Sample],
    broken: dict[str, str],
    *,
    step: int,
    total_steps: int,
) -> Iterator[Entry]:
    """One entry per completion on line `n` (one error entry when the line itself is unusable)."""
    obj = _loads(line)
    if (
        type(obj) is not dict
        or type(obj.get("id")) is not str
        or ("completion" in obj) == ("completions" in obj)
    ):
        yield {}, RewardResult.failed("error", f"line {n}: {_EXPECTED}", id=item_id(obj))
        return
    sample_id = obj["id"]
    completions = [obj["completion"]] if "completion" in obj else obj["completions"]
    if type(completions) is not list or not completions:
        yield (
            {},
            RewardResult.failed("error", f"line {n}: `completions` is not a non-empty list", id=sample_id),
        )
        return
    sample = samples.get(sample_id)
    if sample is None:
        for k in range(len(completions)):
            yield (
                {"index": k},
                RewardResult.failed("error", f"line {n}: unknown sample id {sample_id!r}", id=sample_id),
            )
        return
    if sample_id in broken:  # the sample itself is unusable
        for k in range(len(completions)):
            meta = {"data_source": sample.data_source, "index": k}
            yield (
                meta,
                RewardResult.failed("error", f"sample {sample_id!r}: {broken[sample_id]}", id=sample_id),
            )
        return
    size = obj.get("model_input_size")
    for k, completion in enumerate(completions):
        meta = {"data_source": sample.data_source, "index": k}
        if type(completion) is not str:
            why = f"line {n}: completion {k} is a {type(completion).__name__}, not a string"
            yield meta, RewardResult.failed("error", why, id=sample_id)
            continue
        try:
            input_size = None if size is None else _size(size)
        except ValueError as exc:
            yield meta, RewardResult.failed("error", f"line {n}: model_input_size {exc}", id=sample_id)
            continue
        yield (
            meta,
            score_item_for(
                sample, completion, step=step, total_steps=total_steps, model_input_size=input_size
            ),
        )


def _size(value: Any) -> tuple[float, float]:
    if not (type(value) is list and len(value) == 2 and all(type(v) in (int, float) for v in value)):
        raise ValueError(f"must be [width, height], got {str(value)[:40]}")
    return float(value[0]), float(value[1])


def _load_samples(data_dir: Path, ids: set[str]) -> tuple[dict[str, Sample], dict[str, str]]:
    """(id -> the sample without images and prompt, id -> why that sample cannot be scored)."""
    shards = sorted((data_dir / "data").rglob("*.parquet"))
    if not shards:
        raise DatasetError(f"no parquet shards under {data_dir / 'data'}")
    wanted = [n for n in arrow_schema().names if n not in ("images", "prompt")]  # never image bytes
    out: dict[str, Sample] = {}
    broken: dict[str, str] = {}
    for shard in shards:
        if not ids:
            break
        try:
            table = pq.read_table(shard, columns=wanted, filters=[("id", "in", list(ids))])
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{shard}: cannot read the triune columns: {exc}") from None
        for row in table.to_pylist():
            if row["id"] in out:
                continue
            row["images"], row["prompt"] = [], []
            sample = row_to_sample(row)
            out[sample.id] = sample
            try:
                json.loads(sample.reward.verifier_params or "{}")
            except json.JSONDecodeError as exc:
                broken[sample.id] = f"verifier_params is not JSON: {exc.msg}"
            ids.discard(sample.id)
    return out, broken


# ----------------------------------------------------------------------------------------------
# Running: blocks through one backend, written atomically, summarised per data_source.


def _backend(
    server_urls: Sequence[str] | None,
    workers: int,
    timeout_s: float,
    token: str | None,
    preload: Sequence[str],
) -> RewardBackend:
    if server_urls:
        return RewardClient(list(server_urls), token=token)
    return InProcessBackend(workers, timeout_s=timeout_s, preload=preload)


@contextmanager
def _lines(path: str | Path) -> Iterator[Iterator[tuple[int, bytes]]]:
    """(1-based line number, line) for every non-blank line."""
    try:
        f = open(path, "rb")  # noqa: SIM115  (closed by the `with` below; the open error gets its own message)
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with f:
        yield ((n, line) for n, line in enumerate(f, 1) if line.strip())


def _check_out(out: Path) -> None:
    """FileAccessError unless a results file can be written at `out` (checked before any work)."""
    atomic.check_writable(out)


def _blocks(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    block: list[Entry] = []
    for e in entries:
        block.append(e)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def _run(
    entries: Callable[[], Iterator[Entry]], out: Path, backend: RewardBackend, progress: Progress | None
) -> dict[str, Any]:
    stats: dict[str, dict[str, float]] = {}

    def write(tmp: Path) -> None:
        done = 0
        with open(tmp, "wb") as f:
            for block in _blocks(entries(), BLOCK):
                todo = [(i, x) for i, (_, x) in enumerate(block) if isinstance(x, ScoreItem)]
                scored = backend.score([x for _, x in todo]) if todo else []
                results = [x if isinstance(x, RewardResult) else None for _, x in block]
                for (i, _), scored_one in zip(todo, scored, strict=True):
                    results[i] = scored_one
                for (meta, _), r in zip(block, results, strict=True):
                    if r is None:
                        raise TriuneInternalError(f"the backend returned no result for an item of {out}")
                    wire = result_to_wire(r)
                    line = {"id": wire.pop("id")} if "id" in wire else {}
                    f.write(orjson.dumps({**line, **meta, **wire}) + b"\n")
                    _tally(stats, meta.get("data_source") or "(none)", r)
                done += len(block)
                if progress is not None:
                    progress(done)

    try:
        atomic.write_file(out, write)
    except OSError as exc:  # the disk filled up, the directory went away, ...
        raise FileAccessError(f"{out}: cannot write the results ({exc.strerror or exc})") from None
    finally:
        backend.close()
    return _summary(stats, out)


_COUNTERS = ("count", "ok", "not_applicable", "error", "timeout", "r", "a")


def _tally(stats: dict[str, dict[str, float]], source: str, r: RewardResult) -> None:
    for key in (source, "\0total"):
        s = stats.setdefault(key, dict.fromkeys(_COUNTERS, 0.0))
        s["count"] += 1
        s[r.status] += 1
        if r.status == "ok":
            s["r"] += r.reward
            s["a"] += r.accuracy


def _summary(stats: dict[str, dict[str, float]], out: Path) -> dict[str, Any]:
    def one(s: dict[str, float]) -> dict[str, Any]:
        ok = s["ok"]
        return {
            "count": int(s["count"]),
            "ok": int(ok),
            "not_applicable": int(s["not_applicable"]),
            "error": int(s["error"]),
            "timeout": int(s["timeout"]),
            "mean_reward": s["r"] / ok if ok else None,
            "mean_accuracy": s["a"] / ok if ok else None,
        }

    empty = dict.fromkeys(_COUNTERS, 0.0)
    return {
        "out": str(out),
        "total": one(stats.get("\0total", empty)),
        "by_source": {k: one(v) for k, v in sorted(stats.items()) if k != "\0total"},
    }
