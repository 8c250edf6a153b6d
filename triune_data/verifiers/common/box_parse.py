"""Parsing the boxes of a box answer (or a ground-truth string), for `detection` and `grounding`.

V-Triune (`det_helper.extract_bbox`, docs/vtriune.md §3) rewrites the answer with string
replacements and calls `json.loads`, so one stray quote loses every box. `parse_boxes` is instead a
lenient single-pass tokenizer with an explicit stack (no recursion, no `eval`), linear in the text
and bounded in work (`TOKENS_PER_BOX` tokens per allowed box, `MAX_DEPTH` levels of nesting,
`max_boxes` boxes). It accepts JSON and Python-style lists of ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}``
(either quote style, code fences, trailing or missing commas, extra keys in any order, numbers
written as strings, ``[[x1, y1, x2, y2]]``, bare coordinate lists) and keeps every complete object
of a truncated list. As in V-Triune, a box needs four finite numbers with x1 <= x2 and y1 <= y2
(others are counted as invalid), a label when labels are matched, and exact duplicates (same four
numbers) after the first are dropped. Labels compare stripped and case-folded.

The label may come under another key than ``label``: `LABEL_KEYS` lists, in one place, the keys
models use for a box's class or text (Qwen2.5-VL text spotting writes ``text_content``); when a
box has several, a text value beats a number and then the earlier key in that list wins. Keys
match stripped and case-insensitively.

>>> parse_boxes('[{"bbox_2d": [1, 2, 3, 4], "label": "Dog"}]').labels
('dog',)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

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


LABEL_KEYS: tuple[str, ...] = (
    *("label", "text_content", "text", "category", "category_name", "class", "class_name", "name"),
    *("ref", "caption", "phrase", "object", "description"),
)
_LABEL_RANK = {key: rank for rank, key in enumerate(LABEL_KEYS)}
_NO_LABEL = len(LABEL_KEYS)


def _takes_label(value: object, rank: int, current: object, current_rank: int) -> bool:
    """Does `value` (under a key of `rank`) replace the label read so far? Text beats anything
    else (``{"label": 3, "name": "dog"}`` is a dog), then the earlier key of `LABEL_KEYS`."""
    if isinstance(value, str) != isinstance(current, str):
        return isinstance(value, str)
    return rank < current_rank


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


def as_box(value: object) -> tuple[float, float, float, float] | None:
    """Four finite, ordered coordinates from a closed list value (``[[...]]`` unwrapped), else None."""
    while isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if not isinstance(value, tuple) or len(value) != 4:
        return None
    x1, y1, x2, y2 = map(_coord, value)
    if x1 is None or y1 is None or x2 is None or y2 is None:
        return None
    m = MAX_ABS_COORD  # `not <=` also rejects NaN
    if not (abs(x1) <= m and abs(y1) <= m and abs(x2) <= m and abs(y2) <= m):
        return None
    return (x1, y1, x2, y2) if x1 <= x2 and y1 <= y2 else None


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
    __slots__ = ("bbox", "broken", "has_bbox", "is_dict", "items", "key", "label", "label_rank", "n", "state")

    def __init__(self, is_dict: bool) -> None:
        self.is_dict = is_dict
        self.broken = False
        self.state = "key"  # dicts: key -> colon -> value -> after
        self.key: str | None = None
        self.has_bbox = False
        self.bbox: object = None
        self.label: object = None
        self.label_rank = _NO_LABEL  # the LABEL_KEYS rank of the key `label` came from
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
            elif self.key in _LABEL_RANK:
                rank = _LABEL_RANK[self.key]
                if _takes_label(value, rank, self.label, self.label_rank):
                    self.label, self.label_rank = value, rank
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
    has_bbox, bbox, label, label_rank = False, None, None, _NO_LABEL
    for key, x in node:
        v = x if type(x) in _SCALARS else _value(x, found, True, depth)
        if key == "bbox_2d":
            has_bbox, bbox = True, v
        elif key in _LABEL_RANK:
            if _takes_label(v, _LABEL_RANK[key], label, label_rank):
                label, label_rank = v, _LABEL_RANK[key]
        elif key.strip().lower() in _KEYS:
            raise _NotPlain
    if has_bbox:
        found.append((bbox, label))
    return _DICT


_KEYS = frozenset({"bbox_2d", *LABEL_KEYS})
_SCALARS = (float, str)  # kept as they are; true, false and null become None (`_value`)


def _value(x: object, found: list[tuple[object, object]], in_dict: bool, depth: int) -> object:
    if type(x) is list or type(x) is tuple:
        return _walk(x, found, in_dict, depth + 1)
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
        assert m is not None  # `other` matches any character
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
        box = as_box(value)
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
