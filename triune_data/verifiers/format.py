"""Format rewards: V-Triune's tag checks, configurable, plus a format-only verifier.

V-Triune (reward_server/verify.py) uses two rules, both newline-sensitive:

- ``think_answer`` (paper Eq. 4, math): 0.25 for each of ``"<think>\\n"``, ``"\\n</think>\\n"``,
  ``"\\n<answer>\\n"`` and ``"\\n</answer>"`` occurring exactly once;
- ``answer_block`` (detection): 1 iff ``"\\n<answer>\\n"`` occurs and ``"\\n</answer>"`` occurs exactly
  once; the detection verifier additionally requires the block to parse into at least one box.

``strict_newlines=False`` accepts any whitespace (or none) around the tags, which is what models
trained with other prompts emit. ``boxed`` gives 1 iff a ``\\boxed{...}`` is present; ``none`` gives 0.
"""

from __future__ import annotations

from typing import Literal

from triune_data.verifiers.base import (
    GroundTruth,
    Verdict,
    VerifierParams,
    VerifyContext,
    register_verifier,
)
from triune_data.verifiers.common.extract import answer_block

FormatMode = Literal["think_answer", "answer_block", "boxed", "none"]


class FormatSpec(VerifierParams):
    """Which format rule a verifier applies (only matters when the sample's format weight > 0)."""

    mode: FormatMode = "think_answer"
    strict_newlines: bool = True


def _count(text: str, tag: str, strict: bool, before: bool, after: bool) -> int:
    if strict:
        return text.count(("\n" if before else "") + tag + ("\n" if after else ""))
    return text.count(tag)


def format_score(completion: str, spec: FormatSpec) -> float:
    """Score the tag layout of `completion` in [0, 1] under `spec`."""
    s, strict = completion, spec.strict_newlines
    if spec.mode == "none":
        return 0.0
    if spec.mode == "boxed":
        return 1.0 if "\\boxed{" in s else 0.0
    if spec.mode == "answer_block":
        opened = _count(s, "<answer>", strict, True, True) >= 1
        closed = _count(s, "</answer>", strict, True, False) == 1
        return 1.0 if opened and closed else 0.0
    checks = (
        _count(s, "<think>", strict, False, True) == 1,
        _count(s, "</think>", strict, True, True) == 1,
        _count(s, "<answer>", strict, True, True) == 1,
        _count(s, "</answer>", strict, True, False) == 1,
    )
    return 0.25 * sum(checks)


class FormatOnlyParams(VerifierParams):
    format: FormatSpec = FormatSpec()


@register_verifier("format", params=FormatOnlyParams)
def verify_format(
    completion: str, ground_truth: GroundTruth, params: FormatOnlyParams, ctx: VerifyContext
) -> Verdict:
    """A format-only reward: accuracy is the format score (ground truth unused).

    The prediction is the answer block, when the completion has a closed one.
    """
    score = format_score(completion, params.format)
    return Verdict(accuracy=score, format=score, prediction=answer_block(completion))
