"""The verifier contract: typed params, a context, one result type, one registry.

A verifier is a pure function::

    @register_verifier("counting", params=CountingParams)
    def verify_counting(completion: str, ground_truth: GroundTruth, params: CountingParams,
                        ctx: VerifyContext) -> Verdict: ...

It judges accuracy and format. Blending them with the sample's weights happens once, in `score()`
(`combine`), never inside a verifier. `score()` is what every caller uses: the reward service's
workers, the in-process backend, `triune score` and the benchmarks.

Failure semantics (V-Triune returned a silent 0 for any exception):
- a wrong or unparseable *completion* is a legitimate `ok` verdict with accuracy 0;
- unusable *ground truth or params* is `error`, with the reason in `message`;
- `not_applicable` means the verifier has nothing to judge for this sample (the trainer masks it);
- `timeout` is set by the process pool, which enforces the hard per-item deadline.
The trainer masks `error`/`timeout` rows out of the advantage and counts them per data_source.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, ValidationError

from triune_data.errors import UnknownVerifierError, VerifierError
from triune_data.types import BOX_TASKS, TASKS, Box, Task

Status: TypeAlias = Literal["ok", "not_applicable", "error", "timeout"]
STATUSES: tuple[Status, ...] = ("ok", "not_applicable", "error", "timeout")

# Model output is untrusted: bound what a verifier ever sees.
MAX_COMPLETION_CHARS = 65_536
MAX_GROUND_TRUTH_CHARS = 1_048_576


class VerifierParams(BaseModel):
    """Base of every verifier's params model: unknown keys are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """Per-call state that is not part of the data (paper Fig. 2: "current step").

    Sizes are (width, height). `image_size` is the stored image (the canonical box frame);
    `model_input_size` the image as the model saw it after resizing (Qwen2.5-VL emits boxes in
    those pixels). Without a model input size the model input is the stored image.
    """

    step: int = 0
    total_steps: int = 0
    image_size: tuple[float, float] | None = None
    model_input_size: tuple[float, float] | None = None
    data_source: str | None = None

    @property
    def progress(self) -> float:
        """step / total_steps in [0, 1]; 1.0 when training length is unknown (evaluation)."""
        if self.total_steps <= 0:
            return 1.0
        return min(max(self.step / self.total_steps, 0.0), 1.0)


GroundTruth: TypeAlias = str | list[Box]


@dataclass(slots=True)
class Verdict:
    """What a verifier returns: judgements in [0, 1], before the sample's weights are applied."""

    accuracy: float
    format: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    status: Status = "ok"
    message: str = ""


@dataclass(slots=True)
class RewardResult:
    """The one result type of reward computation.

    `reward` feeds the advantage; `components` are named floats for reports only.
    """

    reward: float
    accuracy: float
    format: float
    components: dict[str, float] = field(default_factory=dict)
    status: Status = "ok"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "accuracy": self.accuracy,
            "format": self.format,
            "components": self.components,
            "status": self.status,
            "message": self.message,
        }

    @classmethod
    def failed(cls, status: Status, message: str) -> RewardResult:
        return cls(reward=0.0, accuracy=0.0, format=0.0, status=status, message=message)


def combine(accuracy: float, fmt: float, accuracy_weight: float, format_weight: float) -> float:
    """V-Triune Eq. 8: (a·accuracy + f·format) / (a + f); 0 when both weights are 0."""
    total = accuracy_weight + format_weight
    if total <= 0:
        return 0.0
    return (accuracy_weight * accuracy + format_weight * fmt) / total


VerifyFn: TypeAlias = Callable[[str, GroundTruth, Any, VerifyContext], Verdict]


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    params: type[VerifierParams]
    fn: VerifyFn
    boxes: bool  # ground truth is a list of boxes rather than a string
    aliases: tuple[str, ...] = ()
    tasks: tuple[Task, ...] = TASKS  # the tasks whose samples it can score


_REGISTRY: dict[str, VerifierSpec] = {}
_ALIASES: dict[str, str] = {}


