"""`mcq`: multiple choice, answered by option label ("B") or by option text.

V-Triune has no multiple-choice verifier: it drops MC and true/false questions because they are
easy to hack (paper §5.1.1.1). This verifier makes them usable with one anti-hacking rule: an
answer that names more than one option ("A or B", "A, B, C, D") scores 0.

Params: `options` (2 to 26 distinct option texts, in order) and optional `labels` (default A, B,
C, ...). Ground truth: a label ("B", "(B)", ``\\boxed{B}``) or an option's text; one that names no
option is an error (caught at build time by `check_mcq_ground_truth`).

Labels first: a ground truth or an answer that is exactly a label is read as that label, even when
some option's text is also that string (options "(a)" ... "(e)", or a letter that is an option:
with options ["B", "A"], "A" is label A, the option "B"); only otherwise is it matched against
the option texts. Options are distinct after normalisation, so every ground truth resolves to
one option or to none, never to several.

Where the answer is read: in the first closed ``<answer>`` block, else after ``</think>`` (the whole
completion without one), these candidates in order, the first that names any option deciding:
the last ``\\boxed{}``; the sentence after each "answer is" / "answer:" / "option is" / "choice is"
(last first: "The answer is B. BECAUSE: ...", "The correct answer is **(C) 145°**."); the whole
block, or without a block the whole text only when it is one short line ("B", "(B) 145°"): longer
prose mentions options it rejects ("∠C = 85°" names C).
What a candidate names: the option it is exactly (labels first), else every option text it
contains (longer texts first, each blanked once read, so "sample A" is not also label A; texts that
are a label's string, such as "A" or "(a)", are left to the labels) plus every label written as a
standalone token (single letters in upper case only, so the article "a" is not option A; with nine
or more options the pronoun "I" is, a known limit). Exactly one named option is the answer; a
candidate naming several ends the search with accuracy 0.
Components: ``predicted`` (one option named) and ``ambiguous`` (several named).
Format default: ``think_answer`` (V-Triune's math rule).
"""

from __future__ import annotations

import re
import string

from pydantic import Field, model_validator

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

_MAX_BARE_CHARS = 50  # an unanchored completion longer than this (or multi-line) is prose, not an answer
_MAX_PHRASES = 8  # "answer is" phrases looked at, last first
_PHRASE = re.compile(
    r"\b(?:answer|option|choice)s?\s*(?:is|would\s+be|should\s+be|will\s+be|=|:|：)\s*(?:option|choice)?\s*:?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\n|[.!?;。](?=\s|$)")


class McqParams(VerifierParams):
    format: FormatSpec = FormatSpec(mode="think_answer")
    options: list[str] = Field(min_length=2, max_length=26)
    labels: list[str] | None = None  # default: A, B, C, ...

    @model_validator(mode="after")
    def _check(self) -> McqParams:
        texts = [normalize_text(o) for o in self.options]
        if not all(texts):
            raise ValueError("options must not be empty")
        if len(set(texts)) != len(texts):
            raise ValueError("options must be distinct (after case and punctuation are normalised)")
        if self.labels is not None:
            if len(self.labels) != len(self.options):
                raise ValueError("labels and options must have the same length")
            keys = [normalize_text(label) for label in self.labels]
            if any(not k or len(k) > 8 for k in keys) or len(set(keys)) != len(keys):
                raise ValueError("labels must be distinct, non-empty and at most 8 characters")
        return self

    def label_list(self) -> list[str]:
        return self.labels if self.labels is not None else list(string.ascii_uppercase[: len(self.options)])


def _candidates(completion: str) -> list[str]:
    """The parts of the completion that may state the answer, most authoritative first."""
    block = answer_block(completion)
    text = after_think(completion) if block is None else block
    out = []
    boxed = last_boxed(text)
    if boxed is not None:
        out.append(boxed)
    for m in list(_PHRASE.finditer(text))[::-1][:_MAX_PHRASES]:
        end = _SENTENCE_END.search(text, m.end())
        out.append(text[m.end() : len(text) if end is None else end.start()])
    bare = text.strip()
    if block is not None or (len(bare) <= _MAX_BARE_CHARS and "\n" not in bare):
        out.append(text)
    return out


def _label_pattern(label: str) -> re.Pattern[str]:
    flags = 0 if len(label) == 1 and label.isalpha() else re.IGNORECASE
    return re.compile(r"(?<![^\W_])" + re.escape(label) + r"(?![^\W_])", flags)


def _named(region: str, params: McqParams) -> set[int]:
    """Indices of the options that `region` names."""
    text = normalize_text(strip_latex_text(strip_emphasis(region)), case_sensitive=True)
    folded = text.casefold()
    options = [normalize_text(o) for o in params.options]
    labels = params.label_list()
    exact = _exactly(folded, params)
    if exact is not None:
        return {exact}
    found = set()
    label_keys = {normalize_text(label) for label in labels}
    for i in sorted(range(len(options)), key=lambda i: -len(options[i])):
        if options[i] in label_keys:
            continue  # an option text that is a label's string is read as that label (labels first)
        # Blank each option text found, so that neither a shorter option inside it ("red" in "dark red")
        # nor a letter in it ("A" in "sample A") is read again as another option.
        pattern = r"(?<![^\W_])" + re.escape(options[i]) + r"(?![^\W_])"
        text, hits = re.subn(pattern, " ", text, flags=re.IGNORECASE)
        if hits:
            found.add(i)
    return found | {i for i, label in enumerate(labels) if _label_pattern(label).search(text)}


def _exactly(text: str, params: McqParams) -> int | None:
    """The option that normalised `text` is exactly: a label first, else an option text."""
    for keys in (params.label_list(), params.options):
        for i, key in enumerate(keys):
            if normalize_text(key) == text:
                return i
    return None


def _gold(ground_truth: str, params: McqParams) -> int:
    """The gold option: a label, else an option text, exactly (after normalisation)."""
    gold = _exactly(normalize_text(strip_latex_text(last_boxed(ground_truth) or ground_truth)), params)
    if gold is None:
        raise VerifierError(f"mcq: ground truth {ground_truth[:40]!r} matches no option text or label")
    return gold


def check_mcq_ground_truth(ground_truth: str, params: McqParams, *, full: bool = False) -> None:
    """The ground truth names one of the options, by label or by text."""
    _gold(ground_truth, params)


@register_verifier(
    "mcq",
    params=McqParams,
    tasks=("math", "puzzle", "science", "chart"),
    check_ground_truth=check_mcq_ground_truth,
)
def verify_mcq(completion: str, ground_truth: str, params: McqParams, ctx: VerifyContext) -> Verdict:
    """Accuracy 1 iff the answer names exactly one option and it is the gold one."""
    gold = _gold(ground_truth, params)
    fmt = format_score(completion, params.format)
    named: set[int] = set()
    for region in _candidates(completion):
        named = _named(region, params)
        if named:
            break
    if not named:
        return Verdict(
            0.0, fmt, {"predicted": 0.0, "ambiguous": 0.0}, message="no option found in the answer"
        )
    names = ", ".join(params.label_list()[i] for i in sorted(named))  # what the answer names, as labels
    if len(named) > 1:
        message = f"answer names several options ({names})"
        return Verdict(0.0, fmt, {"predicted": 0.0, "ambiguous": 1.0}, message=message, prediction=names)
    accuracy = 1.0 if named == {gold} else 0.0
    return Verdict(accuracy, fmt, {"predicted": 1.0, "ambiguous": 0.0}, prediction=names)
