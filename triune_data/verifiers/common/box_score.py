"""Scoring box answers (paper §3.4; docs/vtriune.md §5): the params and the verifier body of `detection`
and `grounding`, on top of `box_parse` and `box_match`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Literal, TypeAlias

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from triune_data.coords import Frame, to_canonical
from triune_data.errors import VerifierError
from triune_data.types import Box
from triune_data.verifiers.base import GroundTruth, Verdict, VerifierParams, VerifyContext
from triune_data.verifiers.common.box_match import (
    Match,
    match_hungarian,
    match_iou_first,
    match_label_first,
    overlaps,
)
from triune_data.verifiers.common.box_parse import ParsedBoxes, as_box, normalize_label, parse_boxes
from triune_data.verifiers.common.coco_map import coco_ap
from triune_data.verifiers.common.extract import answer_block
from triune_data.verifiers.format import FormatSpec, format_score

Matcher: TypeAlias = Literal["label_first", "iou_first", "hungarian"]


class BoxWeights(VerifierParams):
    """Weights of the accuracy terms; V-Triune's `det_reward_ratio` maps onto them one to one
    (iou_max_label_first -> iou with matcher label_first, iou_max_iou_first -> iou_first)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    iou: float = Field(1.0, ge=0)
    """Weighted IoU under `matcher`, times the size penalty."""
    iou_first: float = Field(0.0, ge=0)
    """Weighted IoU under the iou-first matcher, times the size penalty."""
    map: float = Field(0.0, ge=0)
    """Per-sample COCO AP@[.5:.95], times the size penalty."""
    map50: float = Field(0.0, ge=0)
    """Per-sample COCO AP@.50, times the size penalty."""
    map75: float = Field(0.0, ge=0)
    """Per-sample COCO AP@.75, times the size penalty."""

    @model_validator(mode="after")
    def _some_weight(self) -> BoxWeights:
        if self.iou + self.iou_first + self.map + self.map50 + self.map75 <= 0:
            raise ValueError("at least one accuracy weight must be positive")
        return self


Schedule: TypeAlias = tuple[tuple[float, float], ...]


class BoxParams(VerifierParams):
    """Parameters shared by `detection` and `grounding`; the defaults are V-Triune's released reward."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    coords: Frame = "pixel"
    """Frame of the COMPLETION's boxes (`triune_data.coords`) when the item names no `model_frame`;
    ground truth is canonical."""
    iou_threshold: Annotated[float, Field(gt=0, le=1)] | Literal["average"] | None = None
    """A fixed IoU threshold τ, or "average": every IoU term is the mean of its values at τ = 0.5,
    0.55, …, 0.95, 0.99 (what V-Triune's released server ran, its `dynamic` setting unexported);
    either overrides `iou_schedule`."""
    iou_schedule: Schedule = ((0.10, 0.85), (0.25, 0.95), (1.0, 0.99))
    """(progress bound, τ) pairs: τ is the first whose bound >= step / total_steps (paper §3.4)."""
    matcher: Matcher = "label_first"
    """How predictions are paired with ground truth for the `iou` term."""
    match_labels: bool = True
    """A prediction counts only with the label of its ground-truth box (case-insensitive)."""
    weights: BoxWeights = BoxWeights()
    """Weights of the accuracy terms."""
    completeness: float = Field(0.3, ge=0, le=1)
    """c in (1 - c) * mean_iou + c * completeness (V-Triune's iou_completeness)."""
    size_penalty_base: float = Field(0.6, ge=0, le=1)
    """Every term is multiplied by base ** | |P| - |G| |."""
    format: FormatSpec = FormatSpec(mode="answer_block")
    """The tag rule of the format score; it also needs >= 1 valid box (or `[]` for an empty image)."""
    answer_required: bool = True
    """False: without an answer block, parse the text after the last </think> (format stays 0)."""
    max_boxes: int = Field(1000, ge=1, le=100_000)
    """Answers with more boxes than this score 0 (parsing stops there)."""

    @field_validator("iou_schedule")
    @classmethod
    def _check_schedule(cls, v: Schedule) -> Schedule:
        bounds = [b for b, _ in v]
        if not v or any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)) or bounds[0] < 0:
            raise ValueError("progress bounds must be increasing and start at >= 0")
        if bounds[-1] != 1.0:
            raise ValueError("the last progress bound must be 1.0")
        if not all(0 < t <= 1 for _, t in v):
            raise ValueError("thresholds must lie in (0, 1]")
        return v

    def taus(self, progress: float) -> tuple[float, ...]:
        """The thresholds at training progress in [0, 1] whose scores are averaged: the fixed τ,
        the 11 of "average", else the schedule's first τ whose bound >= progress."""
        if self.iou_threshold == "average":
            return AVERAGE_TAUS
        if self.iou_threshold is not None:
            return (self.iou_threshold,)
        return (next(t for bound, t in self.iou_schedule if progress <= bound),)


AVERAGE_TAUS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)  # V-Triune's `average`


