"""The reward service's wire protocol: one batch of items in, one result per item out, in order.

``POST /v1/score`` takes ``{"items": [Item, ...]}`` and answers ``{"results": [Result, ...]}``.
V-Triune's server (paper §3.2; docs/vtriune.md §2) scored one sample per request, took verifier params as a JSON
*string* and answered errors with all-zero rewards; here a request is a batch, params are a JSON
object validated by the verifier, and every failure is a result with ``status`` error/timeout.

Items and results themselves are defined (and validated, and described by JSON Schemas) in
`triune_data.verifiers.common.wire`; this module holds what is the service's own: the version,
limits, the token variable and the response encoder.
"""

from __future__ import annotations

import orjson

from triune_data.errors import TriuneError
from triune_data.verifiers.base import RewardResult
from triune_data.verifiers.common.wire import result_to_wire

PROTOCOL_VERSION = "v1"
MAX_ITEMS = 4096
MAX_BODY_BYTES = 64 * 1024 * 1024
TOKEN_ENV = "TRIUNE_REWARD_TOKEN"  # bearer token shared by server and clients, if set


class RewardServiceError(TriuneError):
    """The reward service cannot be used at all (workers fail to start, bad token, bad URL)."""


def encode_results(results: list[RewardResult]) -> bytes:
    """The response body of `POST /v1/score` (orjson: the hot path of the server)."""
    return orjson.dumps({"results": [result_to_wire(r) for r in results]})
