"""`score`: whatever the item, one RewardResult and never an exception."""

import math

import pytest
from pydantic import BaseModel

from triune_data.types import TASKS
from triune_data.verifiers import ScoreItem, VerifierParams, register_verifier, score, verifier_names
from triune_data.verifiers.base import get_verifier

GT_BOXES = [{"label": "dog", "bbox": [100, 100, 300, 300]}]
DOG = '<think>\na dog\n</think>\n<answer>\n[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]\n</answer>'


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (ScoreItem("nope", "x", "3"), "unknown verifier"),
        (ScoreItem("math", r"\boxed{3}", "3", accuracy_weight=float("nan")), "accuracy_weight"),
        (ScoreItem("math", r"\boxed{3}", "3", format_weight=-1.0), "format_weight"),
        (ScoreItem("math", r"\boxed{3}", "3", accuracy_weight="1"), "accuracy_weight"),  # type: ignore[arg-type]
        (ScoreItem("detection", DOG, GT_BOXES, image_size=(10**400, 480)), "too large"),
        (ScoreItem("detection", DOG, GT_BOXES, image_size=(float("nan"), 480)), "invalid size"),
        (
            ScoreItem("detection", DOG, GT_BOXES, model_input_size=(0, 480), image_size=(640, 480)),
            "invalid size",
        ),
        (ScoreItem("math", r"\boxed{3}", 3), "string ground truth"),  # type: ignore[arg-type]
        (ScoreItem("math", r"\boxed{3}", "3", params="{not json"), "params"),
        (ScoreItem("math", r"\boxed{3}", "3", params={"bogus": 1}), "bogus"),
        (ScoreItem("detection", DOG, [{"label": "dog", "bbox": [1, 2]}]), "box ground truth"),
    ],
)
def test_bad_items_are_errors_with_a_reason(item, fragment):
    result = score(item)
    assert result.status == "error" and result.reward == 0.0
    assert fragment in result.message and "\n" not in result.message


def test_a_good_item_scores():
    result = score(
        ScoreItem("detection", DOG, GT_BOXES, accuracy_weight=1.0, format_weight=0.1, image_size=(640, 480))
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