def answer_text(completion: str, *, required: bool = True) -> str | None:
    """The answer block; without one, None, or (not `required`) the text after the last </think>."""
    start = completion.find("<answer>")
    # Checked first so the regex in `answer_block` never scans for a closing tag that is not there.
    if start >= 0 and completion.find("</answer>", start + 8) >= 0:
        return answer_block(completion)
    if required:
        return None
    think = completion.rfind("</think>")
    return completion[think + 8 :] if think >= 0 else completion


@lru_cache(maxsize=2048)
def _parse_ground_truth(text: str, match_labels: bool) -> ParsedBoxes:
    block = answer_text(text, required=False) or ""
    parsed = parse_boxes(block, require_label=match_labels, max_boxes=100_000)
    if parsed.invalid or parsed.capped or parsed.aborted:
        raise VerifierError(f"invalid ground truth: {'; '.join(parsed.notes(100_000))}")
    if not len(parsed) and not parsed.explicit_empty:
        raise VerifierError("ground truth holds no boxes (an image without objects is written `[]`)")
    return parsed


def ground_truth_boxes(ground_truth: str | list[Box], *, match_labels: bool) -> tuple[np.ndarray, list[str]]:
    """Canonical GT boxes and normalised labels; raises VerifierError for unusable ground truth."""
    if isinstance(ground_truth, str):
        parsed = _parse_ground_truth(ground_truth, match_labels)
        return parsed.boxes, [lab or "" for lab in parsed.labels]
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[str] = []
    seen: set[tuple[float, float, float, float]] = set()
    for b in ground_truth:
        box = as_box((float(b.x1), float(b.y1), float(b.x2), float(b.y2)))
        if box is None:
            raise VerifierError(f"invalid ground-truth box {[b.x1, b.y1, b.x2, b.y2]!r}")
        if box not in seen:  # the same duplicate rule as parsed ground truth
            seen.add(box)
            boxes.append(box)
            labels.append(normalize_label(b.label))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), labels


def check_box_ground_truth(ground_truth: GroundTruth, params: BoxParams, *, full: bool = False) -> None:
    """Gold boxes are readable: a label on each box when labels are matched (`match_labels`), and
    for a ground-truth string, boxes that parse; ``[]`` (an image without the asked objects) is
    fine. (Every gold `Box` already has finite, ordered coordinates: `base.check_box`.)"""
    if isinstance(ground_truth, str):
        ground_truth_boxes(ground_truth, match_labels=params.match_labels)  # parsed once, cached
    elif params.match_labels and not all(b.label.strip() for b in ground_truth):
        raise VerifierError("a ground-truth box has no label, and labels are matched (match_labels)")


_REPORT_TAUS = (50, 75, 95, 99)  # precision/recall of label-first matching at these IoU percentages
_SCORE_KEYS = (
    *("mean_iou", "completeness", "iou", "iou_label_first", "iou_iou_first", "map", "map50", "map75"),
    *(f"{kind}{t}" for t in _REPORT_TAUS for kind in ("precision", "recall")),
)


