"""Verifiers: one module each, registered by name (see `base` for the contract).

`registry.import_submodules` imports every module here except `base` and the `common` helpers.
"""

from triune_data.registry import import_submodules
from triune_data.verifiers.base import (
    GroundTruth,
    Prediction,
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
    score_item_for,
    verifier_names,
)

import_submodules(__name__)

__all__ = [
    "GroundTruth",
    "Prediction",
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
    "score_item_for",
    "verifier_names",
]
