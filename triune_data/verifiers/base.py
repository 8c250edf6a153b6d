"""The verifier contract: typed params, a context, one item type, one result type, one registry.

A verifier is a pure function::

    @register_verifier("counting", params=CountingParams, tasks=("counting",))
    def verify_counting(completion: str, ground_truth: GroundTruth, params: CountingParams,
                        ctx: VerifyContext) -> Verdict: ...

It judges accuracy and format and says what it read from the completion (`Verdict.prediction`).
Blending accuracy and format with the sample's weights happens once, in `score()` (`combine`),
never inside a verifier. `score()` is what every caller uses: the reward service's workers, the
in-process backend, `triune score`, the trainer and the benchmarks. Its input is the one item
type, `ScoreItem` (`score_item_for` makes one from a stored sample), its output the one result
type, `RewardResult`; their JSON forms are derived in `common.wire`.

Failure semantics (V-Triune returned a silent 0 for any exception):
- a wrong or unparseable *completion* is a legitimate `ok` verdict with accuracy 0;
- unusable *ground truth or params*, or an item that is not what it should be, is `error`, with
  the reason in `message`;
- `not_applicable` means the verifier has nothing to judge for this sample (the trainer masks it);
- `timeout` is set by the process pool, which enforces the hard per-item deadline.
The trainer masks `error`/`timeout` rows out of the advantage and counts them per data_source.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from triune_data.coords import FRAMES, Frame
from triune_data.errors import UnknownVerifierError, VerifierError
from triune_data.types import BOX_TASKS, TASKS, Box, Sample, Task

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
    those pixels). Without a model input size the model input is the stored image. `model_frame`,
    when set, is the frame the model writes boxes in (decided by its family); box verifiers read
    the completion's boxes in it instead of their params' `coords`.
    """

    step: int = 0
    total_steps: int = 0
    image_size: tuple[float, float] | None = None
    model_input_size: tuple[float, float] | None = None
    data_source: str | None = None
    model_frame: Frame | None = None

    @property
    def progress(self) -> float:
        """step / total_steps in [0, 1]; 1.0 when training length is unknown (evaluation)."""
        if self.total_steps <= 0:
            return 1.0
        return min(max(self.step / self.total_steps, 0.0), 1.0)


GroundTruth: TypeAlias = str | list[Box]
# What a verifier read from the completion: the answer text it compared, or the boxes it parsed in
# the canonical frame as [{"label": str | None, "bbox": [x1, y1, x2, y2]}]; None when it found nothing.
Prediction: TypeAlias = str | list[dict[str, Any]] | None


@dataclass(slots=True)
class Verdict:
    """What a verifier returns: judgements in [0, 1], before the sample's weights are applied."""

    accuracy: float
    format: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    status: Status = "ok"
    message: str = ""
    prediction: Prediction = None


# ----------------------------------------------------------------------------------------------
# The item. One definition; its JSON form (`common.wire`) is validated by pydantic from these
# annotations, and the pool sends its fields by name. Field constraints are what the wire checks.


_BOX_KEYS = frozenset({"label", "bbox"})
_NUMBERS = (int, float)  # exact types: a bool or a numeric string is not a coordinate


