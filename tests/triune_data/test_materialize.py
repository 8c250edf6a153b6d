import io
import json

import pytest
from PIL import Image

from triune_data.errors import RecipeError
from triune_data.materialize import MaterializeOptions, SourceRun, boxes_answer, materialize
from triune_data.sources.base import Draft, DraftBox, ImageBytes, ImageFile, Reject
from triune_data.types import Message, Sample


def jpeg(w=200, h=100) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((w, h), 40).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


JPEG = jpeg()
RUN = SourceRun(adapter="test", data_source="src", split="train", verifier="format")
OPTS = MaterializeOptions()


def draft(**kw) -> Draft:
    base = dict(
        id="a1",
        task="counting",
        prompt=[Message("user", "<image>How many dogs?")],
        answer="3",
        ground_truth="3",
        images=[ImageBytes(JPEG, "a1.jpg")],
        original_id="a1",
    )
    base.update(kw)
    return Draft(**base)


def box_draft(boxes, frame="pixel", **kw) -> Draft:
    return draft(task="detection", answer="", ground_truth="", boxes=boxes, box_frame=frame, **kw)


def test_valid_draft_becomes_a_sample():
    s = materialize(draft(), RUN, OPTS)
    assert isinstance(s, Sample)
    assert s.id == "src/a1" and s.category == "perception" and s.split == "train"
    assert s.images[0].bytes is JPEG  # passed through, never re-encoded
    assert (s.image_sizes[0].width, s.image_sizes[0].height) == (200, 100)
    assert (s.reward.accuracy_weight, s.reward.format_weight) == (1.0, 0.0)  # counting defaults
    assert s.provenance.source == "test"


def test_norm1000_boxes_become_float_pixels_of_the_stored_image():
    s = materialize(box_draft([DraftBox("dog", 100, 250, 555, 1000)], frame="norm1000"), RUN, OPTS)
    b = s.boxes[0]
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((20.0, 25.0, 111.0, 100.0))
    assert json.loads(s.ground_truth) == [{"bbox_2d": [20, 25, 111, 100], "label": "dog"}]
    assert (s.reward.accuracy_weight, s.reward.format_weight) == (1.0, 0.1)  # detection defaults


def test_small_overshoot_is_clipped():
    s = materialize(box_draft([DraftBox("dog", -1.5, 0, 201.0, 100.5)]), RUN, OPTS)
    assert (s.boxes[0].x1, s.boxes[0].x2, s.boxes[0].y2) == (0.0, 200.0, 100.0)


@pytest.mark.parametrize(
    "d, reason",
    [
        (box_draft([DraftBox("dog", 10, 10, 5, 50)]), "invalid_box"),  # negative width
        (box_draft([DraftBox("dog", 10, 10, 10, 50)]), "invalid_box"),  # zero width
        (box_draft([DraftBox("dog", float("nan"), 10, 20, 50)]), "invalid_box"),
        (box_draft([DraftBox("dog", 10, 10, 250, 50)]), "box_outside_image"),
        (box_draft([DraftBox("", 10, 10, 20, 50)]), "invalid_box"),
        (box_draft([]), "missing_answer"),
        (draft(ground_truth="  "), "missing_answer"),
        (draft(prompt=[Message("user", "How many dogs?")]), "image_placeholder_mismatch"),
        (draft(prompt=[Message("user", "<image><image>How many?")]), "image_placeholder_mismatch"),
        (draft(images=[]), "no_image"),
        (draft(images=[ImageFile("/nonexistent/x.jpg", "x.jpg")]), "missing_image_file"),
        (draft(images=[ImageBytes(JPEG[: len(JPEG) // 2], "x.jpg")]), "truncated_image"),
        (draft(images=[ImageBytes(b"GIF89a-but-not-really", "x.gif")]), "unknown_image_format"),
        (draft(answer="\udc80bad surrogate"), "invalid_text_encoding"),
        (draft(task="astrology"), "unknown_task"),
    ],
)
def test_bad_drafts_are_rejected_with_a_reason(d, reason):
    out = materialize(d, RUN, OPTS)
    assert isinstance(out, Reject), out
    assert out.reason == reason
    assert out.detail


def test_invalid_adapter_params_reject_the_row():
    run = SourceRun(adapter="test", data_source="src", split="train", verifier="format")
    out = materialize(draft(verifier_params={"format": {"mode": "sideways"}}), run, OPTS)
    assert isinstance(out, Reject) and out.reason == "invalid_verifier_params"


def test_invalid_recipe_params_stop_the_build():
    run = SourceRun(
        adapter="test",
        data_source="src",
        split="train",
        verifier="format",
        params=(("nope", 1),),
        entry_index=3,
    )
    with pytest.raises(RecipeError, match=r"sources\[3\]\.reward\.params"):
        materialize(draft(), run, OPTS)


def test_recipe_weights_override_task_defaults():
    run = SourceRun(
        adapter="t", data_source="s", split="train", verifier="format", accuracy_weight=0.5, format_weight=0.5
    )
    s = materialize(draft(), run, OPTS)
    assert (s.reward.accuracy_weight, s.reward.format_weight) == (0.5, 0.5)


def test_boxes_answer_is_qwen_style():
    from triune_data.types import Box

    text = boxes_answer([Box("cat", 1.0, 2.5, 30.0, 40.125)])
    assert json.loads(text) == [{"bbox_2d": [1, 2.5, 30, 40.12], "label": "cat"}]


@pytest.mark.parametrize("bad", [DraftBox("cat", float("nan"), 10, 20, 50), DraftBox("cat", 10, 10, 250, 50)])
def test_one_bad_box_rejects_the_sample_never_a_subset_of_its_boxes(bad):
    out = materialize(box_draft([DraftBox("dog", 10, 10, 20, 50), bad]), RUN, OPTS)
    assert isinstance(out, Reject) and out.reason in ("invalid_box", "box_outside_image")


@pytest.mark.parametrize(
    ("verifier", "ground_truth", "full", "kept"),
    [
        ("math", "\\frac{3}{4}", False, True),
        ("math", "\\frac{", False, False),  # unbalanced: refused by the cheap check
        ("math", "?", False, True),  # only math-verify knows it cannot read this ...
        ("math", "?", True, False),  # ... so the full check (`check_ground_truth: full`) refuses it
        ("math", "\\frac{3}{4}", True, True),
        ("counting", "many", False, False),
        ("counting", "03", False, True),
        ("ocr", "**", False, False),
    ],
)
def test_ground_truth_the_verifier_cannot_read_is_rejected(verifier, ground_truth, full, kept):
    run = SourceRun(adapter="test", data_source="src", split="train", verifier=verifier)
    out = materialize(draft(ground_truth=ground_truth), run, MaterializeOptions(full_ground_truth_check=full))
    assert isinstance(out, Sample) == kept, out
    if not kept:
        assert out.reason == "invalid_ground_truth" and verifier in out.detail
