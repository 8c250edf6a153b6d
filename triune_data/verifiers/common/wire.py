"""`ScoreItem` and `RewardResult` as JSON: validation, conversion and the JSON Schemas of both.

This is the one JSON form of an item and a result: the reward service's wire, `triune score`
files and the pool's workers all read and write it. It is derived from the two dataclasses in
`verifiers.base` by field name: pydantic validates a JSON item straight into a `ScoreItem` from
the dataclass's annotations (strict numbers, no NaN or infinity, no unknown keys, positive sizes,
params an object, gold boxes as ``{"label", "bbox": [x1, y1, x2, y2]}``) with the same validator
`base.check_item` applies to items built in Python, and a result's JSON object is its fields. `schemas/reward_request.schema.json` and `schemas/reward_response.schema.json`
are generated here (a test fails on drift).

>>> item = item_from_wire({"verifier": "counting", "completion": "3", "ground_truth": "3", "id": 7})
>>> item.id, item_to_wire(item)
(7, {'verifier': 'counting', 'completion': '3', 'ground_truth': '3', 'id': 7})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from triune_data.coords import Frame
from triune_data.types import Box, Sample
from triune_data.verifiers.base import (
    ITEM_FIELDS,
    RESULT_FIELDS,
    STATUSES,
    RewardResult,
    ScoreItem,
    item_adapter,
    score_item_for,
    validation_message,
)

_ITEMS = TypeAdapter(list[ScoreItem])
_DEFAULTS = {
    name: getattr(ScoreItem(verifier="x", completion="", ground_truth=""), name) for name in ITEM_FIELDS
}
_OPTIONAL = [
    (n, d) for n, d in _DEFAULTS.items() if n not in ("verifier", "completion", "ground_truth", "params")
]
_RESULT_REQUIRED = frozenset({"reward", "accuracy", "format", "status"})


def item_from_wire(obj: Any) -> ScoreItem:
    """Validate one JSON item (a parsed object) into a `ScoreItem`; ValueError names the field."""
    if not isinstance(obj, dict):
        raise ValueError(
            f"Input should be a valid dictionary (an item is a JSON object), got {type(obj).__name__}"
        )
    try:
        return item_adapter().validate_python(obj)
    except ValidationError as exc:
        raise ValueError(validation_message(exc)) from None


def items_from_wire(objs: list[Any]) -> list[ScoreItem | ValueError]:
    """`item_from_wire` for many items, or the reason each invalid one was rejected.

    One pydantic call for the whole list is cheaper per item than one call per item; only a list
    holding an invalid item is validated again item by item.
    """
    try:
        return list(_ITEMS.validate_python(objs))
    except ValidationError:
        pass
    out: list[ScoreItem | ValueError] = []
    for obj in objs:
        try:
            out.append(item_from_wire(obj))
        except ValueError as exc:
            out.append(exc)
    return out


def item_id(obj: Any) -> str | int | None:
    """The `id` of a JSON item, when it has a well-typed one (to echo even if the item is invalid)."""
    i = obj.get("id") if type(obj) is dict else None
    return i if type(i) in (str, int) else None


def coerce_item(obj: ScoreItem | Mapping[str, Any]) -> ScoreItem:
    """A `ScoreItem` from a `ScoreItem` or a JSON item; raises ValueError with the reason."""
    return obj if isinstance(obj, ScoreItem) else item_from_wire(obj)


def item_to_wire(item: ScoreItem) -> dict[str, Any]:
    """The JSON object of one item (what a client sends); ValueError on params that are not JSON.

    Fields at their default are left out: smaller bodies, less to parse and validate.
    """
    gt: Any = item.ground_truth
    if type(gt) is list:
        gt = [_box_object(b) if isinstance(b, Box) else b for b in gt]  # Boxes as JSON, dicts as they are
    out: dict[str, Any] = {"verifier": item.verifier, "completion": item.completion, "ground_truth": gt}
    params = _params_object(item.params)
    if params:
        out["params"] = params
    for name, default in _OPTIONAL:
        value = getattr(item, name)
        if value != default:
            out[name] = value
    return out


def _box_object(b: Box) -> dict[str, Any]:
    return {"label": b.label, "bbox": [b.x1, b.y1, b.x2, b.y2]}


def _params_object(params: Any) -> Any:
    if type(params) is str:
        try:
            params = json.loads(params) if params else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"params is not JSON: {exc.msg}") from None
    return params if type(params) is dict or not isinstance(params, Mapping) else dict(params)


def result_to_wire(r: RewardResult) -> dict[str, Any]:
    """The JSON object of one result: its fields (`id` only when the item had one)."""
    d = {name: getattr(r, name) for name in RESULT_FIELDS}
    if d["id"] is None:
        del d["id"]
    return d


def result_from_wire(d: Any) -> RewardResult:
    """A `RewardResult` from one result object; raises ValueError if it is malformed.

    Checked by hand, by field name (a client reads thousands a second): the three scores are
    numbers, `status` is a status, `components` an object, nothing unknown.
    """
    if type(d) is not dict or not d.keys() >= _RESULT_REQUIRED or not d.keys() <= _RESULT_KEYS:
        raise ValueError(f"malformed result: {d!r}"[:300])
    reward, accuracy, fmt = d["reward"], d["accuracy"], d["format"]
    r = RewardResult(**d)
    if (
        type(reward) not in _NUMBERS
        or type(accuracy) not in _NUMBERS
        or type(fmt) not in _NUMBERS
        or r.status not in STATUSES
        or type(r.components) is not dict
        or type(r.message) is not str
        or not (r.prediction is None or type(r.prediction) in (str, list))
        or not (r.id is None or type(r.id) in (str, int))
    ):
        raise ValueError(f"malformed result: {d!r}"[:300])
    r.reward, r.accuracy, r.format = float(reward), float(accuracy), float(fmt)
    return r


_NUMBERS = (int, float)
_RESULT_KEYS = frozenset(RESULT_FIELDS)


# ----------------------------------------------------------------------------------------------
# The reward spec: a sample's item without completion or training context, as exports carry it.

_CONTEXT = ("completion", "step", "total_steps", "model_input_size", "model_frame")


def reward_spec(sample: Sample) -> dict[str, Any]:
    """Everything needed to score a completion for `sample`, as a JSON object, plus its `split`.

    It is the sample's `ScoreItem` in its JSON form without the completion and the training
    context (step, model input size, frame), which the scorer adds (`item_from_reward_spec`). An
    export carries it so that a framework's reward function needs nothing but the row.

    >>> from triune_data.types import Box, Image, ImageSize, Message, Provenance, RewardSpec, Sample
    >>> s = Sample("s/1", "s", "grounding", "perception", "train", [Image(b"", "a.png")], [ImageSize(64, 48)],
    ...            [Message("user", "<image>find it")], "", "", [Box("dog", 1.0, 2.0, 30.0, 40.0)],
    ...            RewardSpec("grounding", "{}", 1.0, 0.1), 1.0, None, Provenance("x", "1"))
    >>> reward_spec(s)["ground_truth"], reward_spec(s)["image_size"], reward_spec(s)["split"]
    ([{'label': 'dog', 'bbox': [1.0, 2.0, 30.0, 40.0]}], [64.0, 48.0], 'train')
    """
    wire = item_to_wire(score_item_for(sample, ""))
    del wire["completion"]
    if "image_size" in wire:
        wire["image_size"] = list(wire["image_size"])
    return {**wire, "split": sample.split}


def item_from_reward_spec(
    spec: Any,
    completion: str,
    *,
    step: int = 0,
    total_steps: int = 0,
    model_input_size: tuple[float, float] | None = None,
    model_frame: Frame | None = None,
) -> ScoreItem:
    """The item scoring `completion` against a `reward_spec` object; ValueError names what is wrong."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a reward spec is a JSON object, got {type(spec).__name__}")
    context = [k for k in _CONTEXT if k in spec]
    if context:
        raise ValueError(f"a reward spec carries no {', '.join(context)}")
    obj = {k: v for k, v in spec.items() if k != "split"}
    obj.update(completion=completion, step=step, total_steps=total_steps)
    if model_input_size is not None:
        obj["model_input_size"] = model_input_size
    if model_frame is not None:
        obj["model_frame"] = model_frame
    return item_from_wire(obj)


