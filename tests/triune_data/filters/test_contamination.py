"""`contamination`: train rows matching a test split or another dataset, named, reported or dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.triune_data.filters.dedup_fixtures import encode, photo, rows_of, sample, write_dataset
from tests.triune_data.filters.test_dedup import run
from triune_data.errors import DatasetError
from triune_data.filters.contamination import Contamination

COLUMNS = ("id", "data_source", "split", "task", "prompt", "answer")
A, B, C, D, E = (encode(photo(k)) for k in range(20, 25))


@pytest.fixture
def datasets(tmp_path: Path) -> tuple[Path, Path]:
    own = [
        sample("t0", [A], prompt="<image>Find the red circle."),
        sample("t1", [B]),
        sample("t2", [C], data_source="coco"),
        sample("t3", [D]),
        sample("t4", [], prompt="What is 2 + 2?", task="math"),
        sample("t5", [A], prompt="<image>find the RED circle.", data_source="coco"),
        sample("x0", [A], prompt="<image>Find the blue square.", split="test"),
        sample("x1", [C], split="val"),
        sample("x2", [], prompt="What is 2 + 2?", split="test", task="math"),
        sample("x3", [A], prompt="<image>find the red circle.", split="validation"),
    ]
    bench = [
        sample("e0", [encode(photo(21), quality=60)], data_source="bench", split="test"),
        sample("e1", [C], data_source="bench", split="test"),
    ]
    return write_dataset(tmp_path / "own", own, rows_per_file=3), write_dataset(tmp_path / "eval", bench)


def test_image_matches_against_test_splits_are_reported(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    own, _ = datasets
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    flt = Contamination()
    verdict = flt.apply(rows.select(*flt.columns, "_row", "_file", "_pos"), ctx)
    assert not verdict.drop.any()  # report: drops nothing
    assert verdict.facts == {
        "action": "report",
        "hits": {"coco": 2, "src": 1},
        "listed": {
            "coco": [
                {"id": "t2", "matches": "x1", "in": "split val"},
                {"id": "t5", "matches": "x0", "in": "split test"},
            ],
            "src": [{"id": "t0", "matches": "x0", "in": "split test"}],
        },
    }


def test_drop_names_the_other_sample_and_never_drops_test_rows(
    datasets: tuple[Path, Path], tmp_path: Path
) -> None:
    own, bench = datasets
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    got = run(Contamination(action="drop", against=[str(bench)]), rows, ctx)
    assert got == {
        "t0": "matches x0 in split test",
        "t1": None,  # B re-encoded in the benchmark: not the same bytes
        "t2": "matches x1 in split val",  # own test rows come before `against` rows
        "t3": None,
        "t4": None,  # no images: nothing to match by image
        "t5": "matches x0 in split test",
        "x0": None,
        "x1": None,
        "x2": None,
        "x3": None,
    }


def test_against_another_dataset_with_phash(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    own, _ = datasets
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    flt = Contamination(action="drop", against=["eval"], test_splits=[], max_hamming=6)
    # relative paths resolve against the recipe's folder (here the datasets' parent)
    got = run(flt, rows, ctx)
    assert got["t2"] == "matches e1 in eval"  # exact beats near
    assert got["t1"] is not None and got["t1"].startswith("matches e0 in eval (hamming ")
    assert got["x1"] == "matches e1 in eval"  # with no test splits, x1 (split val) is checked too
    assert {k for k, v in got.items() if v} == {"t1", "t2", "x1"}


def test_image_and_prompt_needs_both(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    own, _ = datasets
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    got = run(Contamination(action="drop", match="image_and_prompt"), rows, ctx)
    assert {k: v for k, v in got.items() if v} == {
        "t0": "matches x3 in split validation",  # x0 has the image but another question
        "t2": "matches x1 in split val",
        "t4": "matches x2 in split test",  # text-only: the prompt is the sample
        "t5": "matches x3 in split validation",
    }


def test_listing_is_bounded_but_counts_are_not(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    own, _ = datasets
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    flt = Contamination(max_listed=1)
    facts = flt.apply(rows.select(*flt.columns, "_row", "_file", "_pos"), ctx).facts
    assert facts["hits"] == {"coco": 2, "src": 1}
    assert [len(v) for v in facts["listed"].values()] == [1, 1]


def test_against_a_folder_that_is_not_a_dataset_is_one_clear_error(tmp_path: Path) -> None:
    own = write_dataset(tmp_path / "own", [sample("t0", [A])])
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    flt = Contamination(against=[str(tmp_path / "nowhere")])
    with pytest.raises(DatasetError, match="nowhere: contamination `against` needs a triune dataset"):
        flt.apply(rows.select(*flt.columns, "_row", "_file", "_pos"), ctx)


def test_phash_matching_with_nothing_to_hash(tmp_path: Path) -> None:
    own = write_dataset(
        tmp_path / "own",
        [sample("t0", [], prompt="2 + 2?", task="math"), sample("x0", ["a.png"], split="test")],
    )
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    assert run(Contamination(action="drop", max_hamming=4), rows, ctx) == {"t0": None, "x0": None}


def test_no_rows(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    own, bench = datasets
    rows, ctx = rows_of(own, tmp_path / "work", COLUMNS)
    flt = Contamination(action="drop", against=[str(bench)], max_hamming=6)
    verdict = flt.apply(rows.clear().select(*flt.columns, "_row", "_file", "_pos"), ctx)
    assert verdict.drop.len() == 0 and verdict.facts["hits"] == {}
