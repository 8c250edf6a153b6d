import random

import numpy as np
import pytest

from triune_data.coords import (
    FRAMES,
    box_from_canonical,
    box_to_canonical,
    from_canonical,
    resized_size,
    smart_resize,
    to_canonical,
)

try:  # the torchvision-backed module is the reference; its PIL twin is "Copied from" it verbatim
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize
except ImportError:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize


def _sizes() -> list[tuple[int, int]]:
    rng = random.Random(7)
    table = [(500, 1000), (480, 640), (1080, 1920), (3000, 4000), (28, 28), (14, 14), (1, 150), (10, 2000),
             (56, 56), (42, 42), (70, 98), (4096, 4096), (533, 799), (1333, 800), (15, 3000)]  # fmt: skip
    table += [(rng.randint(1, 5000), rng.randint(1, 5000)) for _ in range(400)]
    return [(h, w) for h, w in table if max(h, w) / min(h, w) <= 200]


@pytest.mark.parametrize(("height", "width"), _sizes())
def test_smart_resize_matches_transformers(height, width):
    assert smart_resize(height, width) == hf_smart_resize(height, width)


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"factor": 28, "min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28},
        {"factor": 32, "min_pixels": 64 * 32 * 32, "max_pixels": 16384 * 32 * 32},
        {"factor": 28, "min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28},
    ],
)
@pytest.mark.parametrize(("height", "width"), [(500, 1000), (20, 30), (4000, 3000), (799, 533)])
def test_smart_resize_options_match_transformers(height, width, kwargs):
    assert smart_resize(height, width, **kwargs) == hf_smart_resize(height, width, **kwargs)


@pytest.mark.parametrize(("height", "width"), [(10, 2010), (3000, 14), (0, 10)])
def test_smart_resize_rejects_extreme_aspect_ratios(height, width):
    with pytest.raises(ValueError):
        smart_resize(height, width)


def test_resized_size_is_width_height():
    # 1000x500 stored: height 500 -> 18*28 = 504, width 1000 -> 36*28 = 1008
    assert resized_size((1000, 500)) == (1008, 504)
    assert smart_resize(500, 1000) == (504, 1008)


@pytest.mark.parametrize(
    ("box", "frame", "image_size", "model_input_size", "canonical"),
    [
        ([100, 50, 300, 250], "pixel", (640, 480), None, [100, 50, 300, 250]),
        ([100, 50, 300, 250], "pixel", (640, 480), (640, 480), [100, 50, 300, 250]),
        # Qwen2.5-VL emits pixels of the resized input: stored 1000x500, input 1008x504
        ([100.8, 50.4, 504, 252], "pixel", (1000, 500), (1008, 504), [100, 50, 500, 250]),
        ([0, 0, 1008, 504], "pixel", (1000, 500), (1008, 504), [0, 0, 1000, 500]),
        ([484, 227, 818, 998], "norm1000", (799, 533), None, [386.716, 120.991, 653.582, 531.934]),
        ([0, 0, 1000, 1000], "norm1000", (799, 533), (812, 532), [0, 0, 799, 533]),
        ([0.25, 0.5, 0.75, 1.0], "norm1", (640, 480), None, [160, 240, 480, 480]),
        ([0.1, 0.1, 0.3, 0.3], "norm1", (1000, 1000), None, [100, 100, 300, 300]),
    ],
)
def test_to_canonical_known_values(box, frame, image_size, model_input_size, canonical):
    got = to_canonical([box], frame, image_size=image_size, model_input_size=model_input_size)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [canonical], rtol=0, atol=1e-9)
    back = from_canonical(got, frame, image_size=image_size, model_input_size=model_input_size)
    np.testing.assert_allclose(back, [box], rtol=0, atol=1e-9)


def test_no_truncation_keeps_subpixel_boxes():
    # V-Triune's int() would turn 999.9 into 999; the float frame keeps it.
    got = to_canonical([[0.4, 0.4, 999.9, 999.9]], "norm1000", image_size=(1000, 1000))
    np.testing.assert_allclose(got, [[0.4, 0.4, 999.9, 999.9]], rtol=0, atol=1e-12)


@pytest.mark.parametrize("frame", ["pixel", "norm1000", "norm1"])
def test_round_trip_random(frame):
    rng = np.random.default_rng(3)
    for _ in range(50):
        w, h = rng.integers(16, 5000, size=2)
        mw, mh = resized_size((w, h)) if w / h < 200 and h / w < 200 else (w, h)
        boxes = np.sort(rng.uniform(0, 1, size=(7, 2, 2)), axis=1).reshape(7, 4)[:, [0, 2, 1, 3]] * [
            w,
            h,
            w,
            h,
        ]
        model = from_canonical(boxes, frame, image_size=(w, h), model_input_size=(mw, mh))
        back = to_canonical(model, frame, image_size=(w, h), model_input_size=(mw, mh))
        np.testing.assert_allclose(back, boxes, rtol=1e-12, atol=1e-9)


def test_empty_boxes_keep_shape():
    assert to_canonical([], "norm1000", image_size=(10, 10)).shape == (0, 4)
    assert from_canonical(np.zeros((0, 4)), "norm1", image_size=(10, 10)).shape == (0, 4)


@pytest.mark.parametrize(
    ("boxes", "frame", "image_size", "model_input_size"),
    [
        ([[1, 2, 3]], "pixel", (10, 10), None),
        ([1, 2, 3, 4], "pixel", (10, 10), None),
        ([[1, 2, 3, 4]], "norm100", (10, 10), None),
        ([[1, 2, 3, 4]], "norm1000", (0, 10), None),
        ([[1, 2, 3, 4]], "pixel", (10, 10), (float("nan"), 10)),
        ([[1, 2, 3, 4]], "pixel", (10, -10), None),
    ],
)
def test_bad_input_raises(boxes, frame, image_size, model_input_size):
    with pytest.raises(ValueError):
        to_canonical(boxes, frame, image_size=image_size, model_input_size=model_input_size)


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("model_input_size", [None, (644, 476)])
def test_one_box_converts_exactly_as_the_array(frame, model_input_size):
    """The scalar conversions (the build's hot path, the export) are the array ones, bit for bit."""
    rng = np.random.default_rng(0)
    sizes = {"image_size": (640, 427), "model_input_size": model_input_size}
    for box in rng.uniform(0, 1000, size=(200, 4)).round(rng.integers(0, 4)).tolist():
        assert box_to_canonical(box, frame, **sizes) == tuple(to_canonical([box], frame, **sizes)[0].tolist())
        assert box_from_canonical(box, frame, **sizes) == tuple(
            from_canonical([box], frame, **sizes)[0].tolist()
        )
