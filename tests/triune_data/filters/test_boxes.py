"""boxes_per_category, box_area, single_multi_ratio, category_balance on hand-made rows."""

from pathlib import Path

import pytest

from tests.triune_data.filters._rows import context, outcome, rows, sample, with_null
from triune_data.filters.boxes import BoxArea, BoxesPerCategory, CategoryBalance, SingleMultiRatio
from triune_data.types import Sample


def det(id: str, *labels: str, source: str = "src", **kwargs) -> Sample:
    """A detection sample with one small box per label (640×480 image)."""
    boxes = [(label, 10.0 * k, 10.0, 10.0 * k + 5, 15.0) for k, label in enumerate(labels)]
    return sample(id, task="detection", data_source=source, answer="", boxes=boxes, **kwargs)


def test_boxes_per_category(tmp_path: Path) -> None:
    batch = rows(
        det("ten", *["car"] * 10, "dog"),
        det("eleven", "dog", *["car"] * 11),
        det("two_labels_over", *["cat"] * 12, *["bus"] * 13),
        det("none"),
    )
    assert outcome(BoxesPerCategory().apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "11 boxes of 'car'"),
        (True, "13 boxes of 'bus'"),  # the category with the most boxes is named
        (False, None),
    ]
    assert outcome(BoxesPerCategory(max_boxes=1).apply(batch, context(tmp_path)))[0] == (
        True,
        "10 boxes of 'car'",
    )


def test_boxes_per_category_null_boxes_kept(tmp_path: Path) -> None:
    batch = with_null(rows(det("a", "car"), det("b", *["car"] * 11)), "boxes")
    assert outcome(BoxesPerCategory().apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "11 boxes of 'car'"),
    ]


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((0, 0, 320, 480), (640, 480), None),  # exactly 50%
        ((0, 0, 321, 480), (640, 480), "box 'x' covers 50.2%"),
        ((0, 0, 640, 480), (640, 480), "box 'x' covers 100.0%"),
        ((10, 10, 20, 20), (640, 480), None),
        ((0, 0, 60, 60), (100, 100), "box 'x' covers 36.0%"),  # with max_fraction 0.3 below
    ],
)
def test_box_area(tmp_path: Path, box: tuple, size: tuple, expected: str | None) -> None:
    batch = rows(sample(task="grounding", answer="", sizes=[size], boxes=[("x", *box)]))
    limit = 0.3 if size == (100, 100) else 0.5
    assert outcome(BoxArea(max_fraction=limit).apply(batch, context(tmp_path))) == [
        (expected is not None, expected)
    ]


def test_box_area_names_the_largest_box_and_needs_a_size(tmp_path: Path) -> None:
    batch = rows(
        sample("a", task="detection", boxes=[("small", 0, 0, 10, 10), ("big", 0, 0, 600, 400)]),
        sample("b", task="detection", sizes=[], boxes=[("x", 0, 0, 1, 1)]),
        sample("c", task="detection", sizes=[], boxes=[]),
        sample("d", task="detection", sizes=[(0, 480)], boxes=[("x", 0, 0, 1, 1)]),
        sample("e", task="detection", boxes=[("x", 0, 0, 1, 1)]),
    )
    batch = with_null(batch, "image_sizes", 4)
    assert outcome(BoxArea().apply(batch, context(tmp_path))) == [
        (True, "box 'big' covers 78.1%"),
        (True, "no size for image 0 to measure boxes against"),
        (False, None),  # no boxes: nothing to measure
        (True, "no size for image 0 to measure boxes against"),
        (True, "no size for image 0 to measure boxes against"),
    ]


def test_single_multi_ratio_keeps_one_single_per_two_multi(tmp_path: Path) -> None:
    singles = [det(f"s{k}", "car", "dog") for k in range(5)]  # one box per category: single-box
    multis = [det(f"m{k}", "car", "car") for k in range(4)]
    batch = rows(*singles, *multis, det("empty"))
    verdict = SingleMultiRatio().apply(batch, context(tmp_path, seed=7))
    drops = outcome(verdict)
    assert [d for d, _ in drops[5:]] == [False] * 5  # multi-box and box-less rows stay
    assert sum(d for d, _ in drops[:5]) == 3  # 4 multi-box allow 2 single-box
    assert {t for d, t in drops if d} == {"single-box beyond 0.5 per multi-box: 2 of 5 kept for 4 multi-box"}
    assert verdict.facts == {"box_kinds": {"src": {"single": 5, "multi": 4}}}


