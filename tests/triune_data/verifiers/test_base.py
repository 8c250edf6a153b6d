"""`score`: whatever the item, one RewardResult and never an exception."""

import math

import pytest
from pydantic import BaseModel

from triune_data.types import TASKS, Box, Image, ImageSize, Message, Provenance, RewardSpec, Sample
from triune_data.verifiers import (
    ScoreItem,
    VerifierParams,
    register_verifier,
    score,
    score_item_for,
    verifier_names,
)
from triune_data.verifiers.base import get_verifier

GT_BOXES = [{"label": "dog", "bbox": [100, 100, 300, 300]}]
DOG = '<think>\na dog\n</think>\n<answer>\n[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]\n</answer>'


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (ScoreItem(verifier="nope", completion="x", ground_truth="3"), "unknown verifier"),
        (
            ScoreItem(
                verifier="math", completion=r"\boxed{3}", ground_truth="3", accuracy_weight=float("nan")
            ),
            "accuracy_weight",
        ),
        (
            ScoreItem(verifier="math", completion=r"\boxed{3}", ground_truth="3", format_weight=-1.0),
            "format_weight",
        ),
        (
            ScoreItem(verifier="math", completion=r"\boxed{3}", ground_truth="3", accuracy_weight="1"),
            "accuracy_weight",
        ),  # type: ignore[arg-type]
        (
            ScoreItem(verifier="detection", completion=DOG, ground_truth=GT_BOXES, image_size=(10**400, 480)),
            "image_size.0",
        ),
        (
            ScoreItem(
                verifier="detection", completion=DOG, ground_truth=GT_BOXES, image_size=(float("nan"), 480)
            ),
            "image_size.0: Input should be a finite number",
        ),
        (
            ScoreItem(
                verifier="detection",
                completion=DOG,
                ground_truth=GT_BOXES,
                model_input_size=(0, 480),
                image_size=(640, 480),
            ),
            "model_input_size.0: Input should be greater than 0",
        ),
        (ScoreItem(verifier="math", completion=r"\boxed{3}", ground_truth=3), "a string or a list of boxes"),  # type: ignore[arg-type]
        (ScoreItem(verifier="math", completion=r"\boxed{3}", ground_truth="3", params="{not json"), "params"),
        (ScoreItem(verifier="math", completion=r"\boxed{3}", ground_truth="3", params={"bogus": 1}), "bogus"),
        (
            ScoreItem(verifier="detection", completion=DOG, ground_truth=[{"label": "dog", "bbox": [1, 2]}]),
            "box ground truth",
        ),
    ],
)
def test_bad_items_are_errors_with_a_reason(item, fragment):
    result = score(item)
    assert result.status == "error" and result.reward == 0.0
    assert fragment in result.message and "\n" not in result.message


def test_a_good_item_scores():
    result = score(
        ScoreItem(
            verifier="detection",
            completion=DOG,
            ground_truth=GT_BOXES,
            accuracy_weight=1.0,
            format_weight=0.1,
            image_size=(640, 480),
        )
    )
    assert result.status == "ok" and math.isclose(result.reward, 1.0)


class GoodParams(VerifierParams):
    pass


