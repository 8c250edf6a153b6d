"""Matching predicted boxes to ground-truth boxes (docs/vtriune.md §5), for `detection` and `grounding`.

At a threshold τ, on the (P, G) IoU matrix (xyxy, touching boxes 0, no +1 pixel convention):

- ``label_first``: V-Triune's reward matcher. GT boxes in order; each takes the unmatched
  prediction with its label and the highest IoU (the first on ties), if that IoU >= τ.
- ``iou_first``: repeatedly the globally best unmatched pair regardless of label, until the best
  is below τ; the pair's IoU counts only if the labels agree. V-Triune credits the best IoU to the
  *last* unmatched pair instead (a loop-variable bug); this is the intended algorithm.
- ``hungarian``: the assignment of same-label pairs with IoU >= τ that maximises the total IoU.

IoU is computed once per item, as the sparse list of (pred, gt, IoU) pairs that clear the lowest
threshold in play: every matcher, at every threshold, reads that one list. Each matcher returns
(pred index, gt index, credited IoU) triples.

>>> import numpy as np
>>> overlaps(np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 20]]), 0.5)
[(0, 0, 0.5)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np

Match: TypeAlias = tuple[int, int, float]
Pair: TypeAlias = tuple[int, int, float]  # (pred index, gt index, IoU)

NUMPY_PAIRS = 256  # above this many (pred, GT) pairs, IoU is one numpy matrix instead of a loop


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) IoU of xyxy boxes; 0 where boxes only touch or a box has no area."""
    px1, py1, px2, py2 = (pred[:, i, None] for i in range(4))
    gx1, gy1, gx2, gy2 = (gt[None, :, i] for i in range(4))
    iw = np.minimum(px2, gx2) - np.maximum(px1, gx1)
    ih = np.minimum(py2, gy2) - np.maximum(py1, gy1)
    inter = iw * ih
    union = (px2 - px1) * (py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = inter / union
    return np.where((iw > 0) & (ih > 0), out, 0.0)


def overlaps(pred: np.ndarray, gt: np.ndarray, min_iou: float) -> list[Pair]:
    """The pairs with IoU >= min_iou > 0, prediction-major; the IoU is `iou_matrix`'s, bit for bit.

    A sample has a handful of boxes, where numpy's per-call overhead costs more than a loop over
    the pairs (the same float operations, so the same values: union > 0 whenever both sides overlap).
    """
    if len(pred) * len(gt) > NUMPY_PAIRS:
        iou = iou_matrix(pred, gt)
        pp, gg = np.nonzero(iou >= min_iou)
        return list(zip(pp.tolist(), gg.tolist(), iou[pp, gg].tolist(), strict=True))
    gts = [(*b, (b[2] - b[0]) * (b[3] - b[1])) for b in gt.tolist()]
    out = []
    for p, (px1, py1, px2, py2) in enumerate(pred.tolist()):
        p_area = (px2 - px1) * (py2 - py1)
        for g, (gx1, gy1, gx2, gy2, g_area) in enumerate(gts):
            # min/max as conditional expressions: the builtin calls cost 2.5x the whole loop
            iw = (px2 if px2 < gx2 else gx2) - (px1 if px1 > gx1 else gx1)
            if iw > 0:
                ih = (py2 if py2 < gy2 else gy2) - (py1 if py1 > gy1 else gy1)
                if ih > 0:
                    inter = iw * ih
                    if (v := inter / (p_area + g_area - inter)) >= min_iou:
                        out.append((p, g, v))
    return out


def match_label_first(by_gt: list[list[tuple[int, float]]], tau: float) -> list[Match]:
    """GT in order; each takes the unmatched same-label prediction with the highest IoU (the first
    on ties), if that IoU >= tau. `by_gt[g]`: (pred, IoU) of g's same-label predictions in
    prediction order, all those with IoU >= tau among them (the others can never be taken)."""
    taken: set[int] = set()
    out = []
    for g, cands in enumerate(by_gt):
        best, p = -1.0, -1
        for q, v in cands:
            if v > best and q not in taken:
                best, p = v, q
        if best >= tau:
            taken.add(p)
            out.append((p, g, best))
    return out


def match_iou_first(pairs: list[Pair], same: Callable[[int, int], bool], tau: float) -> list[Match]:
    """Repeatedly the best unmatched pair (the first in prediction-major order on ties) while its
    IoU >= tau: a stable sort of the pairs by IoU, scanned once. Credits 0 to a label mismatch."""
    used_p: set[int] = set()
    used_g: set[int] = set()
    out = []
    for p, g, v in sorted((t for t in pairs if t[2] >= tau), key=lambda t: -t[2]):
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
            out.append((p, g, v if same(p, g) else 0.0))
    return out


def _max_weight_assignment(w: np.ndarray) -> list[tuple[int, int]]:
    """Row-column pairs of a maximum-total-weight assignment of a non-negative (n, m) matrix.

    Shortest augmenting paths with potentials (the O(n²m) Hungarian method), the inner scan over
    columns vectorised; requires n <= m.
    """
    n, m = w.shape
    cost = np.zeros((n + 1, m + 1))
    cost[1:, 1:] = -w
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: row (1-based) assigned to column j
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            cur = cost[i0] - u[i0] - v
            better = ~used & (cur < minv)
            minv[better] = cur[better]
            way[better] = j0
            scan = np.where(used, np.inf, minv)
            j1 = int(np.argmin(scan))
            delta = scan[j1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    return [(int(owner[j]) - 1, j - 1) for j in range(1, m + 1) if owner[j]]


def match_hungarian(iou: np.ndarray, same: np.ndarray, tau: float) -> list[Match]:
    w = np.where(same & (iou >= tau), iou, 0.0)
    rows, cols = np.flatnonzero(w.any(axis=1)), np.flatnonzero(w.any(axis=0))
    sub = w[np.ix_(rows, cols)]
    flip = sub.shape[0] > sub.shape[1]
    pairs = _max_weight_assignment(sub.T if flip else sub)
    out = []
    for a, b in pairs:
        p, g = (rows[b], cols[a]) if flip else (rows[a], cols[b])
        if w[p, g] > 0:
            out.append((int(p), int(g), float(w[p, g])))
    return sorted(out, key=lambda t: t[1])
