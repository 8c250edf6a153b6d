"""`source_cap` and `task_cap`: exact drops, a seeded and stable choice, idempotent."""

import polars as pl
import pytest

from triune_data.filters.caps import seeded_rank_key
from triune_data.filters.source_cap import SourceCap
from triune_data.filters.task_cap import TaskCap

from .helpers import context, rows

IDS = [f"a/{i}" for i in range(6)] + ["b/0", "b/1"]


def batch() -> pl.DataFrame:
    return rows(
        id=IDS,
        data_source=["a"] * 6 + ["b"] * 2,
        task=["math", "math", "math", "puzzle", "puzzle", "puzzle", "math", "math"],
        split=["train", "train", "train", "train", "test", "test", "train", "train"],
    )


def kept_ids(df: pl.DataFrame, drop: pl.Series) -> list[str]:
    return df.filter(~drop)["id"].to_list()


def smallest(ids: list[str], n: int, seed: int) -> list[str]:
    keys = seeded_rank_key(pl.Series(ids), seed).to_list()
    return sorted(sorted(ids, key=lambda i: keys[ids.index(i)])[:n])


def test_source_cap_keeps_the_seeded_smallest_per_source(tmp_path):
    df = batch()
    v = SourceCap(max_rows=3).apply(df, context(tmp_path, seed=5))
    a_kept = [i for i in kept_ids(df, v.drop) if i.startswith("a/")]
    assert a_kept == smallest(IDS[:6], 3, 5)
    assert kept_ids(df, v.drop)[-2:] == ["b/0", "b/1"]  # b is under the cap
    assert int(v.drop.sum()) == 3
    assert v.detail is not None
    assert set(v.detail.filter(v.drop).to_list()) == {"cap 3 of 6"}
    assert v.facts == {"max_rows": 3, "groups_capped": 1}


def test_source_cap_per_split(tmp_path):
    df = batch()
    v = SourceCap(max_rows=1, per_split=True).apply(df, context(tmp_path))
    kept = df.filter(~v.drop)
    assert sorted(kept.select("data_source", "split").rows()) == [
        ("a", "test"),
        ("a", "train"),
        ("b", "train"),
    ]
    assert int(v.drop.sum()) == 5


def test_task_cap_groups_by_task(tmp_path):
    df = batch()
    v = TaskCap(max_rows=2).apply(df, context(tmp_path, seed=1))
    kept = df.filter(~v.drop)
    assert kept.group_by("task").len().sort("task").rows() == [("math", 2), ("puzzle", 2)]
    assert set(v.detail.filter(v.drop).to_list()) == {"cap 2 of 5", "cap 2 of 3"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "cap", [SourceCap.model_validate({"max_rows": 3}), TaskCap.model_validate({"max_rows": 2})]
)
def test_a_cap_is_stable_and_idempotent(cap, tmp_path):
    df = batch()
    first = cap.apply(df, context(tmp_path, seed=9))
    again = cap.apply(df, context(tmp_path, seed=9))
    assert first.drop.to_list() == again.drop.to_list()
    kept = df.filter(~first.drop)
    assert not cap.apply(kept, context(tmp_path, seed=9)).drop.any()


def test_the_seed_changes_the_choice(tmp_path):
    df = rows(id=[f"x/{i}" for i in range(50)], data_source=["x"] * 50, split=["train"] * 50)
    choices = {
        tuple(SourceCap(max_rows=10).apply(df, context(tmp_path, seed=s)).drop.to_list()) for s in range(4)
    }
    assert len(choices) > 1


def test_a_cap_of_zero_drops_the_group_and_an_empty_batch_is_fine(tmp_path):
    df = batch()
    assert SourceCap(max_rows=0).apply(df, context(tmp_path)).drop.all()
    empty = df.head(0)
    assert len(SourceCap(max_rows=0).apply(empty, context(tmp_path)).drop) == 0
