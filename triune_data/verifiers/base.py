"""The verifier contract: typed params, a context, one item type, one result type, one registry.

A verifier is a pure function::

    @register_verifier("counting", params=CountingParams, tasks=("counting",),
                       check_ground_truth=check_counting_ground_truth)
    def verify_counting(completion: str, ground_truth: GroundTruth, params: CountingParams,
                        ctx: VerifyContext) -> Verdict: ...

It judges accuracy and format and says what it read from the completion (`Verdict.prediction`).
Its ground-truth check (`GroundTruthCheck`) says whether it can read a ground truth at all; the
dataset build runs it on every sample (a failing row is a reject, `invalid_ground_truth`) and
`score()` runs it before the verifier, so a row the build kept never fails it at scoring.
Blending accuracy and format with the sample's weights happens once, in `score()` (`combine`),
never inside a verifier. `score()` is what every caller uses: the reward service's workers, the
in-process backend, `triune score`, the trainer and the benchmarks. Its input is the one item
type, `ScoreItem` (`score_item_for` makes one from a stored sample), its output the one result
type, `RewardResult`; their JSON forms are derived in `common.wire`.

Failure semantics (V-Triune returned a silent 0 for any exception):
- a wrong or unparseable *completion* is a legitimate `ok` verdict with accuracy 0;
- unusable *ground truth or params*, or an item that is not what it should be (`check_item`, the
  validation the reward service applies to JSON items: a completion that is not a string, a
  negative weight, ...), is `error`, with the reason in `message`;
- `not_applicable` means the verifier has nothing to judge for this sample (the trainer masks it);
- `timeout` is set by the process pool, which enforces the hard per-item deadline.
The trainer masks `error`/`timeout` rows out of the advantage and counts them per data_source.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from triune_data.coords import Frame
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


def coerce_ground_truth(value: Any) -> GroundTruth:
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
    PlainValidator(coerce_ground_truth),
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
Text = Annotated[str, Field(strict=True)]  # bytes are not text
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

    verifier: Annotated[
        str, Field(min_length=1, max_length=128, strict=True, description="registered verifier name")
    ]
    completion: Text
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
    data_source: Text | None = None
    id: Annotated[str | int | None, Field(description="echoed back in the result")] = None


ITEM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ScoreItem))


@lru_cache(maxsize=1)
def item_adapter() -> TypeAdapter[ScoreItem]:
    """The one validator of items: JSON items (`common.wire`) and `check_item` both use it."""
    return TypeAdapter(ScoreItem)


def validation_message(exc: ValidationError, *, limit: int = 3) -> str:
    """A short, one-line summary of a pydantic error: `items.3.accuracy_weight: ... ; ...`."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more errors)" if more > 0 else "")


def check_item(item: ScoreItem) -> ScoreItem:
    """`item`, validated exactly as the reward service validates a JSON item; ValueError otherwise.

    A dataclass does not check what it is given, so an item built in Python (a completion that is
    None, a negative weight) is checked here by the same validator as the JSON form, field by
    field. What only Python can carry is taken as a client would send it: `params` as the stored
    JSON text is parsed for the check (and kept as text: `score` caches its parse by text), any
    other mapping becomes a dict.

    >>> check_item(ScoreItem(verifier="counting", completion=None, ground_truth="3"))
    Traceback (most recent call last):
    ...
    ValueError: completion: Input should be a valid string
    """
    values = {name: getattr(item, name) for name in ITEM_FIELDS}
    params = values["params"]
    text = params if type(params) is str else None
    if text is not None:
        try:
            values["params"] = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"params is not JSON: {exc.msg}") from None
    elif isinstance(params, Mapping) and type(params) is not dict:
        values["params"] = dict(params)  # as a client sends it
    try:
        checked = item_adapter().validate_python(values)
    except ValidationError as exc:
        raise ValueError(validation_message(exc)) from None
    if text is not None:
        checked.params = text
    return checked


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


# (completion, ground truth, params, context) -> Verdict; a verifier annotates the ground truth it
# reads (str or list[Box]) and its own params model, so the alias cannot be narrower than this.
VerifyFn: TypeAlias = Callable[..., Verdict]
GroundTruthCheck: TypeAlias = Callable[..., None]
"""``check(ground_truth, params, *, full: bool) -> None``: raises VerifierError (or ValueError) when
the verifier cannot read `ground_truth` under `params`. Cheap by default; `full` asks for the
thorough check where that costs more (math: math-verify's parse, see `docs/decisions.md`)."""


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    params: type[VerifierParams]
    fn: VerifyFn
    boxes: bool  # ground truth is a list of boxes rather than a string
    aliases: tuple[str, ...] = ()
    tasks: tuple[Task, ...] = TASKS  # the tasks whose samples it can score
    check_ground_truth: GroundTruthCheck | None = None  # None: it reads no ground truth (`format`)


_REGISTRY: dict[str, VerifierSpec] = {}
_ALIASES: dict[str, str] = {}


