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
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal, TypeAlias

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
    # "\\u" without four hex digits falls to the one-character branch: an unknown escape, kept as "u"
    out = _ESCAPE.sub(lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 5 else _ESCAPES.get(m[1], m[1]), s)
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
    box = tuple(map(_coord, value))
    if None in box:
        return None
    x1, y1, x2, y2 = box
    m = MAX_ABS_COORD  # `not <=` also rejects NaN
    if not (abs(x1) <= m and abs(y1) <= m and abs(x2) <= m and abs(y2) <= m):
        return None
    return box if x1 <= x2 and y1 <= y2 else None  # type: ignore[return-value]


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


# The fast path. Most answers are one plain JSON (or Python-quoted) list in an optional code fence;
# `json` parses those ~20x faster than the tokenizer. It is only a shortcut: it yields exactly the
# tokenizer's candidates (the same values, in the same order) or None, and then the tokenizer runs.
# - numbers go through float() on their text, as the tokenizer does ("-0" stays -0.0);
# - objects stay (key, value) pairs, so repeated keys and what they contain are all seen, in order;
# - a candidate is recorded when its container closes (post-order), as the tokenizer records it;
# - anything the two could read differently falls back: a key that only matches after strip/lower,
#   nesting deeper than MAX_DEPTH, more than max_boxes candidates, a label with a surrogate
#   (the tokenizer joins escaped surrogate pairs differently when a lone one is present).
_DECODER = json.JSONDecoder(parse_int=float, object_pairs_hook=tuple)
_FENCE = " \t\n\r`"  # JSON whitespace and backticks: the tokenizer skips both outside containers
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotPlain(Exception):
    pass


def _plain_json(text: str, max_boxes: int) -> tuple[list[tuple[object, object]], bool] | None:
    """(box candidates, explicit empty list) when `text` is one JSON container, else None."""
    s = text.strip(_FENCE)
    if s.startswith("json"):  # ```json ... ``` (VLM-R1 also closes the fence with ```json)
        s = s[4:].lstrip(_FENCE)
    if s.endswith("json"):
        s = s[:-4].rstrip(_FENCE)
    if not s or s[0] not in "[{":
        return None
    if "'" in s and '"' not in s and "\\" not in s:  # Python quotes: same strings once swapped
        s = s.replace("'", '"')
    try:
        value = _DECODER.decode(s)
        found: list[tuple[object, object]] = []
        _walk(value, found, False, 1)
    except (ValueError, RecursionError, _NotPlain):
        return None
    if len(found) > max_boxes:
        return None
    for _, label in found:
        if isinstance(label, str) and not label.isascii() and _SURROGATE.search(label):
            return None
    return found, isinstance(value, list) and not value


def _walk(node: list | tuple, found: list[tuple[object, object]], in_dict: bool, depth: int) -> object:
    """The tokenizer's value of a decoded array (a list) or object (a tuple of pairs), recording
    box candidates into `found` as the tokenizer does."""
    if depth > MAX_DEPTH:
        raise _NotPlain
    if type(node) is list:
        items = [x if type(x) in _SCALARS else _value(x, found, in_dict, depth) for x in node]
        if not in_dict and len(items) == 4 and all(_coord(v) is not None for v in items):
            found.append((tuple(items), None))  # a bare [x1, y1, x2, y2]
        return tuple(items) if len(items) <= 4 else _LONG
    has_bbox, bbox, label = False, None, None
    for key, x in node:
        v = x if type(x) in _SCALARS else _value(x, found, True, depth)
        if key == "bbox_2d":
            has_bbox, bbox = True, v
        elif key == "label":
            label = v
        elif key.strip().lower() in ("bbox_2d", "label"):
            raise _NotPlain
    if has_bbox:
        found.append((bbox, label))
    return _DICT


_SCALARS = (float, str)  # kept as they are; true, false and null become None (`_value`)


def _value(x: object, found: list[tuple[object, object]], in_dict: bool, depth: int) -> object:
    if type(x) is list or type(x) is tuple:
        return _walk(x, found, in_dict, depth + 1)  # type: ignore[arg-type]
    return None  # true, false, null: what the tokenizer makes of those words


def parse_boxes(text: str, *, require_label: bool = True, max_boxes: int = 1000) -> ParsedBoxes:
    """Parse every box in `text` (an answer block or a ground-truth string); never raises on content."""
    max_tokens = TOKENS_PER_BOX * max_boxes + 4096
    # Each token is at least one character, so a text this short cannot hit the token budget.
    plain = _plain_json(text, max_boxes) if len(text) <= max_tokens else None
    if plain is not None:
        return _collect(*plain, False, "", require_label)
    return _collect(*_scan(text, max_boxes, max_tokens), require_label)


def _scan(text: str, max_boxes: int, max_tokens: int) -> tuple[list[tuple[object, object]], bool, bool, str]:
    """The tolerant tokenizer: (box candidates, explicit empty list, capped, why aborted)."""
    stack: list[_Frame] = []
    dict_depth = 0
    found: list[tuple[object, object]] = []  # (coordinates value, label value)
    explicit_empty = capped = False
    aborted = ""
    pos, n_tokens, end = 0, 0, len(text)
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
    return found, explicit_empty, capped, aborted


def _collect(
    found: list[tuple[object, object]], explicit_empty: bool, capped: bool, aborted: str, require_label: bool
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
# Matching. IoU is computed once per item, as the sparse list of (pred, gt, IoU) pairs that clear
# the lowest threshold in play: every matcher, at every threshold, reads that one list. Each
# matcher returns (pred index, gt index, credited IoU) triples.

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
        box = _as_box((float(b.x1), float(b.y1), float(b.x2), float(b.y2)))
        if box is None:
            raise VerifierError(f"invalid ground-truth box {[b.x1, b.y1, b.x2, b.y2]!r}")
        if box not in seen:  # the same duplicate rule as parsed ground truth
            seen.add(box)
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
    return Verdict(accuracy=accuracy, format=fmt, components=comps, message="; ".join(notes))