class NotParams(BaseModel):
    pass


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"params": NotParams}, TypeError, "VerifierParams subclass"),
        ({"params": dict}, TypeError, "VerifierParams subclass"),
        ({"params": GoodParams, "tasks": ("maths",)}, ValueError, "tasks must be among"),
        ({"params": GoodParams, "tasks": ()}, ValueError, "tasks must be among"),
        ({"params": GoodParams, "boxes": True, "tasks": ("math",)}, ValueError, "box verifier serves only"),
    ],
)
def test_registration_checks_what_it_is_given(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        register_verifier("_test_never_registered", **kwargs)(lambda *a: None)
    assert "_test_never_registered" not in verifier_names()


def test_registration_refuses_a_taken_name_and_records_tasks():
    with pytest.raises(ValueError, match="already registered"):
        register_verifier("mathverify", params=GoodParams)(lambda *a: None)
    assert get_verifier("counting").tasks == ("counting",)
    assert get_verifier("detection").tasks == ("detection", "grounding")
    assert get_verifier("format").tasks == TASKS


def stored(verifier: str, *, boxes: list[Box] | None = None, params: str = "{}") -> Sample:
    return Sample(
        id="src/7",
        data_source="src",
        task="detection" if boxes else "counting",
        category="perception",
        split="train",
        images=[Image(bytes=None, path="a.png"), Image(bytes=None, path="b.png")],
        image_sizes=[ImageSize(width=640, height=480), ImageSize(width=10, height=10)],
        prompt=[Message(role="user", content="<image><image>How many?")],
        answer="3",
        ground_truth="3",
        boxes=boxes or [],
        reward=RewardSpec(verifier=verifier, verifier_params=params, accuracy_weight=1.0, format_weight=0.5),
        sample_weight=1.0,
        difficulty=None,
        provenance=Provenance(source="test", original_id="7"),
    )


def test_score_item_for_a_text_sample():
    item = score_item_for(
        stored("counting", params='{"tolerance": 1}'), "<answer>4</answer>", step=3, total_steps=9
    )
    assert (item.verifier, item.ground_truth, item.params, item.id, item.data_source) == (
        "counting",
        "3",
        '{"tolerance": 1}',
        "src/7",
        "src",
    )
    assert (item.accuracy_weight, item.format_weight, item.step, item.total_steps) == (1.0, 0.5, 3, 9)
    assert item.image_size == (640.0, 480.0)  # the first image's
    result = score(item)
    assert (result.status, result.accuracy, result.prediction, result.id) == ("ok", 1.0, "4", "src/7")


def test_score_item_for_a_box_sample_reads_the_model_frame():
    boxes = [Box("dog", 64.0, 48.0, 320.0, 240.0)]
    answer = '<answer>[{"bbox_2d": [100, 100, 500, 500], "label": "dog"}]</answer>'  # 0-1000 of 640x480
    item = score_item_for(stored("detection", boxes=boxes), answer, model_frame="norm1000")
    assert item.ground_truth == boxes and item.model_frame == "norm1000"
    result = score(item)
    assert result.accuracy == 1.0
    assert result.prediction == [{"label": "dog", "bbox": [64.0, 48.0, 320.0, 240.0]}]  # canonical frame
    # without the frame, the params' `coords` (pixel) reads the same numbers as pixels
    assert score(score_item_for(stored("detection", boxes=boxes), answer)).accuracy == 0.0


def test_score_item_for_never_raises_on_a_broken_sample():
    assert score(score_item_for(stored("no_such"), "3")).message.startswith("unknown verifier")
    assert "not JSON" in score(score_item_for(stored("counting", params="{oops"), "3")).message


@pytest.mark.parametrize("completion", [None, b"3", ["3"], 3])
def test_a_completion_that_is_not_text_is_an_error(completion):
    result = score(ScoreItem(verifier="counting", completion=completion, ground_truth="3"))  # type: ignore[arg-type]
    assert (result.status, result.reward) == ("error", 0.0)
    assert result.message == "invalid item: completion: Input should be a valid string"


def test_a_text_verifier_given_boxes_is_an_error():
    result = score(ScoreItem(verifier="counting", completion="3", ground_truth=GT_BOXES))  # type: ignore[arg-type]
    assert result.status == "error" and "counting needs a string ground truth" in result.message


def test_params_as_stored_text_or_any_mapping_are_what_a_client_would_send():
    from types import MappingProxyType

    from triune_data.verifiers.base import check_item

    for params in ('{"tolerance": 1}', MappingProxyType({"tolerance": 1}), {"tolerance": 1}):
        item = ScoreItem(
            verifier="counting", completion="<answer>4</answer>", ground_truth="3", params=params
        )
        assert score(item).accuracy == 1.0
    assert (
        check_item(ScoreItem(verifier="counting", completion="", ground_truth="3", params='{"a": 1}')).params
        == '{"a": 1}'
    )
    assert (
        "params is not JSON"
        in score(ScoreItem(verifier="counting", completion="", ground_truth="3", params="{")).message
    )
    assert (
        "params"
        in score(ScoreItem(verifier="counting", completion="", ground_truth="3", params="[1]")).message
    )