def register_verifier(
    name: str,
    *,
    params: type[VerifierParams],
    boxes: bool = False,
    aliases: tuple[str, ...] = (),
    tasks: tuple[Task, ...] | None = None,
    check_ground_truth: GroundTruthCheck | None = None,
) -> Callable[[VerifyFn], VerifyFn]:
    """Register `fn` under `name` (and `aliases`) as the verifier of samples of `tasks`.

    `check_ground_truth` (see `GroundTruthCheck`) says which ground truths the verifier can read;
    without one the verifier is taken to read none (like `format`) and nothing is checked.
    Checked here, so a mistake fails at import rather than at the first item: names are unique
    non-empty strings, `params` is a `VerifierParams` subclass, `tasks` are known tasks, the check
    is callable, and a verifier of boxes (`boxes=True`: its ground truth is the sample's boxes)
    serves box tasks only. Without `tasks`, a verifier serves every task (a box verifier: every
    box task).
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
    if check_ground_truth is not None and not callable(check_ground_truth):
        raise TypeError(f"verifier {name!r}: check_ground_truth must be callable, got {check_ground_truth!r}")

    def wrap(fn: VerifyFn) -> VerifyFn:
        if not callable(fn):
            raise TypeError(f"verifier {name!r}: {fn!r} is not callable")
        for key in (name, *aliases):
            if not isinstance(key, str) or not key:
                raise ValueError(f"verifier names must be non-empty strings, got {key!r}")
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"verifier {key!r} is already registered")
        _REGISTRY[name] = VerifierSpec(
            name, params, fn, boxes, tuple(aliases), tuple(tasks), check_ground_truth
        )
        for alias in aliases:
            _ALIASES[alias] = name
        return fn

    return wrap


_loaded = False


def _ensure_loaded() -> None:
    # Importing the package registers every verifier module in it (once: lookups run per sample).
    global _loaded
    if not _loaded:
        import triune_data.verifiers  # noqa: F401

        _loaded = True


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


def check_ground_truth(
    name: str,
    ground_truth: GroundTruth,
    params: VerifierParams | Mapping[str, Any] | str | None = None,
    *,
    full: bool = False,
) -> None:
    """Raise VerifierError when verifier `name` cannot read `ground_truth` under `params`.

    Runs the verifier's registered check (nothing for a verifier that reads no ground truth); the
    dataset build calls this for every sample and `score` for every item. `full`: see
    `GroundTruthCheck`.

    >>> check_ground_truth("counting", "many")
    Traceback (most recent call last):
    ...
    triune_data.errors.VerifierError: counting: ground truth 'many' is not a non-negative integer
    """
    spec = get_verifier(name)
    if not spec.boxes and not isinstance(ground_truth, str):
        raise VerifierError(f"{spec.name} needs a string ground truth, got {type(ground_truth).__name__}")
    if spec.check_ground_truth is None:
        return
    if not isinstance(params, VerifierParams):
        params = parse_params(spec.name, params)
    try:
        spec.check_ground_truth(ground_truth, params, full=full)
    except ValueError as exc:
        raise VerifierError(f"{spec.name}: {exc}") from None


def _size(v: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if v is None else (float(v[0]), float(v[1]))


def score(item: ScoreItem, *, checked: bool = False) -> RewardResult:
    """Score one item. Never raises for bad input: returns status `error` with the reason.

    The item is validated first (`check_item`, as the reward service validates JSON items) unless
    `checked` says its caller did; then its params, then its ground truth (`check_ground_truth`).
    """
    if not checked:
        try:
            item = check_item(item)
        except ValueError as exc:
            item_id = item.id if type(item.id) in (str, int) else None
            return RewardResult.failed("error", f"invalid item: {exc}"[:500], id=item_id)
    try:
        spec = get_verifier(item.verifier)
        params = parse_params(spec.name, item.params)
        ctx = VerifyContext(
            step=item.step,
            total_steps=item.total_steps,
            image_size=_size(item.image_size),
            model_input_size=_size(item.model_input_size),
            data_source=item.data_source,
            model_frame=item.model_frame,
        )
        check_ground_truth(spec.name, item.ground_truth, params)
    except VerifierError as exc:
        return RewardResult.failed("error", str(exc)[:500], id=item.id)
    except RecursionError:
        return RewardResult.failed("error", f"{item.verifier}: ground truth too deeply nested", id=item.id)
    except Exception as exc:  # a bug in a ground-truth check: loud, never a silent 0
        return RewardResult.failed("error", f"{item.verifier}: {type(exc).__name__}: {exc}"[:500], id=item.id)
    if len(item.completion) > MAX_COMPLETION_CHARS:
        # The model's fault, not the verifier's: a real zero, not a masked error.
        message = f"completion longer than {MAX_COMPLETION_CHARS} chars"
        return RewardResult(reward=0.0, accuracy=0.0, format=0.0, message=message, id=item.id)
    try:
        verdict = spec.fn(item.completion, item.ground_truth, params, ctx)
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
