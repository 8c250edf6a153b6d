"""`duplicate` and `sample_weight`: exact copies and weights on hand-made rows."""

import pytest
from pydantic import ValidationError

from triune_data.filters.duplicate import Duplicate
from triune_data.filters.sample_weight import SampleWeight

from .helpers import context, rows


def test_duplicate_doubles_puzzle_rows_by_default(tmp_path):
    df = rows(id=["p/1", "p/2"], task=["puzzle", "puzzle"])
    v = Duplicate().apply(df, context(tmp_path))
    assert Duplicate().tasks == ["puzzle"]
    assert v.copies is not None and v.copies.to_list() == [2, 2]
    assert not v.drop.any()
    assert v.facts == {"factor": 2, "copied": 2}


def test_duplicate_is_idempotent_on_ids_with_copies(tmp_path):
    # p/1 was copied by an earlier run (p/1~1 exists); p/2 was not; a row named x~1 alone is a copy.
    df = rows(id=["p/1", "p/1~1", "p/2", "q~1"], task=["puzzle"] * 4)
    v = Duplicate(factor=3).apply(df, context(tmp_path))
    assert v.copies is not None and v.copies.to_list() == [1, 1, 3, 1]
    assert v.facts["copied"] == 1


def test_duplicate_factor_one_copies_nothing(tmp_path):
    v = Duplicate(factor=1).apply(rows(id=["a"], task=["puzzle"]), context(tmp_path))
    assert v.copies is not None and v.copies.to_list() == [1]
    assert v.facts["copied"] == 0


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"weight": 2.0}, [2.0, 2.0]), ({"weight": 0.5, "mode": "multiply"}, [0.5, 1.5])],
)
def test_sample_weight_sets_or_multiplies(params, expected, tmp_path):
    v = SampleWeight(**params).apply(rows(sample_weight=[1.0, 3.0]), context(tmp_path))
    assert v.updates["sample_weight"].to_list() == expected
    assert not v.drop.any()


@pytest.mark.parametrize("bad", [{"weight": 0}, {"weight": float("inf")}, {"weight": 1, "mode": "add"}, {}])
def test_sample_weight_rejects_bad_params(bad):
    with pytest.raises(ValidationError):
        SampleWeight(**bad)


@pytest.mark.parametrize("params", [{"filter": "duplicate"}, {"filter": "sample_weight", "weight": 2}])
def test_an_empty_batch_gives_an_empty_verdict(params, tmp_path):
    from triune_data.filters import get_filter

    name = params.pop("filter")
    v = (
        get_filter(name)
        .model_validate(params)
        .apply(rows(id=["a"], task=["puzzle"], sample_weight=[1.0]).head(0), context(tmp_path))
    )
    assert len(v.drop) == 0
    assert all(len(s) == 0 for s in [*v.updates.values(), *([v.copies] if v.copies is not None else [])])
