"""Reward computation for training: the process pool, the HTTP service, its client, `triune score`.

- `pool.RewardPool`          verifier processes with a hard per-item timeout;
- `service.serve`            FastAPI + uvicorn in front of a pool (`triune serve-rewards`);
- `client.RewardClient`      batches, load balancing, retries, deadline; `InProcessBackend` without
                             HTTP; `make_backend` picks one;
- `scoring.score_items_file`, `scoring.score_dataset`   the library side of `triune score`.

Names are imported lazily: pool workers import this package and need none of httpx or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RewardPool": "pool",
    "RewardClient": "client",
    "InProcessBackend": "client",
    "RewardBackend": "client",
    "make_backend": "client",
    "RewardServiceError": "protocol",
    "serve": "service",
    "build_app": "service",
    "score_items_file": "scoring",
    "score_dataset": "scoring",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
