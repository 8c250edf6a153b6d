"""`ocr`: normalised exact match against any accepted answer, with ANLS as a component.

V-Triune scores OCR QA (LLaVA-OV OCR, EST-VQA) with its math verifier, so its OCR labels had to be
math_verify-verifiable (paper §5.1.1.1). This verifier compares text as text: TextVQA/EST-VQA
style answers ("STOP", "Coca-Cola", "555-1234") against the ground truth plus `alternatives`.

Answer extraction: the first closed ``<answer>`` block, else the text after ``</think>`` (the whole
completion without one); in it the last ``\\boxed{}`` wins; Markdown emphasis (``**STOP**``) and
``\\text{}``-style wrappers are removed. Boxed ground truths (Orsta style) are unboxed the same way.

Normalisation (`_extract.normalize_text`): Unicode NFKC, case-fold unless `case_sensitive`,
whitespace collapsed, surrounding quotes, brackets, markdown emphasis and sentence punctuation
stripped (signs, %, $ and # are kept); `remove_punctuation` drops all punctuation.

Components: ``exact`` (1 if the normalised answer equals a normalised accepted answer) and
``anls`` (max over accepted answers of 1 - normalised Levenshtein distance, 0 when that distance
is >= `anls_threshold`; Biten et al. 2019, ST-VQA). Accuracy is ``exact`` by default, ``anls``
with ``accuracy="anls"``. Format default: ``think_answer`` (V-Triune's math rule, weight 0 there).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from triune_data.errors import VerifierError
from triune_data.verifiers.base import Verdict, VerifierParams, VerifyContext, register_verifier
from triune_data.verifiers.common.extract import (
    after_think,
    answer_block,
    last_boxed,
    normalize_text,
    strip_emphasis,
    strip_latex_text,
)
from triune_data.verifiers.format import FormatSpec, format_score


class OcrParams(VerifierParams):
    format: FormatSpec = FormatSpec(mode="think_answer")
    alternatives: list[str] = Field(default_factory=list, max_length=100)  # more accepted answers
    case_sensitive: bool = False
    remove_punctuation: bool = False
    anls_threshold: float = Field(0.5, gt=0, le=1)
    accuracy: Literal["exact", "anls"] = "exact"
    max_answer_chars: int = Field(4096, ge=1, le=65_536)  # longer answers are not compared by ANLS


def levenshtein(a: str, b: str) -> int:
    """Edit distance (unit costs) with Hyyrö's bit-parallel algorithm: O(len(b)) big-integer steps."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    m = len(b)  # columns of the DP are bits of Python ints
    full, top = (1 << m) - 1, 1 << (m - 1)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    pv, mv, dist = full, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        if ph & top:
            dist += 1
        elif mh & top:
            dist -= 1
        ph = (ph << 1) | 1
        mh <<= 1
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv & full
    return dist


def anls(pred: str, gold: str, threshold: float) -> float:
    """1 - normalised edit distance, or 0 when that distance reaches `threshold`."""
    longest = max(len(pred), len(gold))
    if longest == 0:
        return 1.0
    if (longest - min(len(pred), len(gold))) / longest >= threshold:
        return 0.0  # the length difference alone puts the distance past the threshold
    nld = levenshtein(pred, gold) / longest
    return 0.0 if nld >= threshold else 1.0 - nld


def extract_answer(completion: str) -> str:
    block = answer_block(completion)
    region = after_think(completion) if block is None else block
    boxed = last_boxed(region)
    return strip_latex_text(strip_emphasis(region if boxed is None else boxed))


def _norm(s: str, params: OcrParams) -> str:
    return normalize_text(
        s, case_sensitive=params.case_sensitive, remove_punctuation=params.remove_punctuation
    )


def _accepted(ground_truth: str, params: OcrParams) -> list[str]:
    """The normalised accepted answers: the ground truth and the `alternatives`."""
    accepted = []
    for answer in (ground_truth, *params.alternatives):
        boxed = last_boxed(answer)  # Orsta golds are boxed
        normalized = _norm(strip_latex_text(answer if boxed is None else boxed), params)
        if not normalized:
            raise VerifierError(f"ocr: accepted answer {answer[:40]!r} is empty after normalisation")
        accepted.append(normalized)
    return accepted


def check_ocr_ground_truth(ground_truth: str, params: OcrParams, *, full: bool = False) -> None:
    """Every accepted answer has text left after normalisation (not "", "**" or "?")."""
    _accepted(ground_truth, params)


@register_verifier("ocr", params=OcrParams, tasks=("ocr", "chart"), check_ground_truth=check_ocr_ground_truth)
def verify_ocr(completion: str, ground_truth: str, params: OcrParams, ctx: VerifyContext) -> Verdict:
    """Accuracy: exact match (or ANLS) of the extracted answer against the accepted answers."""
    accepted = _accepted(ground_truth, params)
    fmt = format_score(completion, params.format)
    pred = _norm(extract_answer(completion), params)
    if not pred:
        return Verdict(0.0, fmt, {"exact": 0.0, "anls": 0.0}, message="no answer found")
    exact = 1.0 if pred in accepted else 0.0
    comparable = [a for a in accepted if max(len(a), len(pred)) <= params.max_answer_chars]
    score = 1.0 if exact else max((anls(pred, a, params.anls_threshold) for a in comparable), default=0.0)
    message = "" if exact or comparable else f"answer longer than {params.max_answer_chars} characters"
    accuracy = exact if params.accuracy == "exact" else score
    return Verdict(accuracy, fmt, {"exact": exact, "anls": score}, message=message, prediction=pred)
