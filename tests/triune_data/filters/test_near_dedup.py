"""`near_dedup`: planted near-copies are found, distinct images are not, bad images are counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.triune_data.filters.dedup_fixtures import encode, photo, rows_of, sample, write_dataset
from tests.triune_data.filters.test_dedup import run
from triune_data.filters.base import Context
from triune_data.filters.near_dedup import NearDedup

COLUMNS = ("id", "data_source", "split", "task", "prompt", "answer")


def crop(im: Image.Image, fraction: float) -> Image.Image:
    """`fraction` of the width and height cut off each side."""
    w, h = im.size
    dx, dy = round(w * fraction), round(h * fraction)
    return im.crop((dx, dy, w - dx, h - dy))


def near_copies(im: Image.Image) -> dict[str, bytes]:
    w, h = im.size
    return {
        "resized": encode(im.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BICUBIC)),
        "upscaled": encode(im.resize((w * 2, h * 2), Image.Resampling.BILINEAR)),
        "quality50": encode(im, quality=50),
        "png": encode(im, "PNG"),
        "cropped": encode(crop(im, 0.015)),  # 3% of each side in all
    }


def test_planted_near_copies_are_found_and_distinct_images_are_not(tmp_path: Path) -> None:
    samples = [sample(f"d{k}", [encode(photo(k))]) for k in range(50)]  # 50 distinct photos
    expected: dict[str, str | None] = {s.id: None for s in samples}
    for k in range(5):  # near-copies of five of them, after all originals
        for kind, data in near_copies(photo(k)).items():
            samples.append(sample(f"d{k}-{kind}", [data]))
            expected[f"d{k}-{kind}"] = f"near-copy of d{k}"
    root = write_dataset(tmp_path / "ds", samples, rows_per_file=16)
    rows, ctx = rows_of(root, tmp_path / "work", COLUMNS)
    got = run(NearDedup(), rows, ctx)
    assert {i: d and d.split(" (")[0] for i, d in got.items()} == expected
    hamming = sorted(int(d.split("hamming ")[1][:-1]) for d in got.values() if d)
    assert hamming[-1] <= 6


def test_an_earlier_near_copy_is_kept_and_the_original_dropped(tmp_path: Path) -> None:
    """Dataset order decides, not which file is the 'original'."""
    im = photo(3)
    samples = [
        sample("png", [encode(im, "PNG")]),
        sample("jpeg", [encode(im)]),
        sample("other", [encode(photo(4))]),
    ]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    assert run(NearDedup(), rows, ctx) == {
        "png": None,
        "jpeg": "near-copy of png (hamming 0)",
        "other": None,
    }


def test_prompt_must_match_unless_match_image(tmp_path: Path) -> None:
    a = encode(photo(5))
    samples = [
        sample("q1", [a], prompt="<image>Find the red circle."),
        sample("q2", [encode(photo(5), quality=60)], prompt="<image>Find the blue square."),
        sample("q3", [encode(photo(5), "PNG")], prompt="<image>find the  RED circle."),
    ]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    by_prompt = run(NearDedup(), rows, ctx)
    assert {k: v and v.split(" (")[0] for k, v in by_prompt.items()} == {
        "q1": None,
        "q2": None,
        "q3": "near-copy of q1",
    }
    by_image = run(NearDedup(match="image"), rows, ctx)
    assert {k: v and v.split(" (")[0] for k, v in by_image.items()} == {
        "q1": None,
        "q2": "near-copy of q1",
        "q3": "near-copy of q1",
    }


def test_threshold_zero_keeps_a_crop(tmp_path: Path) -> None:
    im = photo(6)
    samples = [sample("a", [encode(im)]), sample("b", [encode(crop(im, 0.015))])]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    assert run(NearDedup(max_hamming=0), rows, ctx) == {"a": None, "b": None}
    assert run(NearDedup(max_hamming=12), rows, ctx)["b"] is not None


def test_undecodable_and_path_only_images_are_kept_and_counted(tmp_path: Path) -> None:
    good = encode(photo(7))
    samples = [
        sample("good", [good]),
        sample("copy", [good]),
        sample("truncated", [good[: len(good) // 3]]),
        sample("truncated2", [good[: len(good) // 3]]),
        sample("garbage", [b"not an image at all"]),
        sample("by_path", ["images/a.jpg"]),
        sample("none", [], task="detection"),
        sample("bomb", [encode(Image.new("L", (10_000, 9_000)), "PNG")], data_source="big"),
    ]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    flt = NearDedup()
    verdict = flt.apply(rows.select(*flt.columns, "_row", "_file", "_pos"), ctx)
    assert verdict.drop.to_list() == [False, True, False, False, False, False, False, False]
    assert verdict.facts["unhashed"] == {"big": 1, "src": 5}


def test_multi_image_rows_compare_every_image(tmp_path: Path) -> None:
    a, b, c = (encode(photo(k)) for k in (8, 9, 10))
    samples = [
        sample("ab", [a, b]),
        sample("ab2", [encode(photo(8), quality=70), encode(photo(9), "PNG")]),
        sample("ac", [a, c]),  # first image the same, second not
        sample("a", [a]),  # one image only
    ]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    got = run(NearDedup(), rows, ctx)
    assert {k: v and v.split(" (")[0] for k, v in got.items()} == {
        "ab": None,
        "ab2": "near-copy of ab",
        "ac": None,
        "a": None,
    }


def test_second_run_reads_hashes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [sample(f"s{k}", [encode(photo(k % 3))]) for k in range(6)]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    first = run(NearDedup(), rows, ctx)
    assert list(first.values()).count(None) == 3

    def no_reading(self: Context, *args: object, **kwargs: object) -> None:
        raise AssertionError("images read again")

    monkeypatch.setattr(Context, "images", no_reading)
    assert run(NearDedup(), rows, ctx) == first
    assert run(NearDedup(), rows[2:], ctx) == {k: v for k, v in first.items() if k not in ("s0", "s1")} | {
        "s3": None,
        "s4": None,
    }


def test_hashes_agree_with_imagehash() -> None:
    imagehash = pytest.importorskip("imagehash")
    import io

    from triune_data.filters.phash import phashes

    images = [encode(photo(k)) for k in range(40)] + [encode(photo(k), "PNG") for k in range(40, 60)]
    reference = np.array(
        [int(str(imagehash.phash(Image.open(io.BytesIO(b)))), 16) for b in images], dtype=np.uint64
    )
    exact, ok = phashes(images, exact=True)
    assert ok.all() and (exact == reference).all()  # bit for bit
    fast, _ = phashes(images)
    differing = np.bitwise_count(fast ^ reference)
    assert differing.max() <= 2 and (differing == 0).mean() >= 0.8  # JPEG draft decoding


def test_a_shard_of_rows_without_images_is_kept_and_counted(tmp_path: Path) -> None:
    samples = [sample(f"m{k}", [], prompt="What is 2 + 2?") for k in range(3)]
    rows, ctx = rows_of(write_dataset(tmp_path / "ds", samples), tmp_path / "work", COLUMNS)
    verdict = NearDedup().apply(rows.select(*NearDedup.columns, "_row", "_file", "_pos"), ctx)
    assert not verdict.drop.any() and verdict.facts["unhashed"] == {"src": 3}


def test_same_rows_same_verdict_whatever_the_shards(tmp_path: Path) -> None:
    """The verdict depends on the rows and their order only, not on how they are sharded."""
    samples = [sample(f"s{k}", [encode(photo(k % 7), quality=60 + k)]) for k in range(20)]
    verdicts = []
    for per_file in (3, 20):
        root = write_dataset(tmp_path / f"ds{per_file}", samples, rows_per_file=per_file)
        rows, ctx = rows_of(root, tmp_path / f"work{per_file}", COLUMNS)
        verdicts.append(run(NearDedup(), rows, ctx))
    assert verdicts[0] == verdicts[1]
    assert sum(v is None for v in verdicts[0].values()) == 7
