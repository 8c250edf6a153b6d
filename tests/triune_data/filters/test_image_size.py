"""image_size on hand-made rows: every image of a row, nulls and missing sizes."""

from pathlib import Path

import pytest

from tests.triune_data.filters._rows import context, outcome, rows, sample, with_null
from triune_data.filters.image_size import ImageSize


@pytest.mark.parametrize(
    ("sizes", "kwargs", "expected"),
    [
        ([(640, 480)], {}, None),
        ([(28, 28)], {}, None),
        ([(27, 480)], {}, "image 1 is 27×480 px (a side under 28)"),
        ([(640, 480), (20, 500)], {}, "image 2 is 20×500 px (a side under 28)"),
        ([], {}, None),
        ([(5000, 4000)], {"max_side": 4000}, "image 1 is 5000×4000 px (a side over 4000)"),
        ([(4000, 4000)], {"max_side": 4000}, None),
        ([(1001, 1000)], {"max_pixels": 1_000_000}, "image 1 is 1001×1000 px (over 1000000 pixels)"),
        ([(1000, 1000)], {"max_pixels": 1_000_000}, None),
        ([(64, 64), (10, 10)], {"min_side": 64}, "image 2 is 10×10 px (a side under 64)"),
    ],
)
def test_image_size(tmp_path: Path, sizes: list, kwargs: dict, expected: str | None) -> None:
    verdict = ImageSize(**kwargs).apply(rows(sample(sizes=sizes)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_image_size_null_list_kept_and_every_task() -> None:
    batch = with_null(rows(sample("a"), sample("b", sizes=[(10, 10)])), "image_sizes")
    assert outcome(ImageSize().apply(batch, context(Path(".")))) == [
        (False, None),
        (True, "image 1 is 10×10 px (a side under 28)"),
    ]
    assert ImageSize().tasks is None