def check_box(box: Any) -> Box:
    """A gold box: a `Box`, or its JSON form ``{"label": str, "bbox": [x1, y1, x2, y2]}``, with
    finite, ordered coordinates (x1 <= x2, y1 <= y2); ValueError otherwise.

    Written for speed: every gold box of every item passes here (wire items twice: when the JSON
    is validated and when the item is scored).
    """
    if type(box) is Box:
        label, x1, y1, x2, y2 = box.label, box.x1, box.y1, box.x2, box.y2
    elif isinstance(box, Mapping) and box.keys() <= _BOX_KEYS and "bbox" in box:
        label, coords = box.get("label", ""), box["bbox"]
        if type(coords) not in (list, tuple) or len(coords) != 4:
            raise ValueError(f"box ground truth: bbox must be [x1, y1, x2, y2], got {str(coords)[:60]}")
        x1, y1, x2, y2 = coords
    else:
        raise ValueError(
            f'box ground truth: a box is {{"label", "bbox": [x1, y1, x2, y2]}}, got {str(box)[:60]}'
        )
    if type(label) is not str:
        raise ValueError(f"box ground truth: a label must be a string, got {label!r}"[:100])
    if not (type(x1) in _NUMBERS and type(y1) in _NUMBERS and type(x2) in _NUMBERS and type(y2) in _NUMBERS):
        raise ValueError(f"box ground truth: coordinates must be numbers, got {[x1, y1, x2, y2]!r}"[:100])
    try:
        finite = math.isfinite(x1) and math.isfinite(y1) and math.isfinite(x2) and math.isfinite(y2)
    except OverflowError:  # an integer beyond float range
        finite = False
    if not (finite and x1 <= x2 and y1 <= y2):
        raise ValueError(f"invalid ground-truth box {[x1, y1, x2, y2]!r} (finite, x1 <= x2, y1 <= y2)"[:200])
    return box if type(box) is Box else Box(label, float(x1), float(y1), float(x2), float(y2))


def check_ground_truth(value: Any) -> GroundTruth:
    """A string, or a list of gold boxes (`check_box`); ValueError otherwise."""
    if isinstance(value, str):
        if len(value) > MAX_GROUND_TRUTH_CHARS:
            raise ValueError("ground truth exceeds the size limit")
        return value
    if isinstance(value, list):
        return [check_box(b) for b in value]
    raise ValueError(f"ground truth must be a string or a list of boxes, got {type(value).__name__}")


def _wire_params(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("params must be a JSON object")
    return value


_BOX_JSON = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "default": ""},
        "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
    },
    "required": ["bbox"],
    "additionalProperties": False,
    "description": "a gold box in the canonical frame (absolute float pixels of the stored image): x1, y1, x2, y2",
}
GroundTruthField = Annotated[
    GroundTruth,
    PlainValidator(check_ground_truth),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": _BOX_JSON}],
            "description": "a string, or gold boxes for box verifiers",
        }
    ),
]
ParamsField = Annotated[
    Mapping[str, Any] | str,  # JSON text as samples store it, or parsed; always an object on the wire
    PlainValidator(_wire_params),
    WithJsonSchema({"type": "object", "description": "verifier params (a JSON object)"}),
]
Weight = Annotated[float, Field(ge=0, strict=True)]
Count = Annotated[int, Field(ge=0, strict=True)]
Positive = Annotated[float, Field(gt=0, strict=True)]


@dataclass(kw_only=True, slots=True)
class ScoreItem:
    """One completion to score, self-contained: the sample's reward spec plus training context.

    Sizes are (width, height). Without `model_frame`, a box verifier reads the completion's boxes
    in its params' `coords`; with it, in that frame (`pixel` is of `model_input_size` when given).

    >>> result = score(ScoreItem(verifier="counting", completion="<answer>3</answer>", ground_truth="3"))
    >>> result.accuracy, result.prediction
    (1.0, '3')
    """

    __pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)

    verifier: Annotated[str, Field(min_length=1, max_length=128, description="registered verifier name")]
    completion: str
    ground_truth: GroundTruthField
    params: ParamsField = field(default_factory=dict)
    accuracy_weight: Weight = 1.0
    format_weight: Weight = 0.0
    step: Count = 0
    total_steps: Count = 0
    image_size: Annotated[tuple[Positive, Positive] | None, Field(description="stored image [w, h]")] = None
    model_input_size: Annotated[
        tuple[Positive, Positive] | None, Field(description="image as the model saw it [w, h]")
    ] = None
    model_frame: Annotated[Frame | None, Field(description="frame the model writes boxes in")] = None
    data_source: str | None = None
    id: Annotated[str | int | None, Field(description="echoed back in the result")] = None


ITEM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ScoreItem))


