"""`math` (alias `mathverify`): symbolic answer checking with math-verify, as V-Triune does it.

V-Triune's MathVerifyVerifier (reward_server/verify.py; paper §3.2, Eq. 3; docs/vtriune.md §3) scores math,
puzzle, science, chart, OCR and counting rows: lower-case completion and gold, parse the gold with
math-verify's default extraction, parse the completion with LaTeX extraction only (boxed answers
first, no anchor-free extraction, units normalised), accuracy = ``verify(gold, pred)``. Those are
the defaults here; each setting is a param. The format rule is Eq. 4 (``think_answer``).

Deliberate deviations, all for robustness:

- a gold answer math-verify cannot parse is status ``error`` (V-Triune scored 0; its TODO says mask);
- a gold with no LaTeX delimiters (``25\\pi``, ``50\\%``, ``new york``) is wrapped in ``\\boxed{}``
  before parsing (Orsta golds are already boxed; unboxed, math-verify reads ``50\\%`` as 50 and
  ``new york`` as nothing);
- Unicode math math-verify cannot read is rewritten as LaTeX (``°`` -> ``^{\\circ}``, which its unit
  handling removes, so GeoQA's ``140°`` equals ``140``; ``√``, ``²``, ``³``, ``∞``);
- math-verify times out with ``signal.alarm``, which only works in the main thread: its timeout is
  passed there and disabled elsewhere (the reward service enforces a hard deadline from outside);
- inputs that make the parser or sympy blow up are refused before or after parsing: brackets
  nested deeper than ``max_nesting`` (the ANTLR parser is exponential in depth: 20 nested braces
  take minutes), math segments longer than ``max_answer_chars``, and numbers with more than
  ``max_digits`` digits (``10^{10^{10}}``, ``1000000!``).

Options beyond V-Triune: ``plain_expressions`` also reads plain numbers ("The answer is 4");
``answer_block`` reads a closed ``<answer>`` block whole, as a boxed answer (R1-V's
``<answer>40.0</answer>``), so the block must hold the answer alone. With ``units`` (default),
units after a number are removed from the answer and the gold before math-verify reads them
(`common.units`: one table of Latin, superscript and Chinese units, "12cm²", ``12\\text{ cm}^{2}``,
"4πcm", "3小时", "12海里"; "60度" becomes 60°).

Failures: a refused, unparseable or timed-out completion is accuracy 0 with a message; an
exception math-verify raises on a completion is status ``error`` (its bug, counted, not scored).

Known V-Triune quirk kept: word answers become products of one-letter symbols, so an anagram of
the gold word verifies. Multiple boxes are read together (``boxed="all"``), so hedging with two
boxes yields a set that does not equal a scalar gold.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from itertools import product
from typing import TYPE_CHECKING, Any

from pydantic import Field

from triune_data.errors import VerifierError
from triune_data.verifiers.base import Verdict, VerifierParams, VerifyContext, register_verifier
from triune_data.verifiers.common.extract import (
    answer_block,
    boxed_spans,
    braces_balanced,
    last_boxed,
    nesting_depth,
    strip_emphasis,
)
from triune_data.verifiers.common.units import strip_units
from triune_data.verifiers.format import FormatSpec, format_score

if TYPE_CHECKING:
    import sympy

# sympy and math-verify take ~0.5 s to import: they load on first use, so that processes which
# only validate params (the dataset build's workers) never pay for them.


class MathParams(VerifierParams):
    """Defaults reproduce V-Triune's MathVerifyVerifier."""

    format: FormatSpec = FormatSpec(mode="think_answer")
    lowercase: bool = True  # V-Triune lower-cases completion and gold
    boxed_match_priority: int = Field(0, ge=-1)  # 0: boxed answers first; -1: ignore boxes
    try_extract_without_anchor: bool = False  # also read answers no "answer is"/\boxed introduces
    plain_expressions: bool = False  # also accept plain numbers/expressions ("The answer is 4")
    answer_block: bool = False  # read a closed <answer> block whole (else the completion, as usual)
    units: bool = True  # strip units (`common.units`: "12 cm²" == 12, "12厘米" == 12; "60度" == 60°)
    float_rounding: int = Field(6, ge=0, le=20)
    numeric_precision: int = Field(15, ge=1, le=100)
    timeout_seconds: int = Field(5, ge=1, le=60)  # math-verify's own alarm, main thread only
    max_nesting: int = Field(10, ge=1, le=16)  # parse time grows exponentially with depth
    max_answer_chars: int = Field(1000, ge=1, le=20_000)
    max_digits: int = Field(10_000, ge=1, le=1_000_000)


class _Refused(Exception):
    """An input too costly to hand to sympy."""


def _alarm(params: MathParams) -> int | None:
    return params.timeout_seconds if threading.current_thread() is threading.main_thread() else None


