"""difficulty_stats scored on the reward pool gives the numbers it gives in process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.triune_data.filters.test_difficulty import (  # noqa: F401  (dataset: a fixture)
    context,
    dataset,
    grounding_lines,
    load_rows,
    write_lines,
)
from triune_data.filters import difficulty
from triune_data.filters.difficulty import DifficultyStats, use_scorer
from triune_train.rewards.difficulty import use_reward_backend


def test_the_reward_pool_backend_gives_the_in_process_numbers(dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    lines = [*grounding_lines(), {"id": "s_math/train-000000", "completions": ["\\boxed{17}", "\\boxed{2}"]}]
    write_lines(tmp_path / "c.jsonl", lines)
    rows, ctx = load_rows(dataset), context(dataset, tmp_path)
    inline = DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(rows, ctx)
    previous = use_reward_backend(timeout_s=30.0)
    try:
        assert difficulty._scorer_factory is not previous
        pooled = DifficultyStats(completions="c.jsonl", model="m", workers=1).apply(
            rows, dataclasses.replace(ctx, work=tmp_path / "pool")
        )
    finally:
        use_scorer(previous)
    assert difficulty._scorer_factory is previous
    assert pooled.updates["difficulty"].to_list() == inline.updates["difficulty"].to_list()
    assert pooled.facts["by_source"] == inline.facts["by_source"]
    assert (
        inline.facts["by_source"]["s_gr"]["scored"] == 1
        and inline.facts["by_source"]["s_math"]["scored"] == 1
    )
