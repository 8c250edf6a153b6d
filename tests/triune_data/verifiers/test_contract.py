"""The verifier contract, checked for every registered verifier.

Model output is untrusted: whatever the completion (garbage, empty, huge, nested past any parser's
patience), `score()` returns a result and never raises, with reward, accuracy and format in [0, 1];
with ground truth its verifier cannot read, the result is `error` (a data bug to count and mask),
never a score. A new verifier needs an entry in `EXAMPLES`, or the first test fails.
"""

from __future__ import annotations

import math
import random

import pytest

from triune_data.types import Box
from triune_data.verifiers import ScoreItem, score, verifier_names
from triune_data.verifiers.base import MAX_COMPLETION_CHARS, STATUSES, get_verifier

GT_BOXES = [Box("dog", 100.0, 100.0, 300.0, 300.0), Box("cat", 320.0, 40.0, 600.0, 400.0)]
BOX_ANSWER = (
    '<think>\ntwo animals\n</think>\n<answer>\n[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}, '
    '{"bbox_2d": [320, 40, 600, 400], "label": "cat"}]\n</answer>'
)
THINK = "<think>\nworking\n</think>\n<answer>\n{}\n</answer>"

# verifier -> (ground truth, params, a completion it scores 1, ground truth it cannot read or None)
EXAMPLES: dict[str, tuple[object, dict, str, object]] = {
    "math": ("\\frac{3}{4}", {}, THINK.format("\\boxed{0.75}"), "\\frac{"),
    "detection": (GT_BOXES, {"iou_threshold": 0.5}, BOX_ANSWER, "not boxes"),
    "grounding": (GT_BOXES, {"iou_threshold": 0.5}, BOX_ANSWER, "no boxes here"),
    "counting": ("3", {}, THINK.format("3"), "many"),
    "ocr": ("STOP", {}, THINK.format("stop"), "**"),
    "mcq": ("B", {"options": ["red", "blue", "green"]}, THINK.format("B"), "purple"),
    "format": ("", {}, THINK.format("x"), None),  # reads no ground truth
}
# what each verifier reports it read from its example completion
PREDICTIONS = {
    "math": "0.75",
    "detection": [
        {"label": "dog", "bbox": [100.0, 100.0, 300.0, 300.0]},
        {"label": "cat", "bbox": [320.0, 40.0, 600.0, 400.0]},
    ],
    "grounding": [
        {"label": "dog", "bbox": [100.0, 100.0, 300.0, 300.0]},
        {"label": "cat", "bbox": [320.0, 40.0, 600.0, 400.0]},
    ],
    "counting": "3",
    "ocr": "stop",
    "mcq": "B",
    "format": "\nx\n",
}


def _garbage(seed: int, n: int) -> str:
    rng = random.Random(seed)
    alphabet = (
        "<>/{}[]()\\\"',:;$^_*#!?0123456789.-+eE answerthinkboxed\n\t\u00b2\u00b0\u221a\u4e2a\ud800\x00"
    )
    return "".join(rng.choice(alphabet) for _ in range(n))


COMPLETIONS = {
    "empty": "",
    "garbage": _garbage(0, 2_000),
    "garbage_in_tags": THINK.format(_garbage(1, 2_000)),
    "at_the_size_limit": "7" * MAX_COMPLETION_CHARS,
    "over_the_size_limit": "7" * (MAX_COMPLETION_CHARS + 1),
    "huge_answer_block": "<answer>" + "[1, 2, 3, 4], " * 4_000 + "</answer>",
    "nested_brackets": "[" * 20_000 + "]" * 20_000,
    "nested_braces_in_answer": "<answer>\n" + "{" * 10_000 + "\n</answer>",
    "nested_boxed": "\\boxed{" * 3_000 + "1" + "}" * 3_000,
    "nested_json_objects": '<answer>[{"bbox_2d": ' + '{"a": ' * 5_000 + "1" + "}" * 5_000 + "}]</answer>",
    "many_open_tags": "<answer>" * 10_000,
    "unicode_digits": THINK.format("\\boxed{\u0663\u0664}"),
}


def builtin() -> list[str]:
    return sorted({get_verifier(n).name for n in verifier_names(builtin=True)})


def item(name: str, completion: object, *, ground_truth: object = None) -> ScoreItem:
    gt, params, _, _ = EXAMPLES[name]
    return ScoreItem(
        verifier=name,
        completion=completion,  # type: ignore[arg-type]
        ground_truth=gt if ground_truth is None else ground_truth,  # type: ignore[arg-type]
        params=params,
        accuracy_weight=1.0,
        format_weight=0.5,
        image_size=(640.0, 480.0),
    )


