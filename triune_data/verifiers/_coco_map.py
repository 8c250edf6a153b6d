"""COCO box AP for ONE image, in numpy, equal to pycocotools' `COCOeval` (bbox).

V-Triune scores a sample's mAP by building a one-image COCO ground truth (categories = the GT
labels), dropping predictions whose label is not a GT label, giving every prediction score 1.0 and
reading `stats[0:3]` (AP@[.5:.95], AP50, AP75) from pycocotools (vtriune.md §3.3). Building COCO
objects per sample costs milliseconds and prints; this module computes the same numbers directly:

- per category, detections sorted by score with a STABLE sort (pycocotools sorts ``-score`` with
  mergesort, so equal scores keep input order), capped at maxDets = 100;
- areaRng "all" ([0, 1e10]), iscrowd 0, GT area = w·h (as V-Triune sets it); IoU computed from
  [x, y, w, h] exactly as pycocotools' C `bbIou` does, so threshold ties resolve the same way;
- greedy matching as `COCOeval.evaluateImg` (for each detection the unmatched GT with the highest
  IoU >= t, the LAST one on ties, non-ignored GT preferred), 10 IoU thresholds .50:.05:.95;
- 101-point interpolated precision as `COCOeval.accumulate`, averaged as `summarize` does over
  every (threshold, recall point, category) entry that is defined.

A category without non-ignored GT is undefined (-1), and so is the whole AP when no category is
defined (an image without GT): `CocoAP` keeps pycocotools' -1; the verifiers map it to their own
convention.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 100
AREA_ALL = (0.0**2, 1e5**2)


@dataclass(frozen=True, slots=True)
class CocoAP:
    """pycocotools' stats[0], stats[1], stats[2]; -1.0 where undefined."""

    map: float
    map50: float
    map75: float


def _xywh(boxes: np.ndarray) -> np.ndarray:
    # The [x, y, w, h] V-Triune hands to pycocotools: w = x2 - x1, h = y2 - y1.
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def _bb_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xywh boxes, the same float operations as pycocotools' maskApi `bbIou`."""
    dx, dy, dw, dh = (dt[:, i, None] for i in range(4))
    gx, gy, gw, gh = (gt[None, :, i] for i in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    union = gw * gh + dw * dh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / union
    return np.where((w > 0) & (h > 0), out, 0.0)


def _match(ious: np.ndarray, gt_ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """evaluateImg's greedy matching for all thresholds at once -> (matched, matched_to_ignored), (T, D)."""
    n_t, (n_d, n_g) = len(IOU_THRS), ious.shape
    thr = np.minimum(IOU_THRS, 1 - 1e-10)[:, None]
    gt_taken = np.zeros((n_t, n_g), dtype=bool)
    dt_matched = np.zeros((n_t, n_d), dtype=bool)
    dt_ignored = np.zeros((n_t, n_d), dtype=bool)
    rows = np.arange(n_t)
    for d in range(n_d):
        ok = ~gt_taken & (ious[d][None, :] >= thr)
        # Non-ignored GT first (pycocotools sorts them first and stops at the first ignored one).
        pool = np.where((ok & ~gt_ignore).any(axis=1, keepdims=True), ok & ~gt_ignore, ok & gt_ignore)
        found = pool.any(axis=1)
        if not found.any():
            continue
        vals = np.where(pool, ious[d][None, :], -np.inf)
        last_max = n_g - 1 - np.argmax(vals[:, ::-1], axis=1)  # pycocotools keeps the last of equal IoUs
        t_idx, g_idx = rows[found], last_max[found]
        gt_taken[t_idx, g_idx] = True
        dt_matched[t_idx, d] = True
        dt_ignored[t_idx, d] = gt_ignore[g_idx]
    return dt_matched, dt_ignored


def _precision(dt_matched: np.ndarray, dt_ignored: np.ndarray, n_pos: int) -> np.ndarray:
    """accumulate's interpolated precision at the 101 recall points, (T, R)."""
    tps = np.cumsum(dt_matched & ~dt_ignored, axis=1).astype(np.float64)
    fps = np.cumsum(~dt_matched & ~dt_ignored, axis=1).astype(np.float64)
    out = np.zeros((len(IOU_THRS), len(REC_THRS)))
    n_d = tps.shape[1]
    if n_d == 0:
        return out
    for t in range(len(IOU_THRS)):
        rc = tps[t] / n_pos
        pr = tps[t] / (fps[t] + tps[t] + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, REC_THRS, side="left")
        valid = idx < n_d
        out[t, valid] = pr[idx[valid]]
    return out


def coco_ap(
    gt_boxes: np.ndarray,
    gt_labels: Sequence[Hashable],
    dt_boxes: np.ndarray,
    dt_labels: Sequence[Hashable],
    dt_scores: Sequence[float] | None = None,
) -> CocoAP:
    """AP@[.5:.95], AP50, AP75 of one image's xyxy detections against its xyxy ground truth.

    Categories are the distinct GT labels (first-appearance order); detections with other labels
    are dropped. Without scores every detection scores 1.0 (input order decides).
    """
    gt = _xywh(gt_boxes)
    dt = _xywh(dt_boxes)
    scores = np.ones(len(dt)) if dt_scores is None else np.asarray(dt_scores, dtype=np.float64)
    categories = list(dict.fromkeys(gt_labels))
    precision = -np.ones((len(IOU_THRS), len(REC_THRS), len(categories)))
    gt_lab = np.array([categories.index(lab) for lab in gt_labels], dtype=np.int64)
    cat_of = {c: k for k, c in enumerate(categories)}
    dt_lab = np.array([cat_of.get(lab, -1) for lab in dt_labels], dtype=np.int64)
    for k in range(len(categories)):
        g = gt[gt_lab == k]
        g_area = g[:, 2] * g[:, 3]
        g_ignore = (g_area < AREA_ALL[0]) | (g_area > AREA_ALL[1])
        order = np.argsort(g_ignore, kind="mergesort")
        g, g_ignore = g[order], g_ignore[order]
        d_idx = np.flatnonzero(dt_lab == k)
        d_idx = d_idx[np.argsort(-scores[d_idx], kind="mergesort")][:MAX_DETS]
        d = dt[d_idx]
        n_pos = int(np.count_nonzero(~g_ignore))
        if n_pos == 0:
            continue
        matched, ignored = _match(_bb_iou(d, g), g_ignore)
        d_area = d[:, 2] * d[:, 3]
        out_of_range = (d_area < AREA_ALL[0]) | (d_area > AREA_ALL[1])
        ignored |= ~matched & out_of_range[None, :]
        precision[:, :, k] = _precision(matched, ignored, n_pos)

    def summarize(p: np.ndarray) -> float:
        defined = p[p > -1]
        return float(np.mean(defined)) if defined.size else -1.0

    return CocoAP(summarize(precision), summarize(precision[0]), summarize(precision[5]))
