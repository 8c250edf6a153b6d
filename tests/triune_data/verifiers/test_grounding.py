"""The `grounding` verifier: detection's reward with labels (referring expressions) ignored by default."""

import pytest

from triune_data.verifiers import ScoreItem, get_verifier, score
from triune_data.verifiers.grounding import GroundingParams, verify_grounding

# RefCOCO val, COCO_train2014_000000425721: "table with bananas", stored 640x427 (canonical pixels)
GT_TABLE = [{"label": "table with bananas", "bbox": [0.96, 108.52, 640.0, 423.03]}]
IMAGE = (640, 427)


def think_answer(body: str) -> str:
    return f"<think>\nThe table with the bananas fills the lower part.\n</think>\n<answer>\n{body}\n</answer>"


@pytest.mark.parametrize(
    ("completion", "params", "accuracy", "fmt"),
    [
        # the exact box under a paraphrased label: labels do not matter for grounding
        (think_answer('[{"bbox_2d": [0.96, 108.52, 640.0, 423.03], "label": "the banana table"}]'), {}, 1.0, 1.0),
        (think_answer('```json\n[\n\t{"bbox_2d": [0.96, 108.52, 640.0, 423.03]}\n]\n```'), {}, 1.0, 1.0),
        (think_answer("[0.96, 108.52, 640.0, 423.03]"), {}, 1.0, 1.0),
        # with labels matched the paraphrase scores nothing and unlabelled boxes are invalid
        (think_answer('[{"bbox_2d": [0.96, 108.52, 640.0, 423.03], "label": "the banana table"}]'),
         {"match_labels": True}, 0.0, 1.0),
        (think_answer("[0.96, 108.52, 640.0, 423.03]"), {"match_labels": True}, 0.0, 0.0),
        (think_answer('[{"bbox_2d": [0.96, 108.52, 640.0, 423.03], "label": "Table with bananas"}]'),
         {"match_labels": True}, 1.0, 1.0),
        # the real model answer (VLM-R1 baseline): IoU 0.87, correct at τ 0.85, wrong at 0.99
        (think_answer('```json\n[\n\t{"bbox_2d": [0, 134, 644, 415], "label": "table with bananas"}\n]\n```json'),
         {"iou_threshold": 0.85}, None, 1.0),
        (think_answer('```json\n[\n\t{"bbox_2d": [0, 134, 644, 415], "label": "table with bananas"}\n]\n```json'),
         {}, 0.0, 1.0),
        # two boxes for one referent: the size penalty applies as in detection
        (think_answer("[[0.96, 108.52, 640.0, 423.03], [0, 0, 10, 10]]"), {}, 0.6 * (0.7 + 0.3 * 0.75), 1.0),
    ],
)  # fmt: skip
def test_grounding_table(completion, params, accuracy, fmt):
    r = score(
        ScoreItem(
            verifier="grounding",
            completion=completion,
            ground_truth=GT_TABLE,
            params=params,
            image_size=IMAGE,
        )
    )
    assert r.status == "ok", r.message
    if accuracy is None:  # computed from the IoU of the two boxes
        gx1, gy1, gx2, gy2 = GT_TABLE[0]["bbox"]
        inter = (640.0 - 0.96) * (415 - 134)
        iou = inter / ((gx2 - gx1) * (gy2 - gy1) + 644 * 281 - inter)
        assert 0.85 < iou < 0.99
        accuracy = 0.7 * iou + 0.3
    assert r.accuracy == pytest.approx(accuracy, abs=1e-12) and r.format == fmt


def test_grounding_in_norm1000_frame_with_vlm_r1_style_no_answer_block():
    # Qwen2-VL answers in 0-1000; VLM-R1 prompts did not ask for an answer block
    completion = '```json\n[\n\t{"bbox_2d": [1.5, 254.1, 1000, 990.7], "label": "table"}\n]\n```'
    gt = [{"label": "table", "bbox": [0.96, 108.5007, 640.0, 423.02890000000005]}]
    params = {"coords": "norm1000", "answer_required": False}
    r = score(
        ScoreItem(
            verifier="grounding", completion=completion, ground_truth=gt, params=params, image_size=IMAGE
        )
    )
    assert r.status == "ok" and r.accuracy == pytest.approx(1.0, abs=1e-9) and r.format == 0.0


def test_ground_truth_string_without_labels():
    r = score(
        ScoreItem(
            verifier="grounding",
            completion=think_answer("[10, 10, 50, 50]"),
            ground_truth="[[10, 10, 50, 50]]",
            image_size=IMAGE,
        )
    )
    assert r.status == "ok" and r.accuracy == 1.0


def test_defaults_differ_from_detection_only_in_labels():
    g, d = GroundingParams(), get_verifier("detection").params()
    assert g.match_labels is False and d.match_labels is True
    assert g.model_dump(exclude={"match_labels"}) == d.model_dump(exclude={"match_labels"})


def test_registered_as_box_verifier():
    spec = get_verifier("grounding")
    assert spec.boxes and spec.params is GroundingParams and spec.fn is verify_grounding
