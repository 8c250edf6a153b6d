"""What triune's reward functions for verl, EasyR1 and TRL share.

A framework hands its reward function a completion and whatever the row carries; triune's export
puts the whole reward spec in the row (`triune_data.export`), so scoring needs only three things
the data cannot know:

- the model family: the frame its boxes are in (Qwen2.5-VL: pixels of its RESIZED input, so the
  input size matters; Qwen2-VL and Qwen3-VL: 0-1000) and how its processor resizes an image;
- how the framework resizes images before the processor, and the pixel limits it uses;
- the training step and total steps, for the dynamic IoU threshold (paper §3.4). TRL passes them;
  verl and EasyR1 do not, so a `StepClock` counts the training rows scored
  (step = rows scored before this one // rows_per_step + 1), shared across reward worker
  processes through a locked file when `step_file` is set.

`Settings` holds these; each comes from the function's keyword arguments (verl:
`custom_reward_function.reward_kwargs`, EasyR1: `reward_function_kwargs`) or else from an
environment variable `TRIUNE_<NAME>` (e.g. `TRIUNE_MODEL_FAMILY`) that the framework's workers see.

Statuses: the frameworks have no way to mask a row, so an `error` or `timeout` scores 0 but is
never silent: it is a metric of its own (`status_error`, per data_source where the framework
breaks metrics down), it is logged (the first `LOGGED_ERRORS` messages of a process, then every
`LOG_EVERY`-th), and `on_error=raise` stops training at the first one instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from triune_data.coords import Frame, resized_size
from triune_data.errors import TriuneError, UnknownVerifierError
from triune_data.verifiers import RewardResult, get_verifier, score
from triune_data.verifiers.base import STATUSES, Status
from triune_data.verifiers.common.wire import item_from_reward_spec
from triune_train.models.families import FAMILIES, Family

log = logging.getLogger("triune.integrations")

LOGGED_ERRORS = 20
LOG_EVERY = 1000


class IntegrationError(TriuneError):
    """A reward function set up wrongly for the data it is given (one line says what to set)."""


# Model families (box frame, patch and merge size, pixel limits) come from the one table in
# `triune_train.models.families`, which imports no torch or transformers at module level.


Framework: TypeAlias = Literal["verl", "easyr1", "trl"]
OnError: TypeAlias = Literal["count", "raise"]


# ----------------------------------------------------------------------------------------------
# The size of the image the model saw.


def fetch_image_size(size: tuple[int, int], factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """qwen_vl_utils' `fetch_image` resize (verl resizes every image with it before the processor).

    It differs from the processor's rule only in clamping small sides to `factor` first.

    >>> fetch_image_size((320, 240), 28, 3136, 12845056)
    (308, 252)
    """
    w, h = size
    if max(w, h) / min(w, h) > 200:
        raise ValueError(f"aspect ratio must be at most 200, got {max(w, h) / min(w, h)}")
    h_bar, w_bar = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        h_bar, w_bar = math.floor(h / beta / factor) * factor, math.floor(w / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar, w_bar = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return w_bar, h_bar


def easyr1_image_size(
    size: tuple[int, int], min_pixels: int | None, max_pixels: int | None
) -> tuple[int, int]:
    """EasyR1's `process_image` resize (its data.min_pixels / data.max_pixels), sides truncated.

    >>> easyr1_image_size((320, 240), 262144, 4194304)
    (591, 443)
    """
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        f = math.sqrt(max_pixels / (w * h))
        w, h = int(w * f), int(h * f)
    if min_pixels is not None and w * h < min_pixels:
        f = math.sqrt(min_pixels / (w * h))
        w, h = int(w * f), int(h * f)
    return w, h


# ----------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Settings:
    """How to score for one framework and model (see the module docstring); `from_kwargs` builds it."""

    framework: Framework
    model_family: str | None = None
    box_frame: Frame | None = None  # for models outside FAMILIES that write 0-1000 or 0-1 boxes
    processor_min_pixels: int | None = None  # default: the family's
    processor_max_pixels: int | None = None
    data_min_pixels: int | None = None  # EasyR1's data.min_pixels / data.max_pixels
    data_max_pixels: int | None = None
    total_steps: int = 0
    rows_per_step: int = 0  # verl: data.train_batch_size × rollout.n; EasyR1: rollout_batch_size × n
    step_file: str | None = None
    step: int | None = None  # a fixed step (evaluation, or a fixed schedule point)
    train_splits: tuple[str, ...] = ("train",)
    on_error: OnError = "count"
    family: Family | None = field(default=None, repr=False)

    @classmethod
    def from_kwargs(cls, framework: Framework, kwargs: Mapping[str, Any]) -> Settings:
        """Settings from keyword arguments, then `TRIUNE_<NAME>` environment variables.

        Framework arguments that are not settings (verl's `reward_router_address`, TRL's columns)
        are the caller's to remove; anything else unknown is an IntegrationError (a typo would
        otherwise silently switch a schedule off).
        """
        key = (framework, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        cached = _SETTINGS.get(key)
        if cached is None:
            cached = _SETTINGS[key] = cls._build(framework, kwargs)
        return cached

    @classmethod
    def _build(cls, framework: Framework, kwargs: Mapping[str, Any]) -> Settings:
        known = {f for f in cls.__dataclass_fields__ if f not in ("framework", "family")}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise IntegrationError(f"unknown triune reward setting(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for name in known:
            raw = kwargs.get(name, os.environ.get(f"TRIUNE_{name.upper()}"))
            if raw is not None and raw != "":
                values[name] = _parse(name, raw)
        family = None
        if "model_family" in values:
            family = FAMILIES.get(values["model_family"])
            if family is None:
                raise IntegrationError(
                    f"unknown model_family {values['model_family']!r} (known: {', '.join(FAMILIES)})"
                )
        if values.get("box_frame") not in (None, "norm1000", "norm1"):
            raise IntegrationError("box_frame is norm1000 or norm1; a pixel frame needs a model_family")
        if family and values.get("box_frame"):
            raise IntegrationError("give model_family or box_frame, not both")
        if values.get("on_error", "count") not in ("count", "raise"):
            raise IntegrationError(f"on_error is count or raise, got {values['on_error']!r}")
        if bool(values.get("total_steps")) and values.get("step") is None and not values.get("rows_per_step"):
            raise IntegrationError(
                f"total_steps is set but not rows_per_step: {framework} does not pass the step, "
                "triune counts it from rows_per_step (see docs/interop.md)"
            )
        return cls(framework=framework, family=family, **values)

    @property
    def model_frame(self) -> Frame | None:
        return self.family.box_frame if self.family else self.box_frame

    def model_input_size(self, image_size: Any) -> tuple[float, float] | None:
        """The (width, height) the model saw, where its box frame needs it (pixel frames only)."""
        f = self.family
        if f is None or f.box_frame != "pixel" or image_size is None:
            return None
        w, h = (int(v) for v in image_size)
        lo = self.processor_min_pixels or f.min_pixels
        hi = self.processor_max_pixels or f.max_pixels
        if self.framework == "verl":  # qwen_vl_utils with its default limits, then the processor
            w, h = fetch_image_size((w, h), f.factor, 4 * f.factor**2, 16384 * f.factor**2)
        elif self.framework == "easyr1":
            w, h = easyr1_image_size((w, h), self.data_min_pixels, self.data_max_pixels)
        new_w, new_h = resized_size((w, h), factor=f.factor, min_pixels=lo, max_pixels=hi)
        return float(new_w), float(new_h)


_SETTINGS: dict[Any, Settings] = {}
_INTS = {
    "processor_min_pixels",
    "processor_max_pixels",
    "data_min_pixels",
    "data_max_pixels",
    "total_steps",
    "rows_per_step",
    "step",
}


def _parse(name: str, raw: Any) -> Any:
    if name in _INTS:
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise IntegrationError(f"{name} must be an integer, got {raw!r}") from None
        if value < 0:
            raise IntegrationError(f"{name} must be >= 0, got {value}")
        return value
    if name == "train_splits":
        parts = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(str(p).strip() for p in parts if str(p).strip())
    return str(raw)


# ----------------------------------------------------------------------------------------------
# The training step, counted


class StepClock:
    """Counts training rows scored, in this process or, with `path`, in a file shared by processes.

    >>> clock = StepClock(rows_per_step=4)
    >>> clock.take(3), clock.take(3), clock.take(0)
    (0, 3, 6)
    """

    def __init__(self, rows_per_step: int, path: str | None = None) -> None:
        self.rows_per_step = rows_per_step
        self.path = path
        self._count = 0
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def take(self, n: int) -> int:
        """Add `n` rows; return how many were counted before them."""
        with self._lock:
            if self.path is None:
                before, self._count = self._count, self._count + n
                return before
            return self._take_shared(n)

    def _take_shared(self, n: int) -> int:
        import fcntl

        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own lock
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), os.getpid()  # type: ignore[arg-type]
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").split("\n", 1)[0].strip()
            try:
                before = int(text or 0)
            except ValueError:
                raise IntegrationError(
                    f"step_file {self.path} holds {text[:20]!r}, not a row count"
                ) from None
            if n:
                # One fixed-width overwrite: truncating first makes ext4 flush the file on every call.
                os.pwrite(fd, f"{before + n:>20}\n".encode(), 0)
            return before
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def steps(self, is_train: list[bool]) -> list[int]:
        """The step of each row: training rows advance the clock, other rows read it (steps done)."""
        before = self.take(sum(is_train))
        out, k = [], 0
        for train in is_train:
            if train:
                out.append((before + k) // self.rows_per_step + 1)
                k += 1
            else:
                out.append(before // self.rows_per_step)
        return out


_CLOCKS: dict[tuple[int, str | None], StepClock] = {}
_CLOCKS_LOCK = threading.Lock()


def clock_for(settings: Settings) -> StepClock:
    key = (settings.rows_per_step, settings.step_file)
    with _CLOCKS_LOCK:
        if key not in _CLOCKS:
            _CLOCKS[key] = StepClock(settings.rows_per_step, settings.step_file)
        return _CLOCKS[key]


# ----------------------------------------------------------------------------------------------
# Scoring rows


def parse_spec(value: Any) -> dict[str, Any]:
    """A reward spec (JSON text or an object); IntegrationError when a row carries none."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            spec = json.loads(value)
        except json.JSONDecodeError:
            spec = None
        if isinstance(spec, dict) and "verifier" in spec:
            return spec
    raise IntegrationError(
        f"this row has no triune reward spec (got {str(value)[:60]!r}): export the dataset with "
        "`triune export` and see docs/interop.md for the setting that passes it"
    )