# ----------------------------------------------------------------------------------------------
# JSON Schemas (generated, committed under schemas/). The envelopes are the service's bodies.

_SCHEMA_BASE = "https://triune.dev/schemas/"


@dataclass
class ScoreRequest:
    __pydantic_config__ = ConfigDict(extra="forbid")

    items: list[ScoreItem]


@dataclass
class ScoreResponse:
    results: list[RewardResult]


def request_json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _SCHEMA_BASE + "reward_request.schema.json",
        **TypeAdapter(ScoreRequest).json_schema(mode="validation"),
        "title": "triune reward request",
        "description": "A batch of reward items (the body of the reward service's score endpoint), scored in order.",
    }


def response_json_schema() -> dict[str, Any]:
    schema = TypeAdapter(ScoreResponse).json_schema(mode="serialization")
    schema["$defs"]["RewardResult"]["required"] = sorted(_RESULT_REQUIRED)  # a result always says its status
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _SCHEMA_BASE + "reward_response.schema.json",
        **schema,
        "title": "triune reward response",
        "description": "The reward service's answer: one result per item, in the order of the items.",
    }


__all__ = [
    "coerce_item",
    "item_from_reward_spec",
    "item_from_wire",
    "item_id",
    "item_to_wire",
    "items_from_wire",
    "request_json_schema",
    "response_json_schema",
    "result_from_wire",
    "result_to_wire",
    "reward_spec",
    "validation_message",
]
