"""The JSON form of items and results: committed schemas match, both survive a JSON round trip."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import orjson
import pytest

from triune_data.types import Box
from triune_data.verifiers import RewardResult, ScoreItem
from triune_data.verifiers.common.wire import (
    coerce_item,
    item_from_wire,
    item_to_wire,
    request_json_schema,
    result_from_wire,
    result_to_wire,
)

SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"
THINK = "<think>\nThe sum is 4.\n</think>\n<answer>\n\\boxed{4}\n</answer>"


ROUND_TRIP = [
    ScoreItem(verifier="format", completion=THINK, ground_truth="4"),
    ScoreItem(
        verifier="detection",
        completion='<answer>\n[{"bbox_2d": [10, 20, 110, 220], "label": "dog"}]\n</answer>',
        ground_truth=[Box("dog", 10.5, 20.0, 110.0, 220.25), Box("cat", 0.0, 0.0, 5.0, 5.0)],
        params={"iou_schedule": "dynamic"},
        accuracy_weight=1.0,
        format_weight=0.1,
        step=37,
        total_steps=100,
        image_size=(640.0, 480.0),
        model_input_size=(644.0, 476.0),
        data_source="coco_det",
    ),
    ScoreItem(verifier="format", completion="", ground_truth="", params='{"format": {"mode": "boxed"}}'),
]


@pytest.mark.parametrize("item", ROUND_TRIP, ids=["string_gt", "boxes_and_sizes", "params_as_text"])
def test_item_round_trip(item: ScoreItem) -> None:
    wire = item_to_wire(item)
    back = item_from_wire(orjson.loads(orjson.dumps(wire)))
    assert back.verifier == item.verifier and back.completion == item.completion
    assert back.accuracy_weight == item.accuracy_weight and back.format_weight == item.format_weight
    assert (back.step, back.total_steps, back.data_source) == (item.step, item.total_steps, item.data_source)
    assert back.image_size == item.image_size and back.model_input_size == item.model_input_size
    params = json.loads(item.params) if isinstance(item.params, str) else (item.params or {})
    assert back.params == params
    if isinstance(item.ground_truth, str):
        assert back.ground_truth == item.ground_truth
    else:
        assert wire["ground_truth"] == [
            {"label": b.label, "bbox": [b.x1, b.y1, b.x2, b.y2]} for b in item.ground_truth
        ]
        assert back.ground_truth == item.ground_truth


def test_request_validates_against_committed_schema() -> None:
    body = {"items": [item_to_wire(i) | {"id": n} for n, i in enumerate(ROUND_TRIP)]}
    schema = json.loads((SCHEMAS / "reward_request.schema.json").read_text())
    jsonschema.validate(orjson.loads(orjson.dumps(body)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"items": [{"verifier": "format", "completion": "x"}]}, request_json_schema())


BASE = {"verifier": "format", "completion": "x", "ground_truth": ""}

INVALID = [
    ({**BASE, "accuracy_weight": -1}, "accuracy_weight"),
    ({**BASE, "format_weight": "heavy"}, "format_weight"),
    ({**BASE, "accuracy_weight": "1.5"}, "accuracy_weight"),
    ({**BASE, "step": True}, "step"),
    ({**BASE, "total_steps": 10.0}, "total_steps"),
    ({**BASE, "image_size": ["640", "480"]}, "image_size"),
    ({**BASE, "step": -3}, "step"),
    ({**BASE, "verifier_params": "{}"}, "verifier_params"),  # V-Triune's field name: a typo here
    ({**BASE, "image_size": [0, 480]}, "image_size"),
    ({**BASE, "image_size": [640]}, "image_size"),
    ({**BASE, "ground_truth": [{"label": "a", "bbox": [1, 2, 3]}]}, "ground_truth"),
    ({**BASE, "ground_truth": [{"label": "a", "bbox": [10**400, 0, 1, 1]}]}, "ground_truth"),
    ({**BASE, "ground_truth": [{"label": "a", "bbox": [True, 0, 1, 1]}]}, "ground_truth"),
    ({**BASE, "ground_truth": [{"label": "a", "bbox": [5, 0, 1, 1]}]}, "ground_truth"),  # x2 < x1
    ({**BASE, "ground_truth": [{"label": 3, "bbox": [0, 0, 1, 1]}]}, "ground_truth"),
    ({**BASE, "ground_truth": [{"label": "a", "bbox": [0, 0, 1, 1], "score": 1}]}, "ground_truth"),
    ({**BASE, "model_frame": "norm100"}, "model_frame"),
    ({**BASE, "ground_truth": 4}, "ground_truth"),
    ({**BASE, "completion": None}, "completion"),
    ({**BASE, "params": "[1, 2]"}, "params"),
    ({"verifier": "format", "ground_truth": ""}, "completion"),
    ({**BASE, "verifier": ""}, "verifier"),
    ([1, 2, 3], "valid dictionary"),
    ("not an object", "valid dictionary"),
]


@pytest.mark.parametrize(("obj", "names"), INVALID)
def test_invalid_items_name_the_field(obj: object, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        coerce_item(obj)  # type: ignore[arg-type]


def test_score_item_passes_through() -> None:
    assert coerce_item(ROUND_TRIP[0]) is ROUND_TRIP[0]


RESULTS = [
    RewardResult(reward=1.0, accuracy=1.0, format=1.0),
    RewardResult(
        reward=0.3, accuracy=0.25, format=1.0, components={"iou@0.5": 0.5, "precision": 1.0}, message="note"
    ),
    RewardResult.failed("timeout", "verifier exceeded the 10s timeout"),
    RewardResult(reward=0.0, accuracy=0.0, format=0.0, status="not_applicable", message="no gold boxes"),
]


@pytest.mark.parametrize("result", RESULTS)
def test_result_round_trip(result: RewardResult) -> None:
    assert result_from_wire(orjson.loads(orjson.dumps(result_to_wire(result)))) == result
    with_id = replace(result, id="sample-1")
    body = orjson.loads(orjson.dumps({"results": [result_to_wire(with_id)]}))
    assert body["results"][0]["id"] == "sample-1"
    assert result_from_wire(body["results"][0]) == with_id


@pytest.mark.parametrize(
    "bad",
    [
        {"reward": 1.0, "accuracy": 1.0, "format": 1.0, "status": "great"},
        {"reward": None, "accuracy": 1.0, "format": 1.0, "status": "ok"},
        {"accuracy": 1.0, "format": 1.0, "status": "ok"},
        {"reward": 1.0, "accuracy": 1.0, "format": 1.0, "status": "ok", "components": [1]},
        "ok",
    ],
)
def test_malformed_results_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="malformed"):
        result_from_wire(bad)  # type: ignore[arg-type]