def _is_box_verifier(name: Any) -> bool:
    try:
        return get_verifier(str(name)).boxes
    except UnknownVerifierError:
        return False  # `score` reports it as an error result


def score_rows(
    specs: list[dict[str, Any]],
    completions: list[str],
    settings: Settings,
    *,
    steps: list[int] | None = None,
    total_steps: int | None = None,
) -> list[RewardResult]:
    """Score each completion against its reward spec; `steps`/`total_steps` override the clock."""
    if steps is None:
        if settings.step is not None:
            steps = [settings.step] * len(specs)
        elif settings.rows_per_step and settings.total_steps:
            steps = clock_for(settings).steps([s.get("split") in settings.train_splits for s in specs])
        else:
            steps = [0] * len(specs)
    total = settings.total_steps if total_steps is None else total_steps
    results = []
    for spec, completion, step in zip(specs, completions, steps, strict=True):
        boxes = _is_box_verifier(spec.get("verifier"))
        if boxes and settings.model_frame is None:
            raise IntegrationError(
                f"{spec.get('data_source')}: box rows need model_family ({', '.join(FAMILIES)}) "
                "or box_frame (norm1000, norm1): the frame the model writes boxes in"
            )
        if boxes and not total:
            _warn_once("no_schedule", "no total_steps: the dynamic IoU threshold stays at its final value")
        try:
            item = item_from_reward_spec(
                spec,
                completion if isinstance(completion, str) else str(completion),
                step=step,
                total_steps=total,
                model_input_size=settings.model_input_size(spec.get("image_size")) if boxes else None,
                model_frame=settings.model_frame if boxes else None,
            )
        except ValueError as exc:
            results.append(RewardResult.failed("error", f"bad reward spec: {exc}", id=spec.get("id")))
            continue
        results.append(score(item))
    for spec, result in zip(specs, results, strict=True):
        _record(spec.get("data_source"), result, settings)
    return results