# Unicode math that math-verify's LaTeX parser does not read (π, ×, ÷, ≤ and − it does). Radicands get
# braces: V-Triune's normalisation (malformed_operators=False) does not read "\\sqrt 3".
_UNICODE_LATEX = str.maketrans({"°": "^{\\circ}", "√": "\\sqrt ", "²": "^{2}", "³": "^{3}", "∞": "\\infty "})
_RADICAL = re.compile(r"√\s*(?:\{([^{}]*)\}|\(([^()]*)\)|(\d+(?:\.\d+)?|[A-Za-z]))")


def _prepare(text: str, params: MathParams) -> str:
    text = strip_emphasis(text)  # "the answer is **32**" is 32, not 32**
    if params.units:
        text = strip_units(text)
    text = _RADICAL.sub(lambda m: "\\sqrt{" + "".join(g or "" for g in m.groups()) + "}", text)
    text = text.translate(_UNICODE_LATEX)
    return text.lower() if params.lowercase else text


_DELIMITED = re.compile(r"\\boxed|\\fbox|\$|\\\(|\\\[")
_MATH_DELIM = re.compile(r"\$+|\\[()\[\]]")


def _segment_lengths(text: str) -> list[int]:
    """Lengths of ``$...$``, ``\\(...\\)``, ``\\[...\\]`` segments and of all boxed answers together."""
    lengths, start = [], -1
    for m in _MATH_DELIM.finditer(text):
        opener = m.group() in ("\\(", "\\[") or (m.group()[0] == "$" and start < 0)
        if opener and start < 0:
            start = m.end()
        elif not opener and start >= 0:
            lengths.append(m.start() - start)
            start = -1
    lengths.append(sum(end - start for start, end in boxed_spans(text)))
    return lengths


def _check_text(text: str, params: MathParams) -> None:
    """Refuse text that the LaTeX parser would chew on for minutes."""
    if nesting_depth(text) > params.max_nesting:
        raise _Refused(f"brackets nested deeper than {params.max_nesting}")
    if max(_segment_lengths(text)) > params.max_answer_chars:
        raise _Refused(f"math answer longer than {params.max_answer_chars} characters")


def _digits(e: sympy.Basic) -> float:
    """Rough upper bound on the decimal digits of `e`'s value (symbols count as 1 digit)."""
    import sympy

    if isinstance(e, sympy.Integer):
        return max(1.0, e.p.bit_length() * math.log10(2))
    if isinstance(e, sympy.Rational):
        return max(1.0, max(e.p.bit_length(), e.q.bit_length()) * math.log10(2))
    if isinstance(e, sympy.Float):
        if not e.is_finite or e.is_zero:
            return 1.0
        _, man, exp, _ = e._mpf_
        return max(1.0, abs(exp + man.bit_length()) * math.log10(2))
    if isinstance(e, sympy.Pow):
        base, power = e.args
        power_digits = _digits(power)
        return math.inf if power_digits > 9 else _digits(base) * 10**power_digits
    if isinstance(e, sympy.exp):
        arg_digits = _digits(e.args[0])
        return math.inf if arg_digits > 9 else 10**arg_digits
    if isinstance(e, (sympy.factorial, sympy.factorial2, sympy.gamma)):
        n_digits = _digits(e.args[0])
        return math.inf if n_digits > 9 else 10**n_digits * n_digits
    if not e.args:
        return 1.0
    if isinstance(e, sympy.Add):
        return max(_digits(a) for a in e.args) + 1
    return sum(_digits(a) for a in e.args)  # products and anything else: conservative


def _check_values(values: Sequence[Any], params: MathParams) -> None:
    import sympy

    for v in values:
        if isinstance(v, sympy.Basic):
            try:
                digits = _digits(v)
            except RecursionError:
                raise _Refused("expression too deep") from None
            if digits > params.max_digits:
                raise _Refused(f"a number with more than {params.max_digits} digits")


def _pred_config(params: MathParams, in_block: bool) -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig
    from math_verify.parser import NormalizationConfig

    anchorless = params.try_extract_without_anchor or in_block
    norm = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=params.units
    )
    config: list[Any] = [
        LatexExtractionConfig(
            normalization_config=norm,
            boxed_match_priority=params.boxed_match_priority,
            try_extract_without_anchor=anchorless,
        )
    ]
    if params.plain_expressions:
        config.append(ExprExtractionConfig(try_extract_without_anchor=anchorless))
    return config


# GRPO scores a group of rollouts against one gold (V-Triune: 8 per prompt), and rollouts repeat
# each other's final answers: the parsed gold and each (gold, answer) verdict are cached. Parsed
# values are immutable sympy objects; sympy's == is structural (Float precision included), so a
# cache hit is the same comparison. Failures raise and are never cached.
@lru_cache(maxsize=1024)
def _gold(ground_truth: str, params: MathParams) -> tuple[Any, ...]:
    import sympy
    from math_verify import parse
    from math_verify.errors import TimeoutException

    text = _prepare(ground_truth.strip(), params)
    if not text:
        raise VerifierError("math: empty ground truth")
    if not _DELIMITED.search(text):
        text = "\\boxed{" + text + "}"
    try:
        _check_text(text, params)
        gold = parse(text, extraction_mode="first_match", parsing_timeout=_alarm(params), raise_on_error=True)
        _check_values(gold, params)
    except _Refused as exc:
        raise VerifierError(f"math: ground truth refused: {exc}") from None
    except TimeoutException:
        raise VerifierError("math: parsing the ground truth timed out") from None
    except Exception as exc:
        raise VerifierError(
            f"math: math-verify failed on the ground truth: {type(exc).__name__}: {exc}"
        ) from None
    if not any(isinstance(g, sympy.Basic | sympy.MatrixBase) for g in gold):
        # Only math-verify's raw-string fallback: comparing would be bare string equality.
        raise VerifierError(f"math: ground truth {ground_truth[:80]!r} cannot be parsed by math-verify")
    return tuple(gold)


