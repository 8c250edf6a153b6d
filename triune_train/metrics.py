"""Source-level monitoring: per-completion records → flat metrics per data_source, and their logger.

Keys are ``{split}/{data_source}/{metric}`` plus ``{split}/all/{metric}`` over every record
(V-Triune's source-level monitoring). Metrics of one source:

- ``count``; ``reward``, ``accuracy``, ``format`` and every verifier component (``iou``, ``tau``,
  ``precision50``, ``map``, ``anls``, ...; whatever the verifiers return), averaged over the rows
  scored ``ok`` (a component that would shadow one of our names gets a ``component_`` prefix);
- ``correct_ratio``, with *correct* meaning accuracy ≥ a threshold per verifier (default 0.5).
  V-Triune used accuracy == 1, which a continuous detection accuracy almost never reaches, so its
  detection curves of correct-answer length and reflection correctness were empty. For binary
  verifiers any threshold in (0, 1] is the same as == 1;
- ``response_length`` (tokens) overall, ``response_length_correct``/``_wrong``, ``truncation_ratio``;
- ``reflection_ratio`` (the paper's 15 words, substring match on the lower-cased response, as in
  its code: "wait" also matches "await") and ``accuracy_reflection``/``accuracy_no_reflection``;
- ``zero_variance_group_ratio``: groups whose ok rewards are all equal (or that have fewer than
  two ok rows), i.e. groups that teach nothing; only where some group has two rows or more;
- ``error_rate``, ``timeout_rate``, ``not_applicable_rate`` over all rows; ``neutralized``, the
  vision placeholder tokens replaced after sampling (a sum).

`MetricsLogger` writes RUN/metrics.jsonl (one JSON object per `log` call, flushed and fsync'd),
RUN/samples.jsonl, TensorBoard event files (tensorboardX, the `train` extra) and, if asked, W&B.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triune_data import atomic
from triune_data.errors import TriuneError
from triune_data.verifiers import Prediction

REFLECTION_WORDS: tuple[str, ...] = (
    "re-check", "re-evaluate", "re-examine", "re-think", "recheck", "reevaluate", "reexamine",
    "reevaluation", "rethink", "check again", "think again", "try again", "verify", "wait", "yet",
)  # fmt: skip
DEFAULT_CORRECT_THRESHOLD = 0.5
FAILED_STATUSES = ("error", "timeout")
ALL = "all"

_OWN_METRICS = frozenset(
    {
        "count", "reward", "accuracy", "format", "correct_ratio", "response_length",
        "response_length_correct", "response_length_wrong", "truncation_ratio", "reflection_ratio",
        "accuracy_reflection", "accuracy_no_reflection", "zero_variance_group_ratio", "error_rate",
        "timeout_rate", "not_applicable_rate", "neutralized",
    }
)  # fmt: skip


class MetricsError(TriuneError):
    """Metrics cannot be written (missing optional package, unreadable run directory)."""


@dataclass
class CompletionRecord:
    """One scored completion, as the loop and `triune eval` hand it to `completion_metrics`.

    `group` identifies the prompt (rollouts of one prompt share it); `status` is the reward
    status (ok | not_applicable | error | timeout); `neutralized` counts vision placeholder tokens
    replaced after sampling; `sample_id` names the stored sample (for the sample log); `prediction`
    is what the verifier read from the completion (`RewardResult.prediction`).
    """

    data_source: str
    task: str
    verifier: str
    status: str
    reward: float
    accuracy: float
    format: float
    components: dict[str, float]
    response_tokens: int
    truncated: bool
    text: str
    group: int
    neutralized: int = 0
    sample_id: str = ""
    prediction: Prediction = None


def has_reflection(text: str) -> bool:
    """True when the response holds one of the paper's 15 reflection words (lower-cased substring).

    >>> has_reflection("Wait, let me re-check."), has_reflection("The answer is 4.")
    (True, False)
    """
    low = text.lower()
    return any(word in low for word in REFLECTION_WORDS)


def source_key(data_source: str) -> str:
    """A data_source as one key segment: '/' would split it (V-Triune replaced it with '_' too)."""
    return data_source.replace("/", "_") or "unknown"


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


@dataclass
class _Acc:
    """Running sums of one source's records."""

    count: int = 0
    status: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reward: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    format: list[float] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lengths: list[float] = field(default_factory=list)
    lengths_correct: list[float] = field(default_factory=list)
    lengths_wrong: list[float] = field(default_factory=list)
    correct: list[float] = field(default_factory=list)
    truncated: int = 0
    reflection: int = 0
    acc_reflection: list[float] = field(default_factory=list)
    acc_plain: list[float] = field(default_factory=list)
    neutralized: int = 0
    groups: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    group_sizes: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, r: CompletionRecord, threshold: float) -> None:
        self.count += 1
        self.status[r.status] += 1
        self.lengths.append(float(r.response_tokens))
        self.truncated += bool(r.truncated)
        self.neutralized += int(r.neutralized)
        self.group_sizes[r.group] += 1
        if r.status != "ok":
            return
        self.reward.append(r.reward)
        self.accuracy.append(r.accuracy)
        self.format.append(r.format)
        self.groups[r.group].append(r.reward)
        for name, value in r.components.items():
            if isinstance(value, int | float):  # bools count as 0/1; anything else is not a metric
                key = f"component_{name}" if name in _OWN_METRICS else name
                self.components[key].append(float(value))
        correct = r.accuracy >= threshold
        self.correct.append(float(correct))
        (self.lengths_correct if correct else self.lengths_wrong).append(float(r.response_tokens))
        if has_reflection(r.text):
            self.reflection += 1
            self.acc_reflection.append(r.accuracy)
        else:
            self.acc_plain.append(r.accuracy)

    def metrics(self) -> dict[str, float]:
        n = self.count
        scored = len(self.reward)
        out: dict[str, float | None] = {
            "count": float(n),
            "reward": _mean(self.reward),
            "accuracy": _mean(self.accuracy),
            "format": _mean(self.format),
            "correct_ratio": _mean(self.correct),
            "response_length": _mean(self.lengths),
            "response_length_correct": _mean(self.lengths_correct),
            "response_length_wrong": _mean(self.lengths_wrong),
            "truncation_ratio": self.truncated / n,
            "reflection_ratio": self.reflection / scored if scored else None,
            "accuracy_reflection": _mean(self.acc_reflection),
            "accuracy_no_reflection": _mean(self.acc_plain),
            "error_rate": self.status["error"] / n,
            "timeout_rate": self.status["timeout"] / n,
            "not_applicable_rate": self.status["not_applicable"] / n,
            "neutralized": float(self.neutralized),
        }
        if any(size >= 2 for size in self.group_sizes.values()):
            scored_rewards = [self.groups.get(g, []) for g in self.group_sizes]
            flat = sum(1 for rs in scored_rewards if len(rs) < 2 or len(set(rs)) == 1)
            out["zero_variance_group_ratio"] = flat / len(self.group_sizes)
        for name, values in sorted(self.components.items()):
            out[name] = _mean(values)
        return {k: v for k, v in out.items() if v is not None}