# ----------------------------------------------------------------------------------------------
# Counting and logging statuses


_STATUS_COUNTS: Counter[tuple[str, Status]] = Counter()
_STATUS_LOCK = threading.Lock()
_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("triune: %s", message)


def _record(data_source: Any, result: RewardResult, settings: Settings) -> None:
    source = str(data_source)
    with _STATUS_LOCK:
        _STATUS_COUNTS[(source, result.status)] += 1
        failed = sum(n for (_, s), n in _STATUS_COUNTS.items() if s in ("error", "timeout"))
    if result.status not in ("error", "timeout"):
        return
    if settings.on_error == "raise":
        raise IntegrationError(f"{source} {result.id}: reward {result.status}: {result.message}")
    if failed <= LOGGED_ERRORS or failed % LOG_EVERY == 0:
        log.warning(
            "triune: %s %s: reward %s, scored 0 and counted (%d so far in this process): %s",
            source,
            result.id,
            result.status,
            failed,
            result.message,
        )


def status_counts() -> dict[str, dict[str, int]]:
    """Rows scored in this process per data_source and status (for a final report or a test)."""
    with _STATUS_LOCK:
        out: dict[str, dict[str, int]] = {}
        for (source, status), n in sorted(_STATUS_COUNTS.items()):
            out.setdefault(source, dict.fromkeys(STATUSES, 0))[status] = n
        return out


def status_flags(result: RewardResult) -> dict[str, float]:
    """One 0/1 value per status, the same keys on every row (`status_ok`, `status_error`, ...)."""
    return {f"status_{s}": float(result.status == s) for s in STATUSES}


def reset() -> None:
    """Forget cached settings, clocks, counts and warnings (tests; a new run in the same process)."""
    with _STATUS_LOCK:
        _STATUS_COUNTS.clear()
    with _CLOCKS_LOCK:
        _CLOCKS.clear()
    _SETTINGS.clear()
    _WARNED.clear()


__all__ = [
    "FAMILIES",
    "IntegrationError",
    "Settings",
    "StepClock",
    "easyr1_image_size",
    "fetch_image_size",
    "parse_spec",
    "reset",
    "score_rows",
    "status_counts",
    "status_flags",
]
