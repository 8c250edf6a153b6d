"""Bounded JSON: depth and number length are refused before parsing, the same whole or streamed."""

from __future__ import annotations

import io
import json
import math
import random
import re

import pytest

from triune_data import safe_json
from triune_data.safe_json import MAX_DEPTH, MAX_NUMBER_CHARS, CheckedReader, JsonLimitError, check, loads

DEEP = 100_000


def nest(depth: int, opener: str = "[", inner: str = "") -> str:
    closer = {"[": "]", "{": "}"}
    if opener == "{":
        return '{"a":' * depth + (inner or "1") + "}" * depth
    return opener * depth + inner + closer[opener] * depth


# Texts past a bound, by pattern: every way a document can nest or a number can grow.
TOO_DEEP = {
    "arrays-100k": nest(DEEP),
    "objects-100k": nest(DEEP, "{"),
    "arrays-at-limit+1": nest(MAX_DEPTH + 1),
    "objects-at-limit+1": nest(MAX_DEPTH + 1, "{"),
    "mixed": '[{"a": ' * 60 + "1" + "}]" * 60,
    "deep-field-of-a-record": '{"id": 1, "gt": ' + nest(50_000) + "}",
    "deep-after-strings-with-brackets": '["]]]]", "\\"]]"' + ", " + nest(MAX_DEPTH) + "]",
    "deep-inside-a-list-of-records": "[" + "{}, " * 1000 + nest(MAX_DEPTH) + "]",
    "unclosed-deep": "[" * DEEP,
}
TOO_LONG = {
    "integer-5000-digits": "1" * 5000,
    "negative-integer": "-" + "9" * MAX_NUMBER_CHARS,
    "float-fraction": "0." + "3" * MAX_NUMBER_CHARS,
    "float-exponent": "1." + "0" * 600 + "e" + "1" * 600,
    "in-an-array": "[1, 2, " + "7" * (MAX_NUMBER_CHARS + 1) + "]",
    "as-a-value": '{"bbox": [10, 20, 8, ' + "1" * 4301 + "]}",
}
WITHIN = {
    "at-depth-limit": nest(MAX_DEPTH),
    "objects-at-depth-limit": nest(MAX_DEPTH, "{"),
    "brackets-in-strings": '{"a": "' + "[" * DEEP + '"}',
    "escaped-quotes-and-brackets": '["\\"[[[[", "\\\\", "]]]\\"", ' + nest(MAX_DEPTH - 1) + "]",
    "number-at-limit": "1" * MAX_NUMBER_CHARS,
    "digits-in-a-string": '"' + "9" * 5000 + '"',
    "wide-and-shallow": "[" + ", ".join(["[1, 2]"] * 20_000) + "]",
}


@pytest.mark.parametrize("text", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_deep_nesting_is_refused_whole_and_streamed(text):
    with pytest.raises(JsonLimitError, match=f"deeper than {MAX_DEPTH}"):
        check(text)
    with pytest.raises(JsonLimitError, match=f"deeper than {MAX_DEPTH}"):
        loads(text.encode())
    reader = CheckedReader(io.BytesIO(text.encode()))
    with pytest.raises(JsonLimitError):
        while reader.read(997):
            pass


@pytest.mark.parametrize("text", TOO_LONG.values(), ids=TOO_LONG.keys())
def test_long_numbers_are_refused_whole_and_streamed(text):
    with pytest.raises(JsonLimitError, match=f"more than {MAX_NUMBER_CHARS} characters"):
        check(text)
    with pytest.raises(JsonLimitError):
        loads(text.encode())  # orjson refuses it first; the fallback checks before `json` converts
    reader = CheckedReader(io.BytesIO(text.encode()))
    with pytest.raises(JsonLimitError):
        while reader.read(61):
            pass


@pytest.mark.parametrize("text", WITHIN.values(), ids=WITHIN.keys())
def test_texts_within_the_bounds_parse_as_json_parses_them(text):
    check(text)
    assert loads(text.encode()) == json.loads(text)
    reader = CheckedReader(io.BytesIO(text.encode()))
    while reader.read(13):
        pass


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"a": "\\ud800"}', {"a": "\ud800"}),  # a lone surrogate: kept for the adapter to reject
        (b'{"a": NaN}', {"a": math.nan}),
        (b'{"a": -Infinity}', {"a": -math.inf}),
        (b'{"a": 123456789012345678901234567890}', {"a": 123456789012345678901234567890}),
    ],
    ids=["lone-surrogate", "nan", "infinity", "integer-past-64-bits"],
)
def test_what_orjson_refuses_falls_back_to_json(raw, expected):
    got = loads(raw)
    if isinstance(expected["a"], float) and math.isnan(expected["a"]):
        assert math.isnan(got["a"])
    else:
        assert got == expected


@pytest.mark.parametrize(
    "raw, error",
    [(b"\xff\xfe{}", UnicodeDecodeError), (b"{not json", json.JSONDecodeError), (b"", json.JSONDecodeError)],
    ids=["not-utf8", "broken", "empty"],
)
def test_errors_are_value_errors(raw, error):
    with pytest.raises(error):
        loads(raw)
    assert issubclass(error, ValueError) and issubclass(JsonLimitError, ValueError)


def _random_doc(rng: random.Random, depth: int) -> object:
    k = rng.random()
    if depth and k < 0.35:
        return [_random_doc(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    if depth and k < 0.55:
        keys = ["a", 'b"c', "[{", "\\", 'x\\"]', "\u00e9"]
        return {rng.choice(keys): _random_doc(rng, depth - 1) for _ in range(rng.randint(0, 3))}
    if k < 0.75:
        return rng.choice(["[[[", "]]}", "a\\b", '"', '\\"[', "9" * 1500, "\u00e9\\"])
    return rng.choice([1, 2.5, -3e10, 10 ** rng.randint(1, 1200)])


def _depth(v: object) -> int:
    if isinstance(v, dict | list):
        children = v.values() if isinstance(v, dict) else v
        return 1 + max(map(_depth, children), default=0)
    return 0


def _longest_number(text: str) -> int:
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)
    return max(map(len, re.findall(r"[-+.eE0-9]+", outside)), default=0)


def test_the_check_agrees_with_the_parsed_value_on_random_documents():
    """Whole and in pieces of any size, the scanner refuses exactly the documents that are too deep
    or hold too long a number (strings, escapes and piece boundaries included)."""
    rng = random.Random(8)
    for _ in range(400):
        doc = _random_doc(rng, rng.randint(0, MAX_DEPTH + 8))
        text = json.dumps(doc)
        refused = _depth(doc) > MAX_DEPTH or _longest_number(text) > MAX_NUMBER_CHARS
        deep = _depth(doc) > MAX_DEPTH
        try:
            check(text, numbers=False)
        except JsonLimitError:
            assert deep, text[:200]
        else:
            assert not deep, text[:200]
        for piece in (None, 1, rng.randint(2, 9), 4096):
            try:
                if piece is None:
                    check(text)
                else:
                    reader = CheckedReader(io.BytesIO(text.encode()))
                    while reader.read(piece):
                        pass
            except JsonLimitError:
                assert refused, (piece, text[:200])
            else:
                assert not refused, (piece, text[:200])


def test_the_module_has_one_bound_of_each_kind():
    assert (safe_json.MAX_DEPTH, safe_json.MAX_NUMBER_CHARS) == (100, 1000)