def score_boxes(
    pred: np.ndarray,
    pred_labels: Sequence[str | None],
    gt: np.ndarray,
    gt_labels: Sequence[str],
    *,
    taus: Sequence[float],
    params: BoxParams,
    answered: bool = True,
) -> tuple[float, dict[str, float]]:
    """Accuracy and report components of canonical predictions against canonical ground truth.

    The IoU terms are means over `taus` (one threshold, or V-Triune's 11 in "average" mode).
    `answered` is False when the completion held no box and no explicit empty list: then even an
    image without objects scores 0 (silence is not the answer "nothing there").
    """
    n_p, n_g = len(pred), len(gt)
    penalty = params.size_penalty_base ** abs(n_p - n_g)
    comps: dict[str, float] = {
        "tau": sum(taus) / len(taus),
        "size_penalty": penalty,
        "num_pred": float(n_p),
        "num_gt": float(n_g),
    }
    if n_g == 0:  # an image without the asked objects: only an empty answer is right
        v = 1.0 if n_p == 0 and answered else 0.0
        comps.update(dict.fromkeys(_SCORE_KEYS, v))
        return v, comps

    if params.match_labels:  # label ids: -1 for a label outside the GT, -2 for none
        ids = {lab: k for k, lab in enumerate(dict.fromkeys(gt_labels))}
        p_ids = [ids.get(lab, -1) if lab is not None else -2 for lab in pred_labels]
        g_ids = [ids[lab] for lab in gt_labels]
    else:
        p_ids, g_ids = [0] * n_p, [0] * n_g
    c = params.completeness

    def weighted(matches: list[Match]) -> tuple[float, float, float]:
        mean_iou = sum(m[2] for m in matches) / n_g
        miss = (n_g - len(matches)) / n_g
        false_alarm = (n_p - len(matches)) / n_p if n_p else 1.0  # saying nothing is not complete
        completeness = 1.0 - (miss + false_alarm) / 2.0
        return mean_iou, completeness, (1.0 - c) * mean_iou + c * completeness

    def same(p: int, g: int) -> bool:
        return p_ids[p] == g_ids[g]

    report_taus = [t / 100 for t in _REPORT_TAUS]
    pairs = overlaps(pred, gt, min(*taus, *report_taus))  # every threshold below reads these
    by_gt: list[list[tuple[int, float]]] = [[] for _ in range(n_g)]
    for p, g, v in pairs:
        if same(p, g):
            by_gt[g].append((p, v))
    label_first = {t: match_label_first(by_gt, t) for t in (*taus, *report_taus)}
    if params.matcher == "hungarian":
        iou, same_matrix = np.zeros((n_p, n_g)), np.array(p_ids)[:, None] == np.array(g_ids)[None, :]
        for p, g, v in pairs:  # the pairs below min_iou are also below tau: 0 to the assignment
            iou[p, g] = v

    def at(tau: float) -> tuple[float, ...]:
        """(mean IoU, completeness, chosen, iou-first, label-first) weighted scores at one τ."""
        iou_first = match_iou_first(pairs, same, tau)
        if params.matcher == "hungarian":
            chosen = match_hungarian(iou, same_matrix.reshape(n_p, n_g), tau)
        else:
            chosen = label_first[tau] if params.matcher == "label_first" else iou_first
        return (*weighted(chosen), weighted(iou_first)[2], weighted(label_first[tau])[2])

    per_tau = [at(t) for t in taus]
    mean_iou, completeness, w_chosen, w_iou_first, w_label_first = (
        sum(v) / len(taus) for v in zip(*per_tau, strict=True)
    )
    if params.match_labels:
        ap = coco_ap(gt, gt_labels, pred, pred_labels)
    else:
        ap = coco_ap(gt, [0] * n_g, pred, [0] * n_p)
    terms = {
        "iou": w_chosen * penalty,
        "iou_first": w_iou_first * penalty,
        "map": max(ap.map, 0.0) * penalty,
        "map50": max(ap.map50, 0.0) * penalty,
        "map75": max(ap.map75, 0.0) * penalty,
    }
    w = params.weights
    weights = {"iou": w.iou, "iou_first": w.iou_first, "map": w.map, "map50": w.map50, "map75": w.map75}
    accuracy = sum(weights[k] * terms[k] for k in terms) / sum(weights.values())
    comps.update(
        mean_iou=mean_iou,
        completeness=completeness,
        iou=terms["iou"],
        iou_label_first=w_label_first * penalty,
        iou_iou_first=terms["iou_first"],
        map=max(ap.map, 0.0),
        map50=max(ap.map50, 0.0),
        map75=max(ap.map75, 0.0),
    )
    for t in _REPORT_TAUS:
        m = len(label_first[t / 100])
        comps[f"precision{t}"] = m / n_p if n_p else 0.0
        comps[f"recall{t}"] = m / n_g
    return accuracy, comps


_NO_ANSWER = ParsedBoxes(np.zeros((0, 4)), ())


def verify_boxes(
    completion: str, ground_truth: GroundTruth, params: BoxParams, ctx: VerifyContext
) -> Verdict:
    """The detection/grounding verifier (binary format, continuous accuracy).

    The completion's boxes are read in `ctx.model_frame` when the caller knows the model's frame,
    else in `params.coords`; the prediction reports them in the canonical frame.
    """
    frame = ctx.model_frame or params.coords
    convert = frame != "pixel" or ctx.model_input_size is not None
    if convert and ctx.image_size is None:
        raise VerifierError(f"boxes in frame {frame!r} need the stored image size (image_size)")
    gt, gt_labels = ground_truth_boxes(ground_truth, match_labels=params.match_labels)
    text = answer_text(completion, required=params.answer_required)
    parsed = (
        _NO_ANSWER
        if text is None
        else parse_boxes(text, require_label=params.match_labels, max_boxes=params.max_boxes)
    )
    pred = parsed.boxes
    if convert and len(pred):
        assert ctx.image_size is not None
        pred = to_canonical(pred, frame, image_size=ctx.image_size, model_input_size=ctx.model_input_size)
    answered = len(parsed) > 0 or parsed.explicit_empty
    accuracy, comps = score_boxes(
        pred, parsed.labels, gt, gt_labels, taus=params.taus(ctx.progress), params=params, answered=answered
    )
    notes = parsed.notes(params.max_boxes)
    if text is None:
        notes.append("no <answer> block")
    elif not answered:
        notes.append("no valid box in the answer")
    if parsed.capped or parsed.aborted:
        accuracy = 0.0  # an answer past the limits is wrong, whatever its first boxes say
    # V-Triune's format needs >= 1 valid box; `[]` also counts where the image has no such object.
    well_formed = len(parsed) > 0 or (parsed.explicit_empty and len(gt) == 0)
    fmt = format_score(completion, params.format) if well_formed else 0.0
    prediction = (
        [{"label": lab, "bbox": box} for lab, box in zip(parsed.labels, pred.tolist(), strict=True)]
        if answered
        else None
    )
    return Verdict(
        accuracy=accuracy, format=fmt, components=comps, message="; ".join(notes), prediction=prediction
    )