@dataclass(kw_only=True, slots=True)
class RewardResult:
    """The one result type of reward computation.

    `reward` feeds the advantage; `components` are named floats for reports only; `prediction` is
    what the verifier read from the completion; `id` echoes the item's.
    """

    reward: float
    accuracy: float
    format: float
    components: dict[str, float] = field(default_factory=dict)
    status: Status = "ok"
    message: str = ""
    prediction: Prediction = None
    id: str | int | None = None

    @classmethod
    def failed(cls, status: Status, message: str, *, id: str | int | None = None) -> RewardResult:
        return cls(reward=0.0, accuracy=0.0, format=0.0, status=status, message=message, id=id)


RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RewardResult))


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
# The one scoring entry point, and the one way to make an item from a stored sample.


def score_item_for(
    sample: Sample,
    completion: str,
    *,
    step: int = 0,
    total_steps: int = 0,
    model_input_size: tuple[float, float] | None = None,
    model_frame: Frame | None = None,
) -> ScoreItem:
    """The item that scores `completion` for a stored `sample` (what score, eval, train and filter use).

    Ground truth: the sample's boxes for a box verifier, else its `ground_truth` string; params: the
    stored JSON text (`score` parses and validates it); image size: the first image's. An unknown
    verifier or broken params are reported by `score` as an error result, not raised here.
    """
    try:
        boxes = get_verifier(sample.reward.verifier).boxes
    except UnknownVerifierError:
        boxes = False
    size = sample.image_sizes[0] if sample.image_sizes else None
    return ScoreItem(
        verifier=sample.reward.verifier,
        completion=completion,
        ground_truth=list(sample.boxes) if boxes else sample.ground_truth,
        params=sample.reward.verifier_params,
        accuracy_weight=sample.reward.accuracy_weight,
        format_weight=sample.reward.format_weight,
        step=step,
        total_steps=total_steps,
        image_size=None if size is None else (float(size.width), float(size.height)),
        model_input_size=model_input_size,
        model_frame=model_frame,
        data_source=sample.data_source,
        id=sample.id,
    )


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
        if not spec.boxes and not isinstance(item.ground_truth, str):
            raise VerifierError(
                f"{spec.name} needs a string ground truth, got {type(item.ground_truth).__name__}"
            )
        gt = check_ground_truth(item.ground_truth)
        if type(item.completion) is not str:
            raise VerifierError(f"completion must be a string, got {type(item.completion).__name__}")
        for name in ("accuracy_weight", "format_weight"):
            w = getattr(item, name)
            if not (isinstance(w, numbers.Real) and math.isfinite(w) and float(w) >= 0):  # numpy floats too
                raise VerifierError(f"{name} must be a finite number >= 0, got {w!r}")
        if item.model_frame is not None and item.model_frame not in FRAMES:
            raise VerifierError(f"unknown model_frame {item.model_frame!r} (known: {', '.join(FRAMES)})")
        ctx = VerifyContext(
            step=int(item.step),
            total_steps=int(item.total_steps),
            image_size=_as_size(item.image_size),
            model_input_size=_as_size(item.model_input_size),
            data_source=item.data_source,
            model_frame=item.model_frame,
        )
    except (VerifierError, TypeError, ValueError, OverflowError) as exc:
        return RewardResult.failed("error", str(exc)[:500], id=item.id)
    if len(item.completion) > MAX_COMPLETION_CHARS:
        # The model's fault, not the verifier's: a real zero, not a masked error.
        message = f"completion longer than {MAX_COMPLETION_CHARS} chars"
        return RewardResult(reward=0.0, accuracy=0.0, format=0.0, message=message, id=item.id)
    try:
        verdict = spec.fn(item.completion, gt, params, ctx)
    except VerifierError as exc:
        return RewardResult.failed("error", str(exc), id=item.id)
    except RecursionError:
        return RewardResult.failed("error", f"{spec.name}: input too deeply nested", id=item.id)
    except Exception as exc:  # a verifier bug: report it loudly, never as a silent 0
        return RewardResult.failed("error", f"{spec.name}: {type(exc).__name__}: {exc}"[:500], id=item.id)
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
        prediction=verdict.prediction,
        id=item.id,
    )
