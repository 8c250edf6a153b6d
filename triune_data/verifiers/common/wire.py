"""Reward items and results as JSON: validation, conversion and the JSON Schemas of both.

This is the JSON form of `ScoreItem` and `RewardResult` that the reward service's wire, the
`triune score --items` files and the pool's workers all read, so it lives beside those definitions
(the verifiers layer), not in the service. `schemas/reward_request.schema.json` and
`schemas/reward_response.schema.json` are generated from it (a test fails on drift).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from triune_data.types import Box
from triune_data.verifiers.base import STATUSES, RewardResult, ScoreItem, Status

# Numbers are strict: "1.5" or true are mistakes, not weights (ints are fine where floats go).
Coord = Annotated[float, Field(strict=True)]
Positive = Annotated[float, Field(gt=0, strict=True)]
PositiveSize = tuple[Positive, Positive]


class GroundTruthBox(BaseModel):
    """One gold box in the canonical frame: absolute float pixels of the stored image."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    label: str = ""
    bbox: tuple[Coord, Coord, Coord, Coord] = Field(description="x1, y1, x2, y2")


class Item(BaseModel):
    """One completion to score, self-contained: the sample's reward spec plus training context."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    verifier: str = Field(min_length=1, max_length=128, description="registered verifier name")
    params: dict[str, Any] = Field(default_factory=dict, description="verifier params (a JSON object)")
    ground_truth: str | list[GroundTruthBox] = Field(description="a string, or gold boxes for box verifiers")
    completion: str
    accuracy_weight: float = Field(1.0, ge=0, strict=True)
    format_weight: float = Field(0.0, ge=0, strict=True)
    step: int = Field(0, ge=0, strict=True)
    total_steps: int = Field(0, ge=0, strict=True)
    image_size: PositiveSize | None = Field(None, description="stored image [width, height]")
    model_input_size: PositiveSize | None = Field(None, description="image as the model saw it [w, h]")
    data_source: str | None = None
    id: str | int | None = Field(None, description="echoed back in the result")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Item]


class Result(BaseModel):
    """A `RewardResult` on the wire (plus the item's `id` when it had one)."""

    reward: float
    accuracy: float
    format: float
    components: dict[str, float] = Field(default_factory=dict)
    status: Status
    message: str = ""
    id: str | int | None = None


class ScoreResponse(BaseModel):
    results: list[Result]


_ITEM_LIST = TypeAdapter(list[Item])

# ----------------------------------------------------------------------------------------------
# Conversions. Items travel to workers as `ScoreItem`s; results come back as `RewardResult`s.


def item_to_score_item(item: Item) -> ScoreItem:
    gt: Any = item.ground_truth
    if not isinstance(gt, str):
        gt = [{"label": b.label, "bbox": list(b.bbox)} for b in gt]
    return ScoreItem(
        item.verifier,
        item.completion,
        gt,
        item.params,
        item.accuracy_weight,
        item.format_weight,
        item.step,
        item.total_steps,
        item.image_size,
        item.model_input_size,
        item.data_source,
    )


def score_item_from_dict(obj: Any) -> ScoreItem:
    """Validate one Item (a dict, e.g. parsed JSON) into a `ScoreItem`; raises ValueError with the reason."""
    try:
        return item_to_score_item(Item.model_validate(obj))
    except ValidationError as exc:
        raise ValueError(validation_message(exc)) from None


def score_items_from_dicts(objs: list[Any]) -> list[ScoreItem | ValueError]:
    """`score_item_from_dict` for many items, or the reason each invalid one was rejected.

    One pydantic call for the whole list is about 3× cheaper per item than one call per item; only
    a list holding an invalid item is validated again item by item.
    """
    try:
        return [item_to_score_item(i) for i in _ITEM_LIST.validate_python(objs)]
    except ValidationError:
        pass
    out: list[ScoreItem | ValueError] = []
    for obj in objs:
        try:
            out.append(score_item_from_dict(obj))
        except ValueError as exc:
            out.append(exc)
    return out


def coerce_item(obj: ScoreItem | Mapping[str, Any]) -> ScoreItem:
    """A `ScoreItem` from a `ScoreItem` or a dict of Item fields; raises ValueError with the reason."""
    return obj if isinstance(obj, ScoreItem) else score_item_from_dict(obj)


def score_item_to_wire(item: ScoreItem) -> dict[str, Any]:
    """The JSON object of one Item (what the client sends); raises ValueError on unusable params.

    Fields at their default are left out: smaller bodies, less to parse and validate.
    """
    params = item.params
    if type(params) is str:
        try:
            params = json.loads(params) if params else None
        except json.JSONDecodeError as exc:
            raise ValueError(f"params is not JSON: {exc.msg}") from None
    gt = item.ground_truth
    if type(gt) is not str:
        gt = [_box_to_wire(b) for b in gt]
    out: dict[str, Any] = {"verifier": item.verifier, "completion": item.completion, "ground_truth": gt}
    if params:
        out["params"] = params if type(params) is dict else dict(params)
    for key, value, default in (
        ("accuracy_weight", item.accuracy_weight, 1.0),
        ("format_weight", item.format_weight, 0.0),
        ("step", item.step, 0),
        ("total_steps", item.total_steps, 0),
        ("image_size", item.image_size, None),
        ("model_input_size", item.model_input_size, None),
        ("data_source", item.data_source, None),
    ):
        if value != default:
            out[key] = value
    return out


def _box_to_wire(b: Box | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(b, Box):
        return {"label": b.label, "bbox": [b.x1, b.y1, b.x2, b.y2]}
    return {"label": b.get("label", ""), "bbox": b.get("bbox")}


def result_to_wire(r: RewardResult, item_id: str | int | None = None) -> dict[str, Any]:
    d = r.to_dict()
    if item_id is not None:
        d["id"] = item_id
    return d


def result_from_wire(d: Any) -> RewardResult:
    """A `RewardResult` from one result object; raises ValueError if it is malformed."""
    try:
        r = RewardResult(
            float(d["reward"]),
            float(d["accuracy"]),
            float(d["format"]),
            d["components"],
            d["status"],
            d["message"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed result: {exc!r}") from None
    if r.status not in STATUSES or type(r.components) is not dict or type(r.message) is not str:
        raise ValueError(f"malformed result: {d!r}"[:300])
    return r


def validation_message(exc: ValidationError, *, limit: int = 3) -> str:
    """A short, one-line summary of a pydantic error: `items.3.accuracy_weight: ... ; ...`."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more errors)" if more > 0 else "")


# ----------------------------------------------------------------------------------------------
# JSON Schemas (generated, committed under schemas/).

_SCHEMA_BASE = "https://triune.dev/schemas/"


def request_json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _SCHEMA_BASE + "reward_request.schema.json",
        **ScoreRequest.model_json_schema(mode="validation"),
        "title": "triune reward request",
        "description": "A batch of reward items (the body of the reward service's score endpoint), scored in order.",
    }


def response_json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _SCHEMA_BASE + "reward_response.schema.json",
        **ScoreResponse.model_json_schema(mode="serialization"),
        "title": "triune reward response",
        "description": "The reward service's answer: one result per item, in the order of the items.",
    }
