"""JSON with bounds: nesting depth and number length are checked on the raw text, before parsing.

No parser triune uses bounds what it builds the way the rest of the code needs: `json` recurses
(a document 100,000 levels deep raises RecursionError) and refuses integers past 4,300 digits with
a bare ValueError; orjson stops at depth 1,024, deeper than `repr` of the value survives; ijson
builds a deep value in quadratic time and memory. So every JSON text triune reads (a whole file,
a JSONL line, a ground-truth column, a reward request) goes through `loads`, and every file that
is streamed goes through `CheckedReader`, which apply one rule:

- at most `MAX_DEPTH` nested arrays and objects;
- at most `MAX_NUMBER_CHARS` characters in one number (digits, sign, point, exponent).

Anything past either is `JsonLimitError` (a ValueError, as parse errors are), raised before any
parser sees the text. `loads` parses with orjson, and falls back to `json` only for what orjson
refuses yet JSON files in the wild hold: lone-surrogate escapes, NaN/Infinity and integers past
64 bits (the callers turn such values into rejects, so one odd record never fails a whole file).

>>> loads(b'{"a": [1, 2.5, "x"]}')
{'a': [1, 2.5, 'x']}
>>> try:
...     loads(b"[" * 101 + b"]" * 101)
... except JsonLimitError as exc:
...     print(exc)
nested deeper than 100 levels
>>> len(loads(b'{"d": "' + b"[" * 500 + b'"}')["d"])  # brackets inside strings do not count
500
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, BinaryIO

import orjson

MAX_DEPTH = 100  # real annotation files nest < 10 deep (COCO segmentation: 4)
MAX_NUMBER_CHARS = 1000  # far past any real number (a float64 needs < 25), far below int()'s 4,300 digits

_ESCAPE = re.compile(rb"\\.", re.S)  # one escape pair: removed before strings are found
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_MARK = bytes(b for b in range(256) if b not in b'[]{}"')
_STRING = re.compile(rb'"[^"]*"')  # a string, once escapes are gone
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_NUMBER_CHARS = b"-+.eE0123456789"
_MARK_NUMBERS = bytes(48 if b in _NUMBER_CHARS else 32 for b in range(256))  # number chars -> "0"
_LONG_RUN = b"0" * (MAX_NUMBER_CHARS + 1)
_MARK_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # digits -> "0"
_LONG_INTEGER = b"0" * 20  # 2**64 has 20 digits: orjson reads such integers as floats


class JsonLimitError(ValueError):
    """A JSON text nested deeper than `MAX_DEPTH` or with a number longer than `MAX_NUMBER_CHARS`."""


class _Scan:
    """The bounds check over a text given in pieces (a file read in chunks). Between pieces it
    keeps whether a string is open, whether an escape is pending, the depth, and the length of the
    run of number characters the last piece ended with."""

    def __init__(self, *, numbers: bool = True) -> None:
        self.numbers = numbers
        self.in_string = False
        self.pending_escape = False
        self.depth = 0
        self.number_run = 0

    def feed(self, data: bytes) -> None:
        if self.pending_escape:
            data, self.pending_escape = data[1:], False
        body = _ESCAPE.sub(b"", data) if b"\\" in data else data
        if body.endswith(b"\\"):  # the escaped character comes with the next piece
            body, self.pending_escape = body[:-1], True
        # With escapes gone every quote opens or closes a string.
        if self.numbers:  # the text outside strings is needed: split at the quotes
            parts = body.split(b'"')
            if self.in_string:
                parts.insert(0, b"")
            self.in_string = len(parts) % 2 == 0
            outside = b" ".join(parts[0::2])
            self._numbers(outside, ends_in_string=self.in_string)
            brackets = outside.translate(None, _NOT_BRACKET)
        else:  # only brackets outside strings: keep quotes and brackets, then drop the strings
            marks = (b'"' if self.in_string else b"") + body.translate(None, _NOT_MARK)
            self.in_string = marks.count(b'"') % 2 == 1
            if self.in_string:
                marks = marks[: marks.rindex(b'"')]
            # Two quotes with nothing between are a string without brackets (or a string's end
            # and the next one's start): dropping them keeps every bracket inside or outside.
            brackets = _STRING.sub(b"", marks.replace(b'""', b""))
        opened = brackets.count(b"[") + brackets.count(b"{")
        if self.depth + opened > MAX_DEPTH:
            deepest = max(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=self.depth))
            if deepest > MAX_DEPTH:
                raise JsonLimitError(f"nested deeper than {MAX_DEPTH} levels")
        self.depth += 2 * opened - len(brackets)

    def _numbers(self, outside: bytes, *, ends_in_string: bool) -> None:
        marked = outside.translate(_MARK_NUMBERS)
        lead = len(marked) - len(marked.lstrip(b"0"))
        if _LONG_RUN in marked or self.number_run + lead > MAX_NUMBER_CHARS:
            raise JsonLimitError(f"a number of more than {MAX_NUMBER_CHARS} characters")
        if ends_in_string:
            self.number_run = 0
        elif lead == len(marked):
            self.number_run += lead
        else:
            self.number_run = len(marked) - len(marked.rstrip(b"0"))


def _raw(data: bytes | str) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data


def check(data: bytes | str, *, numbers: bool = True) -> None:
    """Raise `JsonLimitError` if the JSON text `data` nests too deep (or, with `numbers`, holds a
    number that is too long)."""
    raw = _raw(data)
    # Cheap sufficient conditions first: few brackets cannot nest deep; no long run of number
    # characters anywhere (strings included) holds no long number.
    deep = raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
    if deep or (numbers and _LONG_RUN in raw.translate(_MARK_NUMBERS)):
        _Scan(numbers=numbers).feed(raw)


def loads(data: bytes | str) -> Any:
    """Parse one JSON text within the bounds (see the module docstring).

    orjson parses, except where it would not give what `json` gives: it refuses lone surrogates,
    NaN and Infinity, and reads an integer past 64 bits as a float. A text with a run of 20 digits
    (the shortest integer that can be past 64 bits) or that orjson refuses is checked for long
    numbers and parsed by `json`.

    Raises ValueError: `JsonLimitError` past a bound, `UnicodeDecodeError` for bytes that are not
    UTF-8, `json.JSONDecodeError` for anything else that is not JSON.
    """
    raw = _raw(data)
    check(raw, numbers=False)
    if _LONG_INTEGER not in raw.translate(_MARK_DIGITS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    check(raw)
    return json.loads(raw.decode("utf-8", "surrogatepass") if isinstance(data, str) else raw.decode("utf-8"))


class CheckedReader:
    """A binary file whose every `read` is bounds-checked first (for streaming parsers: ijson)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh, self._scan = fh, _Scan()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if data:
            self._scan.feed(data)
        return data


__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "CheckedReader", "JsonLimitError", "check", "loads"]
