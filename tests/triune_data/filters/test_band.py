"""Difficulty phase two: the band's thresholds on hand-made `difficulty` structs, edges exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from triune_data.filters import get_filter
from triune_data.filters.band import DifficultyBand
from triune_data.filters.base import FILE, POS, ROW, Context
from triune_data.filters.difficulty import DIFFICULTY


def stats(pass_rate: float | None, mean_reward: float | None, n: int | None) -> dict[str, Any]:
    return {
        "pass_rate": pass_rate,
        "mean_reward": mean_reward,
        "num_rollouts": n,
        "model": "m",
        "metric": "x",
    }


def rows(*entries: tuple[str, str, dict[str, Any] | None]) -> pl.DataFrame:
    """(data_source, task, difficulty) rows as the runner passes them."""
    n = len(entries)
    return pl.DataFrame(
        {
            "data_source": [e[0] for e in entries],
            "task": [e[1] for e in entries],
            "difficulty": pl.Series([e[2] for e in entries], dtype=DIFFICULTY),
        }
    ).with_columns(
        pl.int_range(n, dtype=pl.UInt64).alias(ROW),
        pl.lit(0, dtype=pl.UInt32).alias(FILE),
        pl.int_range(n, dtype=pl.UInt32).alias(POS),
    )


def ctx(tmp_path: Path) -> Context:
    return Context(root=tmp_path, files=(), recipe_dir=tmp_path, seed=0, work=tmp_path / "work")


def outcome(band: DifficultyBand, table: pl.DataFrame, tmp_path: Path) -> list[tuple[bool, str | None]]:
    verdict = band.apply(table, ctx(tmp_path))
    assert verdict.detail is not None
    return list(zip(verdict.drop.to_list(), verdict.detail.to_list(), strict=True))


# (task, difficulty) -> (dropped, detail) under V-Triune's defaults.
DEFAULT_TABLE: list[tuple[str, dict[str, Any] | None, tuple[bool, str | None]]] = [
    ("math", stats(1.0, 1.0, 8), (True, "pass_rate 1.00 ≥ 1.0")),  # solved in all 8: too easy
    ("math", stats(0.875, 0.875, 8), (False, None)),
    ("math", stats(0.0, 0.0, 8), (False, None)),  # never solved: kept, as the paper writes it
    ("chart", stats(1.0, 1.0, 3), (True, "pass_rate 1.00 ≥ 1.0")),
    ("detection", stats(0.0, 2 / 16, 16), (False, None)),  # reward sum exactly 2: kept
    ("detection", stats(0.0, 10 / 16, 16), (False, None)),  # exactly 10: kept
    ("grounding", stats(0.0, 1.9 / 16, 16), (True, "reward_sum 1.90 < 2.0")),
    ("grounding", stats(0.5, 10.25 / 16, 16), (True, "reward_sum 10.25 > 10.0")),
    ("detection", stats(1.0, 0.3, 16), (False, None)),  # a box row's pass rate is not its measure
    ("math", None, (False, None)),  # unscored: kept by default
    ("detection", stats(None, None, 0), (False, None)),  # nothing scored: unscored
]


def test_the_papers_band_by_default(tmp_path: Path) -> None:
    table = rows(*[("src", task, d) for task, d, _ in DEFAULT_TABLE])
    assert outcome(DifficultyBand(), table, tmp_path) == [want for _, _, want in DEFAULT_TABLE]


def test_edges_hold_for_sums_that_floats_miss_by_an_ulp(tmp_path: Path) -> None:
    mean = sum([2 / 24] * 24) / 24  # 24 rewards summing to 2, added up naively
    assert mean * 24 < 2.0  # 1.9999999999999991: a plain comparison would drop it
    table = rows(("s", "detection", stats(0.0, mean, 24)))
    assert outcome(DifficultyBand(), table, tmp_path) == [(False, None)]


@pytest.mark.parametrize(
    ("params", "task", "difficulty", "want"),
    [
        ({"min_pass_rate": 0.2}, "math", stats(0.1, 0.1, 10), (True, "pass_rate 0.10 < 0.2")),
        ({"min_pass_rate": 0.2}, "math", stats(0.2, 0.2, 10), (False, None)),  # inclusive
        ({"max_pass_rate": 0.75}, "math", stats(0.75, 0.75, 8), (True, "pass_rate 0.75 ≥ 0.75")),
        ({"max_pass_rate": None}, "math", stats(1.0, 1.0, 8), (False, None)),
        ({"min_reward_sum": None}, "detection", stats(0.0, 0.0, 16), (False, None)),
        ({"max_reward_sum": None}, "detection", stats(1.0, 1.0, 16), (False, None)),
        ({"max_reward_sum": 4}, "grounding", stats(0.0, 0.5, 16), (True, "reward_sum 8.00 > 4.0")),
        ({"unscored": "drop"}, "math", None, (True, "no difficulty statistics")),
        ({"unscored": "drop"}, "grounding", stats(None, None, 0), (True, "no difficulty statistics")),
    ],
)
def test_parameters(
    tmp_path: Path,
    params: dict[str, Any],
    task: str,
    difficulty: dict[str, Any] | None,
    want: tuple[bool, str | None],
) -> None:
    assert outcome(DifficultyBand(**params), rows(("s", task, difficulty)), tmp_path) == [want]


def test_facts_count_each_side_per_source(tmp_path: Path) -> None:
    table = rows(
        ("a", "math", stats(1.0, 1.0, 8)),
        ("a", "math", stats(0.5, 0.5, 8)),
        ("a", "math", None),
        ("b", "detection", stats(0.0, 0.0, 16)),
        ("b", "detection", stats(0.0, 0.5, 16)),
    )
    facts = DifficultyBand().apply(table, ctx(tmp_path)).facts
    assert facts["by_source"] == {
        "a": {"in_band": 1, "too_easy": 1, "too_hard": 0, "unscored": 1},
        "b": {"in_band": 1, "too_easy": 0, "too_hard": 1, "unscored": 0},
    }
    assert (facts["pass_rate"], facts["reward_sum"], facts["unscored"]) == ([0.0, 1.0], [2.0, 10.0], "keep")


@pytest.mark.parametrize(
    "params",
    [
        {"min_pass_rate": 0.5, "max_pass_rate": 0.5},
        {"min_reward_sum": 3, "max_reward_sum": 2},
        {"max_pass_rate": 1.5},
    ],
)
def test_a_band_that_keeps_nothing_is_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DifficultyBand(**params)


def test_registered_under_its_recipe_name() -> None:
    assert get_filter("difficulty_band") is DifficultyBand
