"""Shared export pieces: the 0-1000 box ground truth, against hand-computed values."""

import json

import pytest

from triune_data.export.common import box_ground_truth, extra_info
from triune_data.types import Box, Image, ImageSize, Message, Provenance, RewardSpec, Sample


def sample(boxes, size=(640, 480)):
    return Sample(
        "s/1",
        "s",
        "detection",
        "perception",
        "train",
        [Image(b"x", "a.png"), Image(b"y", None)],
        [ImageSize(*size), ImageSize(10, 20)],
        [Message("user", "<image><image>find")],
        "",
        "",
        boxes,
        RewardSpec("detection", '{"coords":"pixel"}', 1.0, 0.1),
        2.0,
        None,
        Provenance("x", "1"),
    )


@pytest.mark.parametrize(
    "box, size, numbers, expected",
    [
        # 0-1000: x * 1000 / width, y * 1000 / height
        (Box("a", 0, 0, 640, 480), (640, 480), "float", "[0.0, 0.0, 1000.0, 1000.0]"),
        (Box("a", 64, 48, 320, 240), (640, 480), "int", "[100, 100, 500, 500]"),
        (Box("a", 1, 1, 2, 2), (3, 3), "float", "[333.333, 333.333, 666.667, 666.667]"),
        (Box("a", 1, 1, 2, 2), (3, 3), "int", "[333, 333, 667, 667]"),
        (Box("it's", 0.0004, 0, 1, 1), (1, 1), "float", "[0.4, 0.0, 1000.0, 1000.0]"),
    ],
)
def test_box_ground_truth(box, size, numbers, expected):
    gt = box_ground_truth(sample([box], size), numbers)
    assert gt == f"<answer>\n[{{'bbox_2d': {expected}, 'label': {box.label!r}}}]\n</answer>"


def test_extra_info_of_a_two_image_sample():
    info = extra_info(sample([Box("a", 1, 2, 3, 4)]), 7)
    assert (info.index, info.id, info.split, info.image_path) == (7, "s/1", "train", "a.png")
    assert info.image_size == [[640, 480], [10, 20]] and info.sample_weight == 2.0
    spec = json.loads(info.triune_reward)
    assert spec == {
        "verifier": "detection",
        "ground_truth": [{"label": "a", "bbox": [1.0, 2.0, 3.0, 4.0]}],
        "params": {"coords": "pixel"},
        "format_weight": 0.1,
        "image_size": [640.0, 480.0],
        "data_source": "s",
        "id": "s/1",
        "split": "train",
    }
