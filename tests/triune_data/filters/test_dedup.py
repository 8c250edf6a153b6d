"""`exact_dedup`: same image bytes (or path) and normalised prompt keep the first row only."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.triune_data.filters.dedup_fixtures import encode, photo, rows_of, sample, write_dataset
from triune_data.filters import image_keys
from triune_data.filters.base import Context, Filter
from triune_data.filters.dedup import ExactDedup

COLUMNS = ("id", "data_source", "split", "prompt", "answer")


def run(flt: Filter, rows: pl.DataFrame, ctx: Context) -> dict[str, str | None]:
    """id -> detail for dropped rows, None for kept ones."""
    verdict = flt.apply(rows.select(*flt.columns, "_row", "_file", "_pos"), ctx)
    assert verdict.drop.len() == rows.height
    detail = (
        verdict.detail
        if verdict.detail is not None
        else pl.repeat(None, rows.height, dtype=pl.Utf8, eager=True)
    )
    return {
        i: (d if drop else None)
        for i, drop, d in zip(rows["id"].to_list(), verdict.drop.to_list(), detail.to_list(), strict=True)
    }


def test_exact_duplicates_keep_the_first_in_dataset_order(tmp_path: Path) -> None:
    a, b = encode(photo(1)), encode(photo(2))
    samples = [
        sample("s0", [a]),
        sample("s1", [b]),
        sample("s2", [a]),  # same bytes, same prompt: duplicate of s0
        sample("s3", [a], prompt="<image>Detect   every SHAPE and give its box. "),  # normalised: same
        sample("s4", [a], prompt="Detect every shape and give its box.<image>"),  # placeholder moved
        sample("s5", [a, b]),  # two images: another sample
        sample("s6", [a, b], data_source="other"),  # same in another source: duplicate of s5
        sample("s7", [encode(photo(1), quality=80)]),  # same picture, other bytes: not exact
        sample("s8", [a], answer="3"),  # answers are ignored by default
    ]
    root = write_dataset(tmp_path / "ds", samples, rows_per_file=4)
    rows, ctx = rows_of(root, tmp_path / "work", COLUMNS)
    assert run(ExactDedup(), rows, ctx) == {
        "s0": None,
        "s1": None,
        "s2": "duplicate of s0",
        "s3": "duplicate of s0",
        "s4": None,
        "s5": None,
        "s6": "duplicate of s5",
        "s7": None,
        "s8": "duplicate of s0",
    }


def test_the_dedup_filters_are_registered_under_their_names() -> None:
    from triune_data.filters import filter_reasons, get_filter
    from triune_data.filters.contamination import Contamination
    from triune_data.filters.near_dedup import NearDedup

    assert get_filter("exact_dedup") is ExactDedup
    assert get_filter("near_dedup") is NearDedup
    assert get_filter("contamination") is Contamination
    assert filter_reasons()["near_dedup"].startswith("Images a near-copy (pHash within")


def test_images_by_path_compare_by_path_and_answer_can_be_required(tmp_path: Path) -> None:
    a = encode(photo(1))
    samples = [
        sample("p0", ["images/a.jpg"], answer="1"),
        sample("p1", ["images/a.jpg"], answer="2"),
        sample("p2", ["images/b.jpg"], answer="1"),
        sample("p3", ["images/a.jpg", a], answer="1"),  # a path and bytes
        sample("p4", ["images/a.jpg", a], answer="1"),
        sample("p5", [b"images/a.jpg"], answer="1"),  # bytes that spell the path are not the path
        sample("p6", [b"not an image"], answer="1"),  # undecodable bytes still hash
        sample("p7", [b"not an image"], answer="1"),
    ]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    assert run(ExactDedup(), rows, ctx) == {
        "p0": None,
        "p1": "duplicate of p0",
        "p2": None,
        "p3": None,
        "p4": "duplicate of p3",
        "p5": None,
        "p6": None,
        "p7": "duplicate of p6",
    }
    with_answer = run(ExactDedup(answer=True), rows, ctx)
    assert with_answer["p1"] is None and with_answer["p4"] == "duplicate of p3"


def test_digests_are_cached_per_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [sample(f"s{k}", [encode(photo(k % 2))]) for k in range(5)]
    root = write_dataset(tmp_path / "ds", samples, rows_per_file=2)
    rows, ctx = rows_of(root, tmp_path / "work", COLUMNS)
    first = run(ExactDedup(), rows, ctx)
    assert first == {
        "s0": None,
        "s1": None,
        "s2": "duplicate of s0",
        "s3": "duplicate of s1",
        "s4": "duplicate of s0",
    }
    assert len(list((tmp_path / "work" / "image_keys").glob("digest-*.parquet"))) == 3  # one per shard

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("image bytes read again")

    monkeypatch.setattr(image_keys, "open_shard", no_reading)
    monkeypatch.setattr(Context, "images", no_reading)
    assert run(ExactDedup(), rows, ctx) == first


def test_a_damaged_cache_is_recomputed(tmp_path: Path) -> None:
    samples = [sample(f"s{k}", [encode(photo(k % 2))]) for k in range(3)]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    first = run(ExactDedup(), rows, ctx)
    for cache in (tmp_path / "work" / "image_keys").glob("*.parquet"):
        cache.write_bytes(b"PAR1 not really")
    assert run(ExactDedup(), rows, ctx) == first == {"s0": None, "s1": None, "s2": "duplicate of s0"}


def test_rows_without_images_compare_by_prompt(tmp_path: Path) -> None:
    samples = [
        sample("m0", [], prompt="What is 2 + 2?", task="math"),
        sample("m1", [], prompt="what is 2 +  2?", task="math"),
        sample("m2", [], prompt="What is 3 + 3?", task="math"),
    ]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    assert run(ExactDedup(), rows, ctx) == {"m0": None, "m1": "duplicate of m0", "m2": None}


def test_no_rows_no_work(tmp_path: Path) -> None:
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", [sample("a", [])]), tmp_path / "work", COLUMNS)
    verdict = ExactDedup().apply(rows.clear().select("id", "prompt", "answer", "_row", "_file", "_pos"), ctx)
    assert verdict.drop.len() == 0
