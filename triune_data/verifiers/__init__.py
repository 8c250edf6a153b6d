"""Verifiers: one module each, registered by name (see `base` for the contract)."""

from triune_data.registry import import_submodules
from triune_data.verifiers.base import (
    GroundTruth,
    RewardResult,
    ScoreItem,
    Verdict,
    VerifierParams,
    VerifyContext,
    combine,
    get_verifier,
    params_json,
    parse_params,
    register_verifier,
    score,
    verifier_names,
)

import_submodules(__name__)

__all__ = [
    "GroundTruth",
    "RewardResult",
    "ScoreItem",
    "Verdict",
    "VerifierParams",
    "VerifyContext",
    "combine",
    "get_verifier",
    "params_json",
    "parse_params",
    "register_verifier",
    "score",
    "verifier_names",
]
