"""Box coordinates: the canonical frame versus the frame a model reads and writes.

Every stored box is in the canonical frame: absolute float pixels of the stored image as a loader
shows it (after its EXIF orientation, as `datasets` and transformers' `load_image` apply it), x1
y1 x2 y2 (`triune_data.types.BOX_FRAME`); `orient_box` brings a box drawn on the stored pixels
of a rotated or flipped image there. Sources and models use other frames, all named by `Frame`, and
every conversion between them in triune goes through this module (source adapters via the build's
materialize step, the verl export, the box verifiers):

=============  ============================================================  =========================
frame          meaning                                                       used by
=============  ============================================================  =========================
``pixel``      absolute pixels of the MODEL INPUT image (after resizing)     Qwen2.5-VL
``norm1000``   0–1000 relative to the image                                  Qwen2-VL, Qwen3-VL, Orsta
``norm1``      0–1 relative to the image                                     many grounding datasets
=============  ============================================================  =========================

Sizes are (width, height). Without a model input size the model input is the stored image, so
``pixel`` is the identity. Conversion is in float and never rounds: V-Triune truncated normalised
boxes with ``int()``, which cost about one unit per side and made τ = 0.99 stricter than intended
(docs/vtriune.md §5, §8).

`smart_resize` reproduces Qwen2-VL/Qwen2.5-VL's resize rule, so callers can compute the model input
size the processor will produce (`resized_size` gives it as (width, height)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeAlias, get_args

import numpy as np

Frame: TypeAlias = Literal["pixel", "norm1000", "norm1"]
FRAMES: tuple[Frame, ...] = get_args(Frame)

Size: TypeAlias = tuple[float, float]


def _as_boxes(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def _check_size(size: Size, name: str) -> tuple[float, float]:
    w, h = size
    w, h = float(w), float(h)
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ValueError(f"{name} must be a positive (width, height), got {tuple(size)!r}")
    return w, h


def _frame_extent(frame: Frame, image_size: Size, model_input_size: Size | None) -> tuple[float, float]:
    """The (width, height) that spans the image in `frame` units."""
    if frame == "norm1000":
        return 1000.0, 1000.0
    if frame == "norm1":
        return 1.0, 1.0
    if frame == "pixel":
        return _check_size(
            model_input_size if model_input_size is not None else image_size, "model_input_size"
        )
    raise ValueError(f"unknown coordinate frame {frame!r} (known: {', '.join(FRAMES)})")


def to_canonical(
    boxes: np.ndarray | Sequence[Sequence[float]],
    frame: Frame,
    *,
    image_size: Size,
    model_input_size: Size | None = None,
) -> np.ndarray:
    """Convert (N, 4) xyxy boxes from `frame` to stored-image pixels (float64, never rounded).

    >>> to_canonical([[0, 0, 500, 1000]], "norm1000", image_size=(640, 480)).tolist()
    [[0.0, 0.0, 320.0, 480.0]]
    """
    arr = _as_boxes(boxes)
    img_w, img_h = _check_size(image_size, "image_size")
    ext_w, ext_h = _frame_extent(frame, image_size, model_input_size)
    if (ext_w, ext_h) == (img_w, img_h):
        return arr.copy()
    # Multiply before dividing: exact for integer inputs whose products stay below 2**53.
    return arr * np.array([img_w, img_h, img_w, img_h]) / np.array([ext_w, ext_h, ext_w, ext_h])


def from_canonical(
    boxes: np.ndarray | Sequence[Sequence[float]],
    frame: Frame,
    *,
    image_size: Size,
    model_input_size: Size | None = None,
) -> np.ndarray:
    """Convert (N, 4) xyxy boxes from stored-image pixels to `frame` (the inverse of `to_canonical`)."""
    arr = _as_boxes(boxes)
    img_w, img_h = _check_size(image_size, "image_size")
    ext_w, ext_h = _frame_extent(frame, image_size, model_input_size)
    if (ext_w, ext_h) == (img_w, img_h):
        return arr.copy()
    return arr * np.array([ext_w, ext_h, ext_w, ext_h]) / np.array([img_w, img_h, img_w, img_h])


def box_to_canonical(
    box: Sequence[float],
    frame: Frame,
    *,
    image_size: Size,
    model_input_size: Size | None = None,
) -> tuple[float, float, float, float]:
    """One xyxy box from `frame` to stored-image pixels: `to_canonical` for a single box, in plain
    Python (no array per box on the build's hot path), with the same arithmetic and results.

    >>> box_to_canonical((0, 0, 500, 1000), "norm1000", image_size=(640, 480))
    (0.0, 0.0, 320.0, 480.0)
    """
    x1, y1, x2, y2 = box
    img_w, img_h = _check_size(image_size, "image_size")
    ext_w, ext_h = _frame_extent(frame, image_size, model_input_size)
    if (ext_w, ext_h) == (img_w, img_h):
        return float(x1), float(y1), float(x2), float(y2)
    return x1 * img_w / ext_w, y1 * img_h / ext_h, x2 * img_w / ext_w, y2 * img_h / ext_h


def box_from_canonical(
    box: Sequence[float],
    frame: Frame,
    *,
    image_size: Size,
    model_input_size: Size | None = None,
) -> tuple[float, float, float, float]:
    """One xyxy box from stored-image pixels to `frame` (the inverse of `box_to_canonical`).

    >>> box_from_canonical((0, 0, 320, 480), "norm1000", image_size=(640, 480))
    (0.0, 0.0, 500.0, 1000.0)
    """
    x1, y1, x2, y2 = box
    img_w, img_h = _check_size(image_size, "image_size")
    ext_w, ext_h = _frame_extent(frame, image_size, model_input_size)
    if (ext_w, ext_h) == (img_w, img_h):
        return float(x1), float(y1), float(x2), float(y2)
    return x1 * ext_w / img_w, y1 * ext_h / img_h, x2 * ext_w / img_w, y2 * ext_h / img_h


# EXIF orientation -> where the stored pixel (x, y) of a W x H image is shown, as
# `PIL.ImageOps.exif_transpose` moves it (2: mirror, 3: rotate 180, 4: flip, 5: transpose,
# 6: rotate 90 clockwise, 7: transverse, 8: rotate 90 counter-clockwise).
_ORIENT = {
    1: lambda x, y, w, h: (x, y),
    2: lambda x, y, w, h: (w - x, y),
    3: lambda x, y, w, h: (w - x, h - y),
    4: lambda x, y, w, h: (x, h - y),
    5: lambda x, y, w, h: (y, x),
    6: lambda x, y, w, h: (h - y, x),
    7: lambda x, y, w, h: (h - y, w - x),
    8: lambda x, y, w, h: (y, w - x),
}


def orient_box(
    box: Sequence[float], orientation: int, *, stored_size: Size
) -> tuple[float, float, float, float]:
    """One xyxy box drawn on the stored pixels of a `stored_size` image, in the frame the image is
    shown in after its EXIF `orientation` (1-8; anything else leaves the box as it is).

    >>> orient_box((10, 20, 30, 40), 6, stored_size=(200, 100))  # shown as 100 x 200
    (60.0, 10.0, 80.0, 30.0)
    """
    move = _ORIENT.get(orientation, _ORIENT[1])
    w, h = _check_size(stored_size, "stored_size")
    (ax, ay), (bx, by) = move(box[0], box[1], w, h), move(box[2], box[3], w, h)
    return float(min(ax, bx)), float(min(ay, by)), float(max(ax, bx)), float(max(ay, by))


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 1280,
) -> tuple[int, int]:
    """Qwen2-VL/Qwen2.5-VL's resize rule; returns (height, width) like the `transformers` function.

    Both sides become multiples of `factor` (patch 14 × merge 2), the area is kept within
    [min_pixels, max_pixels] and the aspect ratio as close as possible. Python's `round` (half to
    even) is deliberate: it is what the processor uses.
    """
    if min(height, width) <= 0:
        raise ValueError(f"image sides must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be at most 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resized_size(
    image_size: Size,
    *,
    factor: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 1280,
) -> tuple[int, int]:
    """The (width, height) a Qwen2.5-VL processor resizes a (width, height) image to."""
    w, h = image_size
    new_h, new_w = smart_resize(int(h), int(w), factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_w, new_h


__all__ = [
    "FRAMES",
    "Frame",
    "box_from_canonical",
    "box_to_canonical",
    "from_canonical",
    "orient_box",
    "resized_size",
    "smart_resize",
    "to_canonical",
]