def test_single_multi_ratio_is_seeded_and_order_free(tmp_path: Path) -> None:
    samples = [det(f"s{k}", "car") for k in range(8)] + [det(f"m{k}", "car", "car") for k in range(6)]
    filt = SingleMultiRatio()

    def dropped(seed: int, order: list[Sample]) -> set[str]:
        batch = rows(*order)
        verdict = filt.apply(batch, context(tmp_path, seed=seed))
        return {i for i, d in zip(batch["id"], verdict.drop, strict=True) if d}

    first = dropped(1, samples)
    assert len(first) == 5  # 8 single-box, 3 allowed
    assert dropped(1, samples[::-1]) == first
    assert any(dropped(seed, samples) != first for seed in range(2, 6))


def test_single_multi_ratio_per_source_and_one_box_mode(tmp_path: Path) -> None:
    batch = rows(
        det("a1", "car", source="a"),
        det("a2", "car", "car", source="a"),
        det("a3", "car", "car", source="a"),
        det("b1", "car", source="b"),  # source b has no multi-box sample: no single-box allowed
        det("b2", "car", "dog", source="b"),
    )
    assert outcome(SingleMultiRatio().apply(batch, context(tmp_path))) == [
        (False, None),
        (False, None),
        (False, None),
        (True, "single-box beyond 0.5 per multi-box: 0 of 2 kept for 0 multi-box"),
        (True, "single-box beyond 0.5 per multi-box: 0 of 2 kept for 0 multi-box"),
    ]
    # one_box: "car, dog" is multi-box, so at 1:1 source b keeps its one single-box sample
    one_box = SingleMultiRatio(single="one_box", single_per_multi=1.0).apply(batch, context(tmp_path))
    assert outcome(one_box)[3:] == [(False, None), (False, None)]


def test_category_balance_caps_a_dominant_category(tmp_path: Path) -> None:
    # 12 "car" samples, 2 "dog", 1 "cat"+"car": mean 15/3 = 5 per category, cap 1.5 × 5 = 8 (ceil 7.5)
    samples = [det(f"c{k}", "car") for k in range(12)] + [
        det("d0", "dog"),
        det("d1", "dog"),
        det("x", "car", "cat"),
    ]
    batch = rows(*samples)
    verdict = CategoryBalance(max_over_mean=1.5).apply(batch, context(tmp_path, seed=3))
    drops = outcome(verdict)
    assert sum(d for d, _ in drops[:12]) == 4
    assert {t for d, t in drops if d} == {"'car' holds 12 samples, cap 8"}
    assert drops[12:] == [(False, None)] * 3  # "x" counts under its rarest category, cat


def test_category_balance_balanced_set_untouched_and_count_cap(tmp_path: Path) -> None:
    batch = rows(
        *[det(f"{label}{k}", label) for label in ("car", "dog", "cat") for k in range(3)], det("none")
    )
    ctx = context(tmp_path)
    assert not any(CategoryBalance().apply(batch, ctx).drop)
    capped = outcome(CategoryBalance(max_per_category=2).apply(batch, ctx))
    assert sum(d for d, _ in capped) == 3
    assert {t for d, t in capped if d} == {
        "'car' holds 3 samples, cap 2",
        "'dog' holds 3 samples, cap 2",
        "'cat' holds 3 samples, cap 2",
    }
    assert capped[-1] == (False, None)


def test_category_balance_is_seeded_and_order_free(tmp_path: Path) -> None:
    samples = [det(f"c{k}", "car") for k in range(10)] + [det("d", "dog")]
    filt = CategoryBalance(max_per_category=4)

    def kept(seed: int, order: list[Sample]) -> set[str]:
        batch = rows(*order)
        verdict = filt.apply(batch, context(tmp_path, seed=seed))
        return {i for i, d in zip(batch["id"], verdict.drop, strict=True) if not d}

    first = kept(0, samples)
    assert len(first) == 5 and "d" in first
    assert kept(0, samples[::-1]) == first
    assert any(kept(seed, samples) != first for seed in range(1, 5))


def test_default_scopes() -> None:
    assert BoxesPerCategory().tasks == ["detection"]
    assert BoxArea().tasks == ["detection", "grounding"]
    assert SingleMultiRatio().tasks == ["detection"] and CategoryBalance().tasks == ["detection"]
