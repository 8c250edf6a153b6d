"""The library side of `triune score`: score JSONL files offline, locally or on reward services.

- `score_items_file`: a JSONL of protocol Items (one object a line) → one result a line;
- `score_dataset`: a JSONL of ``{"id", "completion"}`` joined to the samples of a triune dataset
  (several completions per id allowed) → one result a line, with id and data_source.

Input problems never stop a run: a malformed line, an unknown id or bad verifier params give a
result with status error whose message names the line or id. Output is written to a temporary
file and renamed into place, so a partial file never looks finished. Both functions return a
per-data_source summary; means are over status ``ok`` only (errors and timeouts are counted, not
averaged in as zeros, as in training).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow.parquet as pq

from triune_data.errors import DatasetError, UnknownVerifierError
from triune_data.schema import arrow_schema, row_to_sample
from triune_data.verifiers import RewardResult, ScoreItem, get_verifier
from triune_data.verifiers.common.wire import score_item_from_dict
from triune_train.rewards.client import InProcessBackend, RewardBackend, RewardClient

BLOCK = 20_000  # items scored per backend call: bounds memory, gives progress updates
Entry = tuple[dict[str, Any], ScoreItem | RewardResult]  # (id/data_source to echo, item or early error)
Template = tuple[str, dict[str, Any] | str]  # (data_source, Item fields without completion | error)
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
    """Score a JSONL of reward-request Items into a JSONL of results (same order).

    Each output line is the result plus the item's ``id`` and ``data_source`` when it had them.
    `progress`, if given, is called with the number of lines finished after each block.
    """
    with _lines(items_path) as lines:
        entries = (_item_entry(n, line) for n, line in lines)
        return _run(entries, out_path, _backend(server_urls, workers, timeout_s, token, preload), progress)


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
    """Score completions ``{"id", "completion"[, "model_input_size"]}`` against a triune dataset.

    Samples come from ``data_dir/data/**/*.parquet``; only the rows whose ids occur in the
    completions are read, without image bytes or prompts. `step`/`total_steps` default to 0,
    which verifiers read as "end of training" (e.g. the strictest dynamic IoU threshold).
    """
    with _lines(completions_path) as lines:
        ids = {d["id"] for _, line in lines if type(d := _loads(line)) is dict and type(d.get("id")) is str}
    templates = _load_templates(Path(data_dir), ids, step=step, total_steps=total_steps)
    with _lines(completions_path) as lines:
        entries = (_completion_entry(n, line, templates) for n, line in lines)
        return _run(entries, out_path, _backend(server_urls, workers, timeout_s, token, preload), progress)


# ----------------------------------------------------------------------------------------------
# Entries: one per input line, either a ScoreItem to score or an early error result.


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _meta(obj: Any) -> dict[str, Any]:
    """The id and data_source to echo, when present and well-typed."""
    if type(obj) is not dict:
        return {}
    meta = {k: obj[k] for k in ("id", "data_source") if type(obj.get(k)) in (str, int)}
    if type(meta.get("data_source")) is not str:
        meta.pop("data_source", None)
    return meta


def _item_entry(n: int, line: bytes) -> Entry:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return {}, RewardResult.failed("error", f"line {n}: not valid JSON: {exc}")
    try:
        return _meta(obj), score_item_from_dict(obj)
    except ValueError as exc:
        return _meta(obj), RewardResult.failed("error", f"line {n}: invalid item: {exc}")


def _completion_entry(n: int, line: bytes, templates: dict[str, Template]) -> Entry:
    obj = _loads(line)
    if type(obj) is not dict or type(obj.get("id")) is not str or type(obj.get("completion")) is not str:
        why = 'expected an object {"id": str, "completion": str}'
        return _meta(obj), RewardResult.failed("error", f"line {n}: {why}")
    sample_id = obj["id"]
    if sample_id not in templates:
        return {"id": sample_id}, RewardResult.failed("error", f"line {n}: unknown sample id {sample_id!r}")
    source, t = templates[sample_id]
    meta = {"id": sample_id, "data_source": source}
    if isinstance(t, str):  # the sample itself is unusable (bad params JSON)
        return meta, RewardResult.failed("error", f"sample {sample_id!r}: {t}")
    try:
        return meta, score_item_from_dict({**t, "completion": obj["completion"], **_sizes(obj)})
    except ValueError as exc:
        return meta, RewardResult.failed("error", f"line {n} (sample {sample_id!r}): {exc}")


def _sizes(obj: dict[str, Any]) -> dict[str, Any]:
    return {"model_input_size": obj["model_input_size"]} if obj.get("model_input_size") is not None else {}


def _load_templates(data_dir: Path, ids: set[str], *, step: int, total_steps: int) -> dict[str, Template]:
    """id → (data_source, the sample's Item fields but the completion, or why the sample is unusable)."""
    shards = sorted((data_dir / "data").rglob("*.parquet"))
    if not shards:
        raise DatasetError(f"no parquet shards under {data_dir / 'data'}")
    wanted = [n for n in arrow_schema().names if n not in ("images", "prompt")]  # never image bytes
    out: dict[str, Template] = {}
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
            out[row["id"]] = (row["data_source"], _template(row, step, total_steps))
            ids.discard(row["id"])
    return out


def _template(row: dict[str, Any], step: int, total_steps: int) -> dict[str, Any] | str:
    s = row_to_sample(row)
    try:
        params = json.loads(s.reward.verifier_params or "{}")
    except json.JSONDecodeError as exc:
        return f"verifier_params is not JSON: {exc.msg}"
    try:
        boxes = get_verifier(s.reward.verifier).boxes
    except UnknownVerifierError:
        boxes = False  # scoring reports the unknown verifier
    gt: Any = s.ground_truth
    if boxes:
        gt = [{"label": b.label, "bbox": [b.x1, b.y1, b.x2, b.y2]} for b in s.boxes]
    size = [s.image_sizes[0].width, s.image_sizes[0].height] if s.image_sizes else None
    return {
        "verifier": s.reward.verifier,
        "params": params,
        "ground_truth": gt,
        "accuracy_weight": s.reward.accuracy_weight,
        "format_weight": s.reward.format_weight,
        "step": step,
        "total_steps": total_steps,
        "image_size": size,
        "data_source": s.data_source,
    }


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
    with open(path, "rb") as f:
        yield ((n, line) for n, line in enumerate(f, 1) if line.strip())


@contextmanager
def _atomic(path: Path) -> Iterator[BinaryIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    entries: Iterable[Entry], out_path: str | Path, backend: RewardBackend, progress: Progress | None
) -> dict:
    stats: dict[str, dict[str, float]] = {}
    done = 0
    try:
        with _atomic(Path(out_path)) as out:
            for block in _blocks(entries, BLOCK):
                todo = [i for i, (_, x) in enumerate(block) if isinstance(x, ScoreItem)]
                scored = backend.score([block[i][1] for i in todo]) if todo else []
                results: list[Any] = [x for _, x in block]
                for i, r in zip(todo, scored, strict=True):
                    results[i] = r
                for (meta, _), r in zip(block, results, strict=True):
                    out.write(orjson.dumps({**meta, **r.to_dict()}) + b"\n")
                    _tally(stats, meta.get("data_source") or "(none)", r)
                done += len(block)
                if progress is not None:
                    progress(done)
    finally:
        backend.close()
    return _summary(stats, Path(out_path))


def _tally(stats: dict[str, dict[str, float]], source: str, r: RewardResult) -> None:
    for key in (source, "\0total"):
        s = stats.setdefault(
            key, dict.fromkeys(("count", "ok", "not_applicable", "error", "timeout", "r", "a"), 0)
        )
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

    empty = dict.fromkeys(("count", "ok", "not_applicable", "error", "timeout", "r", "a"), 0)
    return {
        "out": str(out),
        "total": one(stats.get("\0total", empty)),
        "by_source": {k: one(v) for k, v in sorted(stats.items()) if k != "\0total"},
    }
