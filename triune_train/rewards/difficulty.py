"""Score `triune filter`'s difficulty statistics on the reward pool or on reward services.

`difficulty_stats` (in `triune_data`, which never imports this side) scores in plain local
processes by default; `use_reward_backend` swaps in the backend `triune score` uses: the reward
pool, with its hard per-item timeout and crash recovery, or running `triune serve-rewards`
services. The CLI calls it before running a filter recipe.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from triune_data.filters.difficulty import Scorer, ScorerFactory, use_scorer
from triune_train.rewards.client import make_backend


def reward_backend_scorer(server_urls: Sequence[str] | None = None, **kwargs: Any) -> ScorerFactory:
    """A scorer factory: `workers` pool processes (or the services at `server_urls`), closed after
    the stage. Keyword arguments go to the backend (`timeout_s`, `token`, `preload`)."""

    @contextmanager
    def factory(workers: int) -> Iterator[Scorer]:
        backend = make_backend(server_urls, workers, **kwargs)
        try:
            yield backend.score
        finally:
            backend.close()

    return factory


def use_reward_backend(server_urls: Sequence[str] | None = None, **kwargs: Any) -> ScorerFactory:
    """Make difficulty_stats score on the reward backend; returns the factory in use before."""
    return use_scorer(reward_backend_scorer(server_urls, **kwargs))


__all__ = ["reward_backend_scorer", "use_reward_backend"]
