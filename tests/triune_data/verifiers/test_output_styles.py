"""The README's table "Verifier parameters for your model's output style", checked row by row."""

import pytest

from triune_data.types import Box
from triune_data.verifiers import ScoreItem, score

VTRIUNE = "<think>\nadd them\n</think>\n<answer>\n\\boxed{4}\n</answer>"
R1V = "<think>add them</think><answer>4</answer>"
PLAIN = "The answer is **4**."

# style -> (completion, {verifier: params}, format rule, the format score that rule gives)
STYLES = {
    "v-triune": (VTRIUNE, {"math": {}, "counting": {}, "mcq": {}, "ocr": {}}, {}, 1.0),
    "r1-v": (
        R1V,
        {"math": {"answer_block": True}, "counting": {}, "mcq": {}, "ocr": {}},
        {"strict_newlines": False},
        1.0,
    ),
    "plain": (PLAIN, {"math": {"plain_expressions": True}, "counting": {}, "mcq": {}}, {"mode": "none"}, 0.0),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_output_style_scores_with_the_readme_params(style):
    completion, verifiers, format_rule, format_score = STYLES[style]
    for verifier, params in verifiers.items():
        params = {**params, "format": format_rule}
        if verifier == "mcq":
            params["options"] = ["3", "4"]
        result = score(ScoreItem(verifier=verifier, completion=completion, ground_truth="4", params=params))
        assert (result.status, result.accuracy, result.format) == ("ok", 1.0, format_score), (
            verifier,
            result,
        )


def test_the_defaults_miss_the_other_styles():
    """Why the table exists: with V-Triune's defaults, math reads neither R1-V tags nor plain text."""
    for completion in (R1V, PLAIN):
        assert score(ScoreItem(verifier="math", completion=completion, ground_truth="4")).accuracy == 0.0


def test_qwen25vl_boxes_need_the_model_input_size():
    """Qwen2.5-VL answers in pixels of its resized input: a 640x480 image it was fed at 1280x960."""
    answer = '<answer>\n[{"bbox_2d": [200, 200, 600, 600], "label": "dog"}]\n</answer>'
    gt = [Box("dog", 100.0, 100.0, 300.0, 300.0)]  # the stored image's pixels
    item = dict(verifier="detection", completion=answer, ground_truth=gt, image_size=(640.0, 480.0))
    assert score(ScoreItem(**item)).accuracy == 0.0  # read as pixels of the stored image: misplaced
    assert score(ScoreItem(**item, model_input_size=(1280.0, 960.0))).accuracy == 1.0