def register_verifier(
    name: str,
    *,
    params: type[VerifierParams],
    boxes: bool = False,
    aliases: tuple[str, ...] = (),
    tasks: tuple[Task, ...] | None = None,
) -> Callable[[VerifyFn], VerifyFn]:
    """Register `fn` under `name` (and `aliases`) as the verifier of samples of `tasks`.

    Checked here, so a mistake fails at import rather than at the first item: names are unique
    non-empty strings, `params` is a `VerifierParams` subclass, `tasks` are known tasks, and a
    verifier of boxes (`boxes=True`: its ground truth is the sample's boxes) serves box tasks only.
    Without `tasks`, a verifier serves every task (a box verifier: every box task).
    """
    if tasks is None:
        tasks = tuple(t for t in TASKS if t in BOX_TASKS) if boxes else TASKS
    if not (isinstance(params, type) and issubclass(params, VerifierParams)):
        raise TypeError(f"verifier {name!r}: params must be a VerifierParams subclass, got {params!r}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"verifier {name!r}: tasks must be among {', '.join(TASKS)}, got {tasks!r}")
    if boxes and not set(tasks) <= BOX_TASKS:
        raise ValueError(f"verifier {name!r}: a box verifier serves only {sorted(BOX_TASKS)}, got {tasks!r}")

    def wrap(fn: VerifyFn) -> VerifyFn:
        if not callable(fn):
            raise TypeError(f"verifier {name!r}: {fn!r} is not callable")
        for key in (name, *aliases):
            if not isinstance(key, str) or not key:
                raise ValueError(f"verifier names must be non-empty strings, got {key!r}")
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"verifier {key!r} is already registered")
        _REGISTRY[name] = VerifierSpec(name, params, fn, boxes, tuple(aliases), tuple(tasks))
        for alias in aliases:
            _ALIASES[alias] = name
        return fn

    return wrap


def _ensure_loaded() -> None:
    # Importing the package registers every verifier module in it.
    import triune_data.verifiers  # noqa: F401


def get_verifier(name: str) -> VerifierSpec:
    _ensure_loaded()
    spec = _REGISTRY.get(_ALIASES.get(name, name))
    if spec is None:
        known = ", ".join(sorted([*_REGISTRY, *_ALIASES]))
        raise UnknownVerifierError(f"unknown verifier {name!r} (known: {known})")
    return spec


def verifier_names(*, aliases: bool = True, builtin: bool = False) -> list[str]:
    """Registered names; `builtin=True` keeps those shipped in this package (for the schemas)."""
    _ensure_loaded()
    names = [*_REGISTRY, *(_ALIASES if aliases else ())]
    if builtin:
        names = [n for n in names if get_verifier(n).fn.__module__.startswith(__package__ + ".")]
    return sorted(names)


def canonical_name(name: str) -> str:
    return get_verifier(name).name


