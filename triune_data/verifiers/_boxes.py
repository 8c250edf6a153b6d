"""Shared machinery of the box verifiers (`detection`, `grounding`): parse, match, score.

Parsing. V-Triune (`det_helper.extract_bbox`, vtriune.md §2.3) rewrites the answer with string
replacements and calls `json.loads`, so one stray quote loses every box. `parse_boxes` is instead a
lenient single-pass tokenizer with an explicit stack (no recursion, no `eval`), linear in the text
and bounded in work (`TOKENS_PER_BOX` tokens per allowed box, `MAX_DEPTH` levels of nesting,
`max_boxes` boxes). It accepts JSON and Python-style lists of ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}``
(either quote style, code fences, trailing or missing commas, extra keys in any order, numbers
written as strings, ``[[x1, y1, x2, y2]]``, bare coordinate lists) and keeps every complete object
of a truncated list. As in V-Triune, a box needs four finite numbers with x1 <= x2 and y1 <= y2
(others are counted as invalid), a label when labels are matched, and exact duplicates (same four
numbers) after the first are dropped. Labels compare stripped and case-folded.

Matching (vtriune.md §3.2), at a threshold τ, on the (P, G) IoU matrix (xyxy, touching boxes 0,
no +1 pixel convention):

- ``label_first``: V-Triune's reward matcher. GT boxes in order; each takes the unmatched
  prediction with its label and the highest IoU (the first on ties), if that IoU >= τ.
- ``iou_first``: repeatedly the globally best unmatched pair regardless of label, until the best
  is below τ; the pair's IoU counts only if the labels agree. V-Triune credits the best IoU to the
  *last* unmatched pair instead (a loop-variable bug); this is the intended algorithm.
- ``hungarian``: the assignment of same-label pairs with IoU >= τ that maximises the total IoU.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeAlias

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from triune_data.coords import Frame, to_canonical
from triune_data.errors import VerifierError
from triune_data.schema import Box
from triune_data.verifiers._coco_map import coco_ap
from triune_data.verifiers.base import GroundTruth, Verdict, VerifierParams, VerifyContext
from triune_data.verifiers.format import FormatSpec, answer_block, format_score

Matcher: TypeAlias = Literal["label_first", "iou_first", "hungarian"]

TOKENS_PER_BOX = 64  # token budget: TOKENS_PER_BOX * max_boxes + 4096 (a box with extra keys takes ~40)
MAX_DEPTH = 32
MAX_ABS_COORD = 1e15  # beyond this, areas lose all precision: treat as garbage

_TOKEN = re.compile(
    r"""(?P<ws>[\s`]+)
      | (?P<str>"[^"\\]*(?:\\.[^"\\]*)*"?|'[^'\\\n]*(?:\\.[^'\\\n]*)*'?)
      | (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<word>[-+]?[^\W\d]\w*)
      | (?P<punct>[\[\]{}:,])
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")
_NONFINITE_WORDS = frozenset({"nan", "inf", "infinity"})
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_LONG = object()  # a list with more than four items
_DICT = object()  # a closed object, as a value


def normalize_label(label: str) -> str:
    return label.strip().casefold()


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out = _ESCAPE.sub(lambda m: chr(int(m[1][1:], 16)) if m[1][0] == "u" else _ESCAPES.get(m[1], m[1]), s)
    try:  # join \ud83d\udc36-style surrogate pairs
        return out.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return out


def _word_value(word: str) -> float | str | None:
    low = word.lower()
    if low.lstrip("+-") in _NONFINITE_WORDS:
        return float(low)
    if low in ("true", "false", "null", "none"):
        return None
    return word  # an unquoted string (JSON5-style keys, bare labels)


def _coord(v: object) -> float | None:
    if isinstance(v, float):
        return v
    if isinstance(v, str) and len(v) <= 64 and _NUMBER.fullmatch(v):
        return float(v)
    return None


def _as_box(value: object) -> tuple[float, float, float, float] | None:
    """Four finite, ordered coordinates from a closed list value (``[[...]]`` unwrapped), else None."""
    while isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if not isinstance(value, tuple) or len(value) != 4:
        return None
    c = [_coord(v) for v in value]
    if any(x is None or not abs(x) <= MAX_ABS_COORD for x in c):  # `not <=` also rejects NaN
        return None
    x1, y1, x2, y2 = c
    return (x1, y1, x2, y2) if x1 <= x2 and y1 <= y2 else None  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class ParsedBoxes:
    """Boxes found in a text, in the frame they were written in."""

    boxes: np.ndarray  # (N, 4) float64 xyxy
    labels: tuple[str | None, ...]  # normalised; None where the box has no label
    explicit_empty: bool = False  # the text holds an empty list and no box candidate: "nothing there"
    invalid: int = 0  # candidates dropped: bad or unordered coordinates, missing label
    duplicates: int = 0
    capped: bool = False  # more than max_boxes candidates: parsing stopped
    aborted: str = ""  # why parsing stopped early (nesting or token budget), if it did

    def __len__(self) -> int:
        return len(self.labels)

    def notes(self, max_boxes: int) -> list[str]:
        out = [f"{self.invalid} invalid box(es) dropped"] if self.invalid else []
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate box(es) dropped")
        if self.capped:
            out.append(f"more than {max_boxes} boxes: parsed the first {max_boxes}")
        if self.aborted:
            out.append(self.aborted)
        return out


class _Frame:
    __slots__ = ("bbox", "broken", "has_bbox", "is_dict", "items", "key", "label", "n", "state")

    def __init__(self, is_dict: bool) -> None:
        self.is_dict = is_dict
        self.broken = False
        self.state = "key"  # dicts: key -> colon -> value -> after
        self.key: str | None = None
        self.has_bbox = False
        self.bbox: object = None
        self.label: object = None
        self.items: list[object] = []  # lists: the first five items
        self.n = 0

    def put(self, value: object) -> None:
        """Receive a value (scalar or closed container) at this level."""
        if not self.is_dict:
            self.n += 1
            if self.n <= 5:
                self.items.append(value)
        elif self.state == "value":
            if self.key == "bbox_2d":
                self.has_bbox, self.bbox = True, value
            elif self.key == "label":
                self.label = value
            self.state = "after"
        elif self.state in ("key", "after") and isinstance(value, str):
            self.key, self.state = value.strip().lower(), "colon"  # also a key after a missing comma
        else:
            self.broken = True

    def value(self) -> object:
        if self.is_dict:
            return _DICT
        return tuple(self.items) if self.n <= 4 else _LONG


def parse_boxes(text: str, *, require_label: bool = True, max_boxes: int = 1000) -> ParsedBoxes:
    """Parse every box in `text` (an answer block or a ground-truth string); never raises on content."""
    stack: list[_Frame] = []
    dict_depth = 0
    found: list[tuple[object, object]] = []  # (coordinates value, label value)
    explicit_empty = capped = False
    aborted = ""
    pos, n_tokens, end = 0, 0, len(text)
    max_tokens = TOKENS_PER_BOX * max_boxes + 4096
    while pos < end:
        n_tokens += 1
        if n_tokens > max_tokens:
            aborted = f"more than {max_tokens} tokens: parsed the beginning"
            break
        m = _TOKEN.match(text, pos)
        kind, tok = m.lastgroup, m.group()
        if kind == "str" and pos > 0 and text[pos - 1].isalnum():
            kind, tok = "other", tok[0]  # an apostrophe in prose ("dog's"), not a string
        pos += len(tok)
        top = stack[-1] if stack else None
        if kind == "ws":
            continue
        if kind in ("str", "num", "word"):
            if top is not None:
                if kind == "str":
                    closed = len(tok) >= 2 and tok[-1] == tok[0]
                    top.put(_unescape(tok[1 : len(tok) - closed]))
                else:
                    top.put(float(tok) if kind == "num" else _word_value(tok))
            continue
        if kind == "other":
            if top is not None:
                top.broken = True
            continue
        if tok in "[{":
            if top is not None and top.is_dict and top.state != "value":
                top.broken = True
            if len(stack) >= MAX_DEPTH:
                aborted = f"nesting deeper than {MAX_DEPTH}: parsed up to there"
                break
            stack.append(_Frame(tok == "{"))
            dict_depth += tok == "{"
        elif tok in "]}":
            want = tok == "}"
            k = len(stack) - 1
            while k >= 0 and stack[k].is_dict != want:
                k -= 1
            if k < 0:
                continue  # a stray closer: ignore it
            for f in stack[k + 1 :]:  # containers left open inside are malformed: drop them
                dict_depth -= f.is_dict
            del stack[k + 1 :]
            frame = stack.pop()
            dict_depth -= frame.is_dict
            if frame.is_dict:
                frame.broken |= frame.state in ("colon", "value")
                if frame.has_bbox and not frame.broken:
                    found.append((frame.bbox, frame.label))
            elif not frame.broken and dict_depth == 0:
                if frame.n == 4 and all(_coord(v) is not None for v in frame.items):
                    found.append((tuple(frame.items), None))  # a bare [x1, y1, x2, y2]
                elif frame.n == 0 and not stack:
                    explicit_empty = True
            if stack:
                stack[-1].put(frame.value())
            if len(found) > max_boxes:
                capped = True
                del found[max_boxes:]
                break
        elif tok == ":":
            if top is not None and top.is_dict and top.state == "colon":
                top.state = "value"
            elif top is not None:
                top.broken = True
        elif top is not None and top.is_dict:  # ","
            if top.state == "after":
                top.state = "key"
            elif top.state != "key":
                top.broken = True
    return _collect(found, require_label, explicit_empty, capped, aborted)


def _collect(
    found: list[tuple[object, object]], require_label: bool, explicit_empty: bool, capped: bool, aborted: str
) -> ParsedBoxes:
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[str | None] = []
    seen: set[tuple[float, float, float, float]] = set()
    invalid = duplicates = 0
    for value, label in found:
        box = _as_box(value)
        lab = normalize_label(label) if isinstance(label, str) else None
        if box is None or (require_label and lab is None):
            invalid += 1
        elif box in seen:  # V-Triune keys duplicates on the coordinates alone
            duplicates += 1
        else:
            seen.add(box)
            boxes.append(box)
            labels.append(lab)
    arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    arr.flags.writeable = False  # ground-truth parses are cached and shared
    empty = explicit_empty and not found
    return ParsedBoxes(arr, tuple(labels), empty, invalid, duplicates, capped, aborted)


# ----------------------------------------------------------------------------------------------
# Matching. Each matcher returns (pred index, gt index, credited IoU) triples.

Match: TypeAlias = tuple[int, int, float]


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


def match_label_first(iou: np.ndarray, same: np.ndarray, tau: float) -> list[Match]:
    taken = np.zeros(iou.shape[0], dtype=bool)
    out = []
    for g in range(iou.shape[1]):
        cand = same[:, g] & ~taken
        if not cand.any():
            continue
        p = int(np.argmax(np.where(cand, iou[:, g], -1.0)))
        if iou[p, g] >= tau:
            taken[p] = True
            out.append((p, g, float(iou[p, g])))
    return out


def match_iou_first(iou: np.ndarray, same: np.ndarray, tau: float) -> list[Match]:
    free = iou.copy()
    out = []
    for _ in range(min(free.shape)):
        p, g = divmod(int(np.argmax(free)), free.shape[1])  # first maximum, prediction-major
        if free[p, g] < tau:
            break
        out.append((p, g, float(iou[p, g]) if same[p, g] else 0.0))
        free[p, :] = -1.0
        free[:, g] = -1.0
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


MATCHERS = {"label_first": match_label_first, "iou_first": match_iou_first, "hungarian": match_hungarian}


# ----------------------------------------------------------------------------------------------
# Params and scoring (vtriune.md §3.1, §3.3).


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
    """Frame of the COMPLETION's boxes (`triune_data.coords`); ground truth is canonical."""
    iou_threshold: float | None = Field(None, gt=0, le=1)
    """A fixed IoU threshold τ; overrides `iou_schedule`."""
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

    def tau(self, progress: float) -> float:
        """τ at training progress in [0, 1]: the fixed threshold, else the first bound >= progress."""
        if self.iou_threshold is not None:
            return self.iou_threshold
        return next(t for bound, t in self.iou_schedule if progress <= bound)


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
    for b in ground_truth:
        box = _as_box((float(b.x1), float(b.y1), float(b.x2), float(b.y2)))
        if box is None:
            raise VerifierError(f"invalid ground-truth box {[b.x1, b.y1, b.x2, b.y2]!r}")
        if box not in boxes:  # the same duplicate rule as parsed ground truth
            boxes.append(box)
            labels.append(normalize_label(b.label))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), labels


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
    tau: float,
    params: BoxParams,
    answered: bool = True,
) -> tuple[float, dict[str, float]]:
    """Accuracy and report components of canonical predictions against canonical ground truth.

    `answered` is False when the completion held no box and no explicit empty list: then even an
    image without objects scores 0 (silence is not the answer "nothing there").
    """
    n_p, n_g = len(pred), len(gt)
    penalty = params.size_penalty_base ** abs(n_p - n_g)
    comps: dict[str, float] = {
        "tau": tau,
        "size_penalty": penalty,
        "num_pred": float(n_p),
        "num_gt": float(n_g),
    }
    if n_g == 0:  # an image without the asked objects: only an empty answer is right
        v = 1.0 if n_p == 0 and answered else 0.0
        comps.update(dict.fromkeys(_SCORE_KEYS, v))
        return v, comps

    iou = iou_matrix(pred, gt)
    if params.match_labels:
        ids = {lab: k for k, lab in enumerate(dict.fromkeys(gt_labels))}
        p_ids = np.array([ids.get(lab, -1) if lab is not None else -2 for lab in pred_labels], dtype=np.int64)
        same = p_ids[:, None] == np.array([ids[lab] for lab in gt_labels], dtype=np.int64)[None, :]
    else:
        same = np.ones((n_p, n_g), dtype=bool)
    c = params.completeness

    def weighted(matches: list[Match]) -> tuple[float, float, float]:
        mean_iou = sum(m[2] for m in matches) / n_g
        miss = (n_g - len(matches)) / n_g
        false_alarm = (n_p - len(matches)) / n_p if n_p else 1.0  # saying nothing is not complete
        completeness = 1.0 - (miss + false_alarm) / 2.0
        return mean_iou, completeness, (1.0 - c) * mean_iou + c * completeness

    label_first = match_label_first(iou, same, tau)
    chosen = label_first if params.matcher == "label_first" else MATCHERS[params.matcher](iou, same, tau)
    mean_iou, completeness, w_chosen = weighted(chosen)
    w_iou_first = weighted(match_iou_first(iou, same, tau))[2]
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
        iou_label_first=weighted(label_first)[2] * penalty,
        iou_iou_first=terms["iou_first"],
        map=max(ap.map, 0.0),
        map50=max(ap.map50, 0.0),
        map75=max(ap.map75, 0.0),
    )
    for t in _REPORT_TAUS:
        m = len(match_label_first(iou, same, t / 100))
        comps[f"precision{t}"] = m / n_p if n_p else 0.0
        comps[f"recall{t}"] = m / n_g
    return accuracy, comps


_NO_ANSWER = ParsedBoxes(np.zeros((0, 4)), ())


def verify_boxes(
    completion: str, ground_truth: GroundTruth, params: BoxParams, ctx: VerifyContext
) -> Verdict:
    """The detection/grounding verifier (binary format, continuous accuracy)."""
    convert = params.coords != "pixel" or ctx.model_input_size is not None
    if convert and ctx.image_size is None:
        raise VerifierError(f"coords={params.coords!r} needs the stored image size (image_size)")
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
        pred = to_canonical(
            pred, params.coords, image_size=ctx.image_size, model_input_size=ctx.model_input_size
        )
    answered = len(parsed) > 0 or parsed.explicit_empty
    tau = params.tau(ctx.progress)
    accuracy, comps = score_boxes(
        pred, parsed.labels, gt, gt_labels, tau=tau, params=params, answered=answered
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
    return Verdict(accuracy=accuracy, format=fmt, components=comps, message="; ".join(notes))