@lru_cache(maxsize=8192)
def _equal(gold: Any, pred: Any, float_rounding: int, numeric_precision: int, timeout: int | None) -> bool:
    from math_verify import verify

    return verify(
        gold,
        pred,
        float_rounding=float_rounding,
        numeric_precision=numeric_precision,
        timeout_seconds=timeout,
        raise_on_error=True,
    )


def _verify(gold: Any, pred: Any, params: MathParams) -> bool:
    args = (params.float_rounding, params.numeric_precision, _alarm(params))
    try:
        hash((gold, pred))
    except TypeError:  # a mutable sympy matrix: compare without the cache
        return _equal.__wrapped__(gold, pred, *args)
    return _equal(gold, pred, *args)


def check_math_ground_truth(ground_truth: str, params: MathParams, *, full: bool = False) -> None:
    """A math ground truth is readable: `full` parses it with math-verify (as scoring does); the
    default, cheap check (no sympy: see `docs/decisions.md`) refuses what cannot parse whatever
    the parser: an empty answer or box, unbalanced braces (``\\frac{``), nesting or length past
    the parser's limits."""
    if full:
        _gold(ground_truth, params)
    else:
        _check_gold_text(ground_truth, params)


@lru_cache(maxsize=4096)  # a GRPO group's rollouts share their gold
def _check_gold_text(ground_truth: str, params: MathParams) -> None:
    text = _prepare(ground_truth.strip(), params)
    boxed = last_boxed(text)
    if not text or (boxed is not None and not boxed.strip()):
        raise VerifierError(f"math: empty ground truth {ground_truth[:80]!r}")
    if not braces_balanced(text):
        raise VerifierError(f"math: ground truth {ground_truth[:80]!r} has unbalanced braces")
    try:
        _check_text(text, params)
    except _Refused as exc:
        raise VerifierError(f"math: ground truth refused: {exc}") from None


@register_verifier(
    "math",
    params=MathParams,
    aliases=("mathverify",),
    tasks=("math", "puzzle", "science", "chart", "counting", "ocr"),  # V-Triune scored all six with it
    check_ground_truth=check_math_ground_truth,
)
def verify_math(completion: str, ground_truth: str, params: MathParams, ctx: VerifyContext) -> Verdict:
    """Accuracy 1 iff math-verify finds the completion's answer equal to the gold answer."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    fmt = format_score(completion, params.format)
    gold = _gold(ground_truth, params)

    block = answer_block(completion) if params.answer_block else None
    text = _prepare(completion if block is None else block.strip(), params)
    if block is not None and not _DELIMITED.search(text):
        text = "\\boxed{" + text + "}"  # the block is the answer: read all of it, like a plain gold
    try:
        _check_text(text, params)
        pred = parse(
            text,
            extraction_config=_pred_config(params, block is not None),
            extraction_mode="first_match",
            parsing_timeout=_alarm(params),
            raise_on_error=True,
        )
        _check_values(pred, params)
    except _Refused as exc:
        return Verdict(0.0, fmt, {"predicted": 0.0}, message=f"completion refused: {exc}")
    except TimeoutException:
        return Verdict(0.0, fmt, {"predicted": 0.0}, message="parsing the completion timed out")
    except Exception as exc:  # a math-verify failure, not the model's: count it, do not score it
        return Verdict(
            0.0,
            fmt,
            status="error",
            message=f"math-verify failed on the completion: {type(exc).__name__}: {exc}",
        )
    if not pred:
        return Verdict(0.0, fmt, {"predicted": 0.0}, message="no answer found")
    shown = _shown(pred)

    # verify() is any() over (gold, pred) pairs; going pair by pair keeps that and names failures.
    notes = []
    for g, p in product(gold, pred):
        try:
            if _verify(g, p, params):
                return Verdict(1.0, fmt, {"predicted": 1.0}, prediction=shown)
        except TimeoutException:
            notes.append("comparison timed out")
        except Exception as exc:  # sympy could not compare these two: math-verify counts it as unequal
            notes.append(f"comparison failed ({type(exc).__name__})")
    return Verdict(0.0, fmt, {"predicted": 1.0}, message="; ".join(dict.fromkeys(notes)), prediction=shown)


def _shown(pred: Sequence[Any]) -> str:
    """The answer text math-verify extracted (it returns the parsed values, then that string)."""
    text = next((p for p in reversed(pred) if isinstance(p, str)), None)
    return text if text is not None else str(pred[0])[:1000]
