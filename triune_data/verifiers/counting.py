"""`counting`: an integer answer compared with an integer ground truth.

V-Triune scores counting (CLEVR, paper §5.1.1) with its math verifier on ``\\boxed{n}`` answers;
this verifier reads counts the way counting models write them: R1-V/CLEVR-style
``<answer>4</answer>``, a boxed number, "There are three cars.", or a number at the end.

Extraction (`extract`):
- ``answer_tag``: the first closed ``<answer>`` block (a ``\\boxed{}`` inside it wins);
- ``boxed``: the last top-level ``\\boxed{}``;
- ``last_number``: the last number in the completion (a number word only when there is no numeral);
- ``auto`` (default): answer_tag if there is a block, else boxed, else last_number, both on the text
  after ``</think>`` only; an unclosed ``<think>`` (a rollout cut off mid-reasoning) is no answer,
  so a truncated list of guesses does not score by its last number.

Markdown emphasis (``**3**``, ``__3__``) is removed first. Inside a block or box every number
counts: ``3``, ``3.0`` (= 3), ``1,000``, ``-2``, and the words zero to twenty. Several different
numbers there ("2 or 3", "2 red + 3 blue = 5") are no answer, so a model cannot hedge. Negative and fractional answers are wrong whatever the tolerance.
Components: ``predicted`` (1 when one number was read) and ``abs_error`` (|pred - gt|, clamped
to 1e9; -1 without a prediction). Format default: ``think_answer`` (V-Triune's math rule).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from triune_data.errors import VerifierError
from triune_data.verifiers.base import Verdict, VerifierParams, VerifyContext, register_verifier
from triune_data.verifiers.common.extract import (
    NUMBER_WORDS,
    after_think,
    answer_block,
    boxed_spans,
    last_boxed,
    strip_emphasis,
)
from triune_data.verifiers.format import FormatSpec, format_score

_MAX_ERROR = 1e9
_MAX_DIGITS = 12  # a longer numeral is not a count; int() of it would also be slow and unbounded

_NUMERAL = re.compile(r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
_GOLD = re.compile(r"\\boxed\{\s*(\d{1,12})(?:\.0+)?\s*\}|(\d{1,12})(?:\.0+)?")


class CountingParams(VerifierParams):
    format: FormatSpec = FormatSpec(mode="think_answer")
    extract: Literal["answer_tag", "boxed", "last_number", "auto"] = "auto"
    tolerance: int = Field(0, ge=0)  # |pred - gt| <= tolerance is correct


def _numerals(text: str) -> list[float]:
    out = []
    for m in _NUMERAL.finditer(text):
        sign, whole, frac = m.groups()
        digits = whole.replace(",", "")
        if len(digits) > _MAX_DIGITS:
            out.append(float("inf"))
            continue
        value = float(digits + (frac or ""))
        out.append(-value if sign else value)
    return out


def _words(text: str) -> list[float]:
    return [float(NUMBER_WORDS[m.group(1).lower()]) for m in _WORD.finditer(text)]


def _read_region(text: str) -> tuple[float | None, str]:
    """The one number a block or box states; (None, why) when it states none or several."""
    values = set(_numerals(text)) | set(_words(text))
    if not values:
        return None, "no number in the answer"
    if len(values) > 1:
        return None, "the answer states several numbers"
    return values.pop(), ""


def _read_last(text: str) -> tuple[float | None, str]:
    values = _numerals(text) or _words(text)
    return (values[-1], "") if values else (None, "no number in the completion")


def _predict(completion: str, mode: str) -> tuple[float | None, str]:
    completion = strip_emphasis(completion)  # "**3**", "__3__": Markdown, not part of the number
    block = answer_block(completion) if mode in ("answer_tag", "auto") else None
    if block is not None:
        inner = last_boxed(block)
        return _read_region(block if inner is None else inner)
    if mode == "answer_tag":
        return None, "no <answer> block"
    text = completion
    if mode == "auto":  # only what follows the reasoning; a rollout cut off mid-reasoning has no answer
        if "<think>" in completion and "</think>" not in completion:
            return None, "the reasoning never ends (truncated?)"
        text = after_think(completion)
    if mode in ("boxed", "auto") and boxed_spans(text):
        return _read_region(last_boxed(text) or "")
    if mode == "boxed":
        return None, "no \\boxed{} answer"
    return _read_last(text)


def _gold(ground_truth: str) -> int:
    m = _GOLD.fullmatch(ground_truth.strip())
    if m is None:
        raise VerifierError(f"counting: ground truth {ground_truth[:40]!r} is not a non-negative integer")
    return int(m.group(1) or m.group(2))


def check_counting_ground_truth(ground_truth: str, params: CountingParams, *, full: bool = False) -> None:
    """A count: a non-negative integer ("3", "3.0", ``\\boxed{3}``); not "many", "-1" or "2.5"."""
    _gold(ground_truth)


@register_verifier(
    "counting", params=CountingParams, tasks=("counting",), check_ground_truth=check_counting_ground_truth
)
def verify_counting(
    completion: str, ground_truth: str, params: CountingParams, ctx: VerifyContext
) -> Verdict:
    """Accuracy 1 iff the stated count is a non-negative integer within `tolerance` of the gold count."""
    gold = _gold(ground_truth)
    fmt = format_score(completion, params.format)
    pred, why = _predict(completion, params.extract)
    if pred is None:
        return Verdict(0.0, fmt, {"predicted": 0.0, "abs_error": -1.0}, message=why)
    error = min(abs(pred - gold), _MAX_ERROR)
    components = {"predicted": 1.0, "abs_error": error}
    shown = (
        "a numeral too long"
        if pred == float("inf")
        else f"{pred:.6g}"
        if not pred.is_integer()
        else str(int(pred))
    )
    if pred < 0 or not pred.is_integer():
        return Verdict(0.0, fmt, components, message=f"{shown} is not a count", prediction=shown)
    return Verdict(1.0 if error <= params.tolerance else 0.0, fmt, components, prediction=shown)