def completion_metrics(
    records: Iterable[CompletionRecord],
    *,
    split: str,
    correct_threshold: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Flat metrics ``{split}/{data_source}/{metric}`` and ``{split}/all/{metric}`` of one step.

    `correct_threshold` maps a verifier name to the accuracy at or above which an answer counts as
    correct (default `DEFAULT_CORRECT_THRESHOLD`). Means are over rows scored ok; a metric without
    any row to average (e.g. no correct answer, so no correct length) is absent, not 0.

    >>> rec = CompletionRecord("synth_det", "detection", "detection", "ok", 0.8, 0.8, 1.0,
    ...                        {"iou": 0.8, "tau": 0.85}, 12, False, "Wait...", 0)
    >>> m = completion_metrics([rec], split="train")
    >>> m["train/synth_det/iou"], m["train/synth_det/correct_ratio"], m["train/all/reflection_ratio"]
    (0.8, 1.0, 1.0)
    """
    thresholds = dict(correct_threshold or {})
    per_source: dict[str, _Acc] = defaultdict(_Acc)
    overall = _Acc()
    for r in records:
        threshold = thresholds.get(r.verifier, DEFAULT_CORRECT_THRESHOLD)
        per_source[source_key(r.data_source)].add(r, threshold)
        overall.add(r, threshold)
    out: dict[str, float] = {}
    if overall.count == 0:
        return out
    for name, acc in sorted(per_source.items()):
        out.update({f"{split}/{name}/{k}": v for k, v in acc.metrics().items()})
    out.update({f"{split}/{ALL}/{k}": v for k, v in overall.metrics().items()})
    return out


def sample_completions(
    records: Sequence[CompletionRecord],
    *,
    per_source: int,
    seed: int = 0,
    step: int = 0,
    max_chars: int = 4000,
) -> list[dict[str, Any]]:
    """Up to `per_source` records of each data_source, chosen by a hash of (seed, step, position).

    The choice depends only on those, not on the process or the order of sources; texts are cut to
    `max_chars`. Sources come out sorted, each source's picks in record order.

    >>> recs = [CompletionRecord("a", "t", "v", "ok", 1.0, 1.0, 1.0, {}, 3, False, "x" * 9, i) for i in range(5)]
    >>> [s["group"] for s in sample_completions(recs, per_source=2, seed=1)]
    [1, 4]
    """
    by_source: dict[str, list[tuple[bytes, int]]] = defaultdict(list)
    for i, r in enumerate(records):
        digest = hashlib.blake2b(f"{seed}:{step}:{i}".encode(), digest_size=8).digest()
        by_source[r.data_source].append((digest, i))
    picked: list[dict[str, Any]] = []
    for source in sorted(by_source):
        for i in sorted(i for _, i in sorted(by_source[source])[:per_source]):
            r = records[i]
            picked.append(
                {
                    "data_source": r.data_source,
                    "sample_id": r.sample_id,
                    "group": r.group,
                    "verifier": r.verifier,
                    "status": r.status,
                    "reward": r.reward,
                    "accuracy": r.accuracy,
                    "format": r.format,
                    "response_tokens": r.response_tokens,
                    "truncated": r.truncated,
                    "reflection": has_reflection(r.text),
                    "prediction": r.prediction,
                    "text": r.text[:max_chars],
                }
            )
    return picked


# ----------------------------------------------------------------------------------------------
# Files


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Objects of a JSONL file and the count of lines that were not objects (e.g. a torn last line)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict) and isinstance(obj.get("step"), int):
                rows.append(obj)
            else:
                bad += 1
    return rows, bad


def _truncate_log(path: Path, resume_step: int | None) -> None:
    """Keep the complete lines of a log, and only those before `resume_step` when resuming.

    A resumed run replays from `resume_step`; its lines must not appear twice.
    """
    if not path.exists():
        return
    rows, bad = _read_jsonl(path)
    keep = rows if resume_step is None else [r for r in rows if r["step"] < resume_step]
    if bad or len(keep) != len(rows):
        atomic.write_bytes(path, b"".join(json.dumps(r).encode() + b"\n" for r in keep))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of RUN/metrics.jsonl merged by step (train and eval lines of a step become one).

    Sorted by step; nulls (non-finite values) are dropped; later lines win on a repeated key.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise MetricsError(f"{path}: no metrics file (is this a training run directory?)")
    merged: dict[int, dict[str, Any]] = {}
    for row in _read_jsonl(path)[0]:
        target = merged.setdefault(row["step"], {"step": row["step"]})
        target.update({k: v for k, v in row.items() if v is not None})
    return [merged[s] for s in sorted(merged)]


def read_samples(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of RUN/samples.jsonl (``{"step", **sample}``); none when the file is absent."""
    path = Path(run_dir) / "samples.jsonl"
    return _read_jsonl(path)[0] if path.is_file() else []


class MetricsLogger:
    """RUN/metrics.jsonl, RUN/samples.jsonl, TensorBoard (RUN/tensorboard/) and optionally W&B.

    Each `log` appends one line ``{"step", "time", **metrics}``, flushed and fsync'd, so a crash
    loses at most the line being written (a torn line is dropped when the log is opened again).
    With `resume_step`, lines of steps ≥ it are dropped on open (the resumed run logs them again)
    and TensorBoard purges its events from that step. `wandb` holds ``wandb.init`` keyword
    arguments; the package is imported only then.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb: Mapping[str, Any] | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.samples_path = self.run_dir / "samples.jsonl"
        for path in (self.metrics_path, self.samples_path):
            _truncate_log(path, resume_step)
        self._metrics_file = self.metrics_path.open("a", encoding="utf-8")
        self._samples_file = self.samples_path.open("a", encoding="utf-8")
        self._last_step = -1 if resume_step is None else resume_step - 1
        self._tb: Any = None
        self._wandb: Any = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise MetricsError(
                    "TensorBoard logging needs tensorboardX: pip install 'triune[train]' "
                    "(or set logging.tensorboard: false)"
                ) from None
            self._tb = SummaryWriter(logdir=str(self.run_dir / "tensorboard"), purge_step=resume_step)
        if wandb is not None:
            try:
                import wandb as wandb_module
            except ImportError:
                raise MetricsError(
                    "W&B logging needs the wandb package: pip install wandb (or remove logging.wandb)"
                ) from None
            self._wandb = wandb_module.init(dir=str(self.run_dir), **dict(wandb))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one step's metrics (several calls for one step are merged by `read_metrics`)."""
        if step < self._last_step:
            raise ValueError(f"step {step} logged after step {self._last_step}")
        self._last_step = step
        row = {"step": step, "time": time.time(), **{k: _json_safe(float(v)) for k, v in metrics.items()}}
        self._append(self._metrics_file, row)
        if self._tb is not None:
            for key, value in metrics.items():
                if math.isfinite(value):
                    self._tb.add_scalar(key, float(value), step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(dict(metrics), step=step)

    def log_samples(self, step: int, samples: Sequence[Mapping[str, Any]]) -> None:
        """Append completion samples (e.g. `sample_completions`) as lines ``{"step", **sample}``."""
        for sample in samples:
            self._append(self._samples_file, {"step": step, **{k: _json_safe(v) for k, v in sample.items()}})

    @staticmethod
    def _append(f: Any, row: Mapping[str, Any]) -> None:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        self._metrics_file.close()
        self._samples_file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
