"""`detection`: V-Triune's detection reward (paper §3.4; docs/vtriune.md §5), with the dynamic IoU threshold.

accuracy = Σ_k w_k·term_k / Σ_k w_k over the terms of `BoxWeights`, where the IoU term is
``size_penalty · ((1 − c)·mean_iou + c·completeness)`` at the threshold τ of the training progress
(0.85 up to 10 % of the steps, 0.95 up to 25 %, then 0.99; 0.99 at evaluation) and the mAP terms
are per-sample COCO AP times the size penalty. With G ground-truth boxes, P predictions and M
matched pairs: mean_iou = Σ IoU / G, completeness = 1 − (miss + false_alarm) / 2 with
miss = (G − M) / G and false_alarm = (P − M) / P (1 when P = 0). Format is binary: the answer block
is well formed and holds at least one valid box. The machinery lives in `_boxes`.

Components (always all present): ``tau``, ``mean_iou`` and ``completeness`` (under `matcher`),
``size_penalty``, ``iou`` (the IoU term that enters the accuracy), ``iou_label_first`` and
``iou_iou_first`` (the IoU term under those matchers), ``map``/``map50``/``map75`` (per-sample COCO
AP, without the size penalty), ``precision{50,75,95,99}``/``recall{50,75,95,99}`` (label-first
matching at those IoUs; precision 0 when nothing is predicted), ``num_pred``, ``num_gt``.

Deliberate deviations from the released code:

- boxes are converted to the stored image's pixels in float (V-Triune truncated them to integers);
- the iou-first matcher credits the pair it matched (V-Triune credited the wrong pair);
- an image without objects of the asked class can be scored: the answer ``[]`` is right (accuracy
  1, format 1, all components 1), any box or no answer is wrong (0);
- a prediction without a label is invalid here as there (labels are matched), but boxes in code
  fences, with trailing commas or escaped quotes parse (V-Triune's `json.loads` lost them);
- unusable ground truth is an `error` verdict, not a silent 0; answers past the parser's limits
  (`max_boxes`, nesting, length) score 0.
"""

from __future__ import annotations

from triune_data.verifiers.base import GroundTruth, Verdict, VerifyContext, register_verifier
from triune_data.verifiers.common.box_score import BoxParams, check_box_ground_truth, verify_boxes


class DetectionParams(BoxParams):
    """Detection: a predicted box counts only with the label of the ground-truth box it matches."""

    match_labels: bool = True
    """A prediction counts only with the label of its ground-truth box (case-insensitive)."""


@register_verifier(
    "detection",
    params=DetectionParams,
    boxes=True,
    tasks=("detection", "grounding"),
    check_ground_truth=check_box_ground_truth,
)
def verify_detection(
    completion: str, ground_truth: GroundTruth, params: DetectionParams, ctx: VerifyContext
) -> Verdict:
    """Score the boxes in the completion's answer block against the ground-truth boxes.

    >>> from triune_data.verifiers import ScoreItem, score
    >>> gt = [{"label": "dog", "bbox": [100, 100, 300, 300]}]
    >>> answer = '<answer>\\n[{"bbox_2d": [100, 100, 300, 300], "label": "Dog"}]\\n</answer>'
    >>> score(ScoreItem(verifier="detection", completion=answer, ground_truth=gt, image_size=(640, 480))).accuracy
    1.0
    """
    return verify_boxes(completion, ground_truth, params, ctx)