@lru_cache(maxsize=4096)
def _parse_params_text(name: str, text: str) -> VerifierParams:
    spec = get_verifier(name)
    try:
        raw = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise VerifierError(f"{spec.name}: verifier_params is not JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise VerifierError(f"{spec.name}: verifier_params must be a JSON object")
    try:
        return spec.params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise VerifierError(f"{spec.name}: verifier_params.{loc}: {err['msg']}") from None


def parse_params(name: str, params: Mapping[str, Any] | str | None) -> VerifierParams:
    """Validate params for verifier `name`; raises VerifierError with the offending field."""
    if params is None:
        params = {}
    text = params if isinstance(params, str) else json.dumps(params, sort_keys=True)
    return _parse_params_text(name, text)


def params_json(name: str, params: Mapping[str, Any] | None) -> str:
    """Canonical JSON of validated params (only what the user set, sorted keys): what shards store."""
    model = parse_params(name, params)
    return json.dumps(
        model.model_dump(mode="json", exclude_unset=True), sort_keys=True, separators=(",", ":")
    )


# ----------------------------------------------------------------------------------------------
# The one scoring entry point.


@dataclass(slots=True)
class ScoreItem:
    """A self-contained request to score one completion (the reward service's item)."""

    verifier: str
    completion: str
    ground_truth: str | list[dict[str, Any]] | list[Box]
    params: Mapping[str, Any] | str | None = None
    accuracy_weight: float = 1.0
    format_weight: float = 0.0
    step: int = 0
    total_steps: int = 0
    image_size: tuple[float, float] | None = None
    model_input_size: tuple[float, float] | None = None
    data_source: str | None = None


def _boxes_from_gt(gt: Any) -> list[Box]:
    out = []
    for b in gt:
        if isinstance(b, Box):
            out.append(b)
            continue
        coords = b.get("bbox", b.get("bbox_2d")) if isinstance(b, Mapping) else None
        if coords is None or len(coords) != 4:
            raise VerifierError('box ground truth must be a list of {"label", "bbox": [x1,y1,x2,y2]}')
        x1, y1, x2, y2 = map(float, coords)
        finite = math.isfinite(x1) and math.isfinite(y1) and math.isfinite(x2) and math.isfinite(y2)
        if not finite or x2 < x1 or y2 < y1:
            raise VerifierError(f"invalid ground-truth box {coords!r}")
        out.append(Box(str(b.get("label", "")), x1, y1, x2, y2))
    return out


def _as_size(v: Any) -> tuple[float, float] | None:
    if v is None:
        return None
    w, h = (float(x) for x in v)
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise VerifierError(f"invalid size {list(v)!r}: width and height must be positive")
    return (w, h)


def score(item: ScoreItem) -> RewardResult:
    """Score one item. Never raises for bad input: returns status `error` with the reason."""
    try:
        spec = get_verifier(item.verifier)
        params = parse_params(spec.name, item.params)
        gt: GroundTruth
        if spec.boxes and not isinstance(item.ground_truth, str):
            gt = _boxes_from_gt(item.ground_truth)
        elif isinstance(item.ground_truth, str):
            if len(item.ground_truth) > MAX_GROUND_TRUTH_CHARS:
                raise VerifierError("ground truth exceeds the size limit")
            gt = item.ground_truth
        else:
            raise VerifierError(f"{spec.name} needs a string ground truth")
        for name in ("accuracy_weight", "format_weight"):
            w = getattr(item, name)
            if not (isinstance(w, numbers.Real) and math.isfinite(w) and w >= 0):  # numpy floats too
                raise VerifierError(f"{name} must be a finite number >= 0, got {w!r}")
        ctx = VerifyContext(
            step=int(item.step),
            total_steps=int(item.total_steps),
            image_size=_as_size(item.image_size),
            model_input_size=_as_size(item.model_input_size),
            data_source=item.data_source,
        )
    except (VerifierError, TypeError, ValueError, OverflowError) as exc:
        return RewardResult.failed("error", str(exc)[:500])
    completion = item.completion if isinstance(item.completion, str) else ""
    if len(completion) > MAX_COMPLETION_CHARS:
        # The model's fault, not the verifier's: a real zero, not a masked error.
        return RewardResult(
            0.0, 0.0, 0.0, status="ok", message=f"completion longer than {MAX_COMPLETION_CHARS} chars"
        )
    try:
        verdict = spec.fn(completion, gt, params, ctx)
    except VerifierError as exc:
        return RewardResult.failed("error", str(exc))
    except RecursionError:
        return RewardResult.failed("error", f"{spec.name}: input too deeply nested")
    except Exception as exc:  # a verifier bug: report it loudly, never as a silent 0
        return RewardResult.failed("error", f"{spec.name}: {type(exc).__name__}: {exc}"[:500])
    reward = combine(verdict.accuracy, verdict.format, item.accuracy_weight, item.format_weight)
    if verdict.status != "ok":
        reward = 0.0
    return RewardResult(
        reward=reward,
        accuracy=verdict.accuracy,
        format=verdict.format,
        components=verdict.components,
        status=verdict.status,
        message=verdict.message,
    )
