"""`grounding`: referring-expression grounding scored like detection (V-Triune used one verifier, §2.3).

The label of a grounding box is the referring expression, which a model may paraphrase ("the man
on the far left" vs "leftmost man"), so labels are ignored by default (`match_labels=False`): the
boxes alone are matched. Everything else is `detection`'s reward: the same parser, matchers,
dynamic IoU threshold, completeness and size penalty (see `_boxes` and `detection`).
"""

from __future__ import annotations

from triune_data.verifiers.base import GroundTruth, Verdict, VerifyContext, register_verifier
from triune_data.verifiers.common.box_score import BoxParams, check_box_ground_truth, verify_boxes


class GroundingParams(BoxParams):
    """Grounding: boxes are matched by position only unless `match_labels` is set."""

    match_labels: bool = False
    """Also require the label (the referring expression) to match; off, since models paraphrase it."""


@register_verifier(
    "grounding",
    params=GroundingParams,
    boxes=True,
    tasks=("grounding",),
    check_ground_truth=check_box_ground_truth,
)
def verify_grounding(
    completion: str, ground_truth: GroundTruth, params: GroundingParams, ctx: VerifyContext
) -> Verdict:
    """Score the boxes in the completion's answer block against the referred object(s).

    >>> from triune_data.verifiers import ScoreItem, score
    >>> gt = [{"label": "man far left in orange", "bbox": [14.67, 133.56, 121.84, 469.68]}]
    >>> answer = '<answer>\\n[{"bbox_2d": [14.67, 133.56, 121.84, 469.68], "label": "left man"}]\\n</answer>'
    >>> score(ScoreItem(verifier="grounding", completion=answer, ground_truth=gt, image_size=(640, 480))).accuracy
    1.0
    """
    return verify_boxes(completion, ground_truth, params, ctx)