def in_unit_interval(result) -> bool:
    values = (result.reward, result.accuracy, result.format)
    return all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)


def test_every_verifier_has_an_example():
    assert sorted(EXAMPLES) == builtin()


@pytest.mark.parametrize("name", builtin())
def test_the_example_scores_one_and_says_what_it_read(name):
    result = score(item(name, EXAMPLES[name][2]))
    assert (result.status, result.accuracy) == ("ok", 1.0), result.message
    assert result.prediction == PREDICTIONS[name]


@pytest.mark.parametrize("name", builtin())
def test_nothing_read_is_no_prediction(name):
    assert score(item(name, "")).prediction is None


@pytest.mark.parametrize("kind", sorted(COMPLETIONS))
@pytest.mark.parametrize("name", builtin())
def test_any_completion_gives_a_result_in_the_unit_interval(name, kind):
    result = score(item(name, COMPLETIONS[kind]))
    assert result.status in STATUSES
    assert in_unit_interval(result), result
    assert result.status != "error", f"{name} on {kind}: {result.message}"  # the ground truth is fine


@pytest.mark.parametrize("name", builtin())
def test_unreadable_ground_truth_is_an_error(name):
    _, _, right, bad = EXAMPLES[name]
    box_verifier = get_verifier(name).boxes
    wrong_kind = "just text" if box_verifier else GT_BOXES  # boxes for a text verifier, and the reverse
    cases = [wrong_kind] if bad is None else [wrong_kind, bad]
    if box_verifier:
        cases.append([Box("dog", 300.0, 100.0, 100.0, 300.0)])  # x2 < x1
    for case in cases:
        for completion in ("", right):
            result = score(item(name, completion, ground_truth=case))
            assert result.status == "error", (name, case, completion, result)
            assert result.reward == 0.0 and in_unit_interval(result) and result.message


def _draft_for(name: str, ground_truth: object):
    """A draft whose ground truth is `ground_truth` for verifier `name` (boxes: a detection draft)."""
    import io

    from PIL import Image

    from triune_data.sources.base import Draft, DraftBox, ImageBytes
    from triune_data.types import Message

    buf = io.BytesIO()
    Image.new("RGB", (640, 480)).save(buf, "PNG")
    boxes = isinstance(ground_truth, list)
    task = "detection" if boxes else "counting" if get_verifier(name).boxes else get_verifier(name).tasks[0]
    return Draft(
        id="d1",
        task=task,
        prompt=[Message("user", "<image>What is it?")],
        answer="",
        ground_truth="" if boxes else ground_truth,  # type: ignore[arg-type]
        images=[ImageBytes(buf.getvalue(), "d1.png")],
        original_id="d1",
        boxes=[DraftBox(b.label, b.x1, b.y1, b.x2, b.y2) for b in ground_truth] if boxes else [],  # type: ignore[union-attr]
    )


def _materialize(name: str, ground_truth: object):
    from triune_data.materialize import MaterializeOptions, SourceRun, materialize

    params = tuple(sorted(EXAMPLES[name][1].items()))
    run = SourceRun(adapter="test", data_source="src", split="train", verifier=name, params=params)
    return materialize(_draft_for(name, ground_truth), run, MaterializeOptions())


@pytest.mark.parametrize("name", builtin())
def test_readable_ground_truth_is_kept_at_build(name):
    from triune_data.types import Sample

    assert isinstance(_materialize(name, EXAMPLES[name][0] or "anything"), Sample)


@pytest.mark.parametrize("name", builtin())
def test_known_bad_ground_truth_is_a_build_reject_and_a_scoring_error(name):
    from triune_data.sources.base import Reject

    _, _, right, bad = EXAMPLES[name]
    if bad is None:  # `format` reads no ground truth: nothing is bad, nothing is checked
        assert get_verifier(name).check_ground_truth is None
        return
    assert get_verifier(name).check_ground_truth is not None, f"{name} registers no ground-truth check"
    box_verifier = get_verifier(name).boxes
    # boxes for a verifier of text, a text answer for a verifier of boxes, and the verifier's own bad case
    cases = ["3" if box_verifier else GT_BOXES, *([] if box_verifier else [bad])]
    for case in cases:
        out = _materialize(name, case)
        assert isinstance(out, Reject) and out.reason == "invalid_ground_truth", (name, case, out)
        assert out.detail
    for case in [bad, "3" if box_verifier else GT_BOXES]:
        result = score(item(name, right, ground_truth=case))
        assert result.status == "error" and result.message, (name, case, result)
