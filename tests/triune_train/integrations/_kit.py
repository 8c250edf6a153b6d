"""Helpers for the integration tests: right answers in a model's frame, a row's reward spec."""

import json

from triune_data.coords import from_canonical


def answer(spec, frame="pixel", model_input_size=None, jitter=0.0):
    """A well-formatted completion with the right answer, boxes written in `frame` (shifted by `jitter`
    of the box width to the right)."""
    if isinstance(spec["ground_truth"], str):
        return f"<think>\nsee\n</think>\n<answer>\n\\boxed{{{spec['ground_truth']}}}\n</answer>"
    boxes = [
        [
            b["bbox"][0] + jitter * (b["bbox"][2] - b["bbox"][0]),
            b["bbox"][1],
            b["bbox"][2] + jitter * (b["bbox"][2] - b["bbox"][0]),
            b["bbox"][3],
        ]
        for b in spec["ground_truth"]
    ]
    converted = from_canonical(boxes, frame, image_size=spec["image_size"], model_input_size=model_input_size)
    items = [
        {"bbox_2d": [round(float(v), 4) for v in box], "label": b["label"]}
        for box, b in zip(converted, spec["ground_truth"], strict=True)
    ]
    return f"<think>\nsee\n</think>\n<answer>\n{json.dumps(items)}\n</answer>"


def spec_of(row):
    return json.loads(row["extra_info"]["triune_reward"])
