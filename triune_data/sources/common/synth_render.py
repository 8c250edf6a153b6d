"""Pixels for the `synthetic` source: a scene is a tuple of drawing ops that Pillow renders.

The adapter decides every coordinate (cheap, in the main process); `render_scene` only draws, in a
worker, when the pipeline loads the image. Ops are plain tuples of ints and strings, so a draft
pickles to any process and the same ops always give the same bytes:

    ("shape", kind, fill, x1, y1, x2, y2)      kind: circle, square, triangle, star, diamond,
                                               hexagon or "polyN"; fills exactly x1..x2, y1..y2
    ("rect", x1, y1, x2, y2, fill, outline, width)
    ("line", x1, y1, x2, y2, color, width)
    ("text", x, y, text, size, color, anchor)  Pillow anchor, e.g. "mm" = centred on (x, y)

Coordinates are integer pixel indices and inclusive, as Pillow draws them: a shape over x1..x2
covers the continuous span [x1, x2 + 1), which is the box the adapter stores. Shapes are not
antialiased, so the drawn extents are exact (text is, as real text is).

Text uses Pillow's embedded font (`ImageFont.load_default(size=...)`, Aileron Regular, bundled
with Pillow, nothing read from the system or the network). It lacks some glyphs (×, ÷, −, Ω), so
the generators write `*`, `/`, `-` and `ohm`. PNG and JPEG are written with fixed settings and no
metadata, so bytes depend only on the ops (and on the Pillow/zlib/libjpeg build).
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

COLORS: dict[str, str] = {
    "red": "#dc322f",
    "green": "#2ea043",
    "blue": "#2663d6",
    "yellow": "#f0c81e",
    "orange": "#f58220",
    "purple": "#8c46b4",
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon")
BACKGROUNDS: tuple[str, ...] = ("#ffffff", "#f4f1ea", "#eef3f8", "#f2f2f2", "#f6f0f6")
INK = "#1e1e1e"  # outlines and text
JPEG_QUALITY = 92

Op = tuple[Any, ...]


@lru_cache(maxsize=128)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(1, size))  # type: ignore[return-value]


def text_width(text: str, size: int) -> int:
    return math.ceil(font(size).getlength(text))


def fit_size(text: str, max_width: int, size: int, smallest: int = 9) -> int:
    """The largest font size <= `size` whose rendering of `text` is at most `max_width` wide."""
    while size > smallest and text_width(text, size) > max_width:
        size -= 1
    return size


def _normalised(
    points: list[tuple[float, float]], x1: int, y1: int, x2: int, y2: int
) -> list[tuple[int, int]]:
    """Stretch `points` so their extremes land exactly on the box edges, then round to pixels."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    lx, ly = min(xs), min(ys)
    sx, sy = (x2 - x1) / (max(xs) - lx), (y2 - y1) / (max(ys) - ly)
    return [(x1 + round((x - lx) * sx), y1 + round((y - ly) * sy)) for x, y in points]


def shape_points(kind: str, x1: int, y1: int, x2: int, y2: int) -> list[tuple[int, int]]:
    """Polygon vertices of `kind` (not circle/square) whose extents are exactly the box."""
    if kind == "triangle":
        return [(x1, y2), (x2, y2), ((x1 + x2) // 2, y1)]
    if kind == "diamond":
        return [((x1 + x2) // 2, y1), (x2, (y1 + y2) // 2), ((x1 + x2) // 2, y2), (x1, (y1 + y2) // 2)]
    if kind == "star":
        pts = [
            (math.sin(i * math.pi / 5) * r, -math.cos(i * math.pi / 5) * r)
            for i, r in zip(range(10), [1.0, 0.42] * 5, strict=True)
        ]
        return _normalised(pts, x1, y1, x2, y2)
    sides = 6 if kind == "hexagon" else int(kind.removeprefix("poly"))
    # Regular polygon with a flat bottom edge (the way a reader expects a triangle or pentagon).
    start = math.pi / 2 + math.pi / sides
    pts = [
        (math.cos(start + 2 * math.pi * i / sides), math.sin(start + 2 * math.pi * i / sides))
        for i in range(sides)
    ]
    return _normalised(pts, x1, y1, x2, y2)


def _draw(d: ImageDraw.ImageDraw, op: Op) -> None:
    kind = op[0]
    if kind == "shape":
        _, shape, fill, x1, y1, x2, y2 = op
        if shape == "circle":
            d.ellipse((x1, y1, x2, y2), fill=fill, outline=INK, width=1)
        elif shape == "square":
            d.rectangle((x1, y1, x2, y2), fill=fill, outline=INK, width=1)
        else:
            d.polygon(shape_points(shape, x1, y1, x2, y2), fill=fill, outline=INK, width=1)
    elif kind == "rect":
        _, x1, y1, x2, y2, fill, outline, width = op
        d.rectangle((x1, y1, x2, y2), fill=fill, outline=outline, width=width)
    elif kind == "line":
        _, x1, y1, x2, y2, color, width = op
        d.line((x1, y1, x2, y2), fill=color, width=width)
    elif kind == "text":
        _, x, y, text, size, color, anchor = op
        d.text((x, y), text, fill=color, font=font(size), anchor=anchor)
    else:
        raise ValueError(f"unknown drawing op {kind!r}")


def render_scene(*, width: int, height: int, background: str, ops: tuple[Op, ...], format: str) -> bytes:
    """Draw `ops` in order on a `width`x`height` canvas and encode it as PNG or JPEG."""
    im = Image.new("RGB", (width, height), background)
    d = ImageDraw.Draw(im)
    for op in ops:
        _draw(d, op)
    buf = io.BytesIO()
    if format == "png":
        im.save(buf, "PNG", compress_level=6)
    elif format == "jpeg":
        im.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False, progressive=False)
    else:
        raise ValueError(f"unknown image format {format!r}")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Figures: ops for the reasoning and OCR tasks. The generators choose the numbers and the answer;
# these only place them. Sizes scale with the image: legible from about 160 px, and smaller images (used
# by fast tests) still render without errors.


def base_size(w: int, h: int) -> int:
    return max(10, min(w, h) // 15)


def _t(x: float, y: float, text: str, size: int, color: str = INK, anchor: str = "mm") -> Op:
    return ("text", round(x), round(y), text, size, color, anchor)


def _line(x1: float, y1: float, x2: float, y2: float, color: str = INK, width: int = 2) -> Op:
    return ("line", round(x1), round(y1), round(x2), round(y2), color, width)


def _rect(
    x1: float, y1: float, x2: float, y2: float, fill: str | None, outline: str | None = INK, width: int = 1
) -> Op:
    # Sorted corners: on a tiny canvas a figure can fold over itself, and Pillow refuses x2 < x1.
    (left, right), (top, bottom) = sorted((round(x1), round(x2))), sorted((round(y1), round(y2)))
    return ("rect", left, top, right, bottom, fill, outline, width)


def _fit(box_w: float, box_h: float, ratio: float) -> tuple[float, float]:
    """The largest width:height = `ratio` rectangle inside `box_w` x `box_h`."""
    return (box_w, box_w / ratio) if box_w / ratio <= box_h else (box_h * ratio, box_h)


def text_lines(w: int, h: int, lines: list[str], size: int) -> list[Op]:
    """Lines centred on the canvas, each shrunk to fit 90% of the width."""
    step = size * 1.6
    top = h / 2 - step * (len(lines) - 1) / 2
    return [_t(w / 2, top + i * step, s, fit_size(s, int(w * 0.9), size)) for i, s in enumerate(lines)]


def sign(rng: Any, w: int, h: int, text: str) -> list[Op]:
    """OCR text at a random place and size: plain ink, or on a plate or a dark sign."""
    size = fit_size(text, int(w * 0.8), rng.randint(max(12, h // 10), max(13, h // 5)))
    tw, pad = text_width(text, size), size // 2
    x = rng.randint(pad + 2, max(pad + 2, w - tw - pad - 2))
    y = rng.randint(size + 2, max(size + 2, h - size - 2))
    style = rng.choice(("plain", "plate", "dark"))
    if style == "plain":
        return [_t(x, y, text, size, rng.choice((INK, "#1f3a93", "#7a1f1f", "#0b5d1e")), "lm")]
    fill, ink = (
        ("#fdf6c8", INK) if style == "plate" else (rng.choice(("#1f4e79", "#2d5f2d", "#333333")), "#ffffff")
    )
    return [_rect(x - pad, y - size, x + tw + pad, y + size, fill, INK, 2), _t(x, y, text, size, ink, "lm")]


def rectangle_figure(w: int, h: int, a_label: str, b_label: str, ratio: float) -> list[Op]:
    """A rectangle (width:height = ratio) with its bottom and right sides labelled."""
    size = base_size(w, h)
    rw, rh = _fit(w * 0.55, h * 0.5, ratio)
    x1, y1 = (w - rw) / 2 - size, (h - rh) / 2 - size / 2
    return [
        _rect(x1, y1, x1 + rw, y1 + rh, "#dbe9f6", INK, 2),
        _t(x1 + rw / 2, y1 + rh + size, a_label, size),
        _t(x1 + rw + size / 2, y1 + rh / 2, b_label, size, anchor="lm"),
    ]


def right_triangle(w: int, h: int, labels: tuple[str, str, str], ratio: float) -> list[Op]:
    """A right triangle, right angle bottom-left; labels: bottom leg, left leg, hypotenuse."""
    size = base_size(w, h)
    tw, th = _fit(w * 0.55, h * 0.6, ratio)
    x0, y0, m = (w - tw) / 2, (h + th) / 2 - size / 2, max(6, size // 2)  # the right-angle corner
    return [
        _line(x0, y0, x0 + tw, y0),
        _line(x0, y0, x0, y0 - th),
        _line(x0 + tw, y0, x0, y0 - th),
        _line(x0 + m, y0, x0 + m, y0 - m, width=1),
        _line(x0, y0 - m, x0 + m, y0 - m, width=1),
        _t(x0 + tw / 2, y0 + size, labels[0], size),
        _t(x0 - size / 2, y0 - th / 2, labels[1], size, anchor="rm"),
        _t(x0 + tw / 2 + size / 2, y0 - th / 2 - size / 2, labels[2], size, anchor="lb"),
    ]


def bar_chart(w: int, h: int, title: str, names: list[str], values: list[int], color: str) -> list[Op]:
    """Vertical bars with their values on top and their names below, under a title."""
    size = base_size(w, h)
    left, right, top, base = w * 0.08, w * 0.96, size * 3.2, h - size * 1.8
    slot = (right - left) / len(names)
    small = min(fit_size(n, int(slot * 0.95), size) for n in names)
    ops = [_t(w / 2, size * 1.1, title, fit_size(title, int(w * 0.9), size + 2))]
    ops += [_line(left, base, right, base), _line(left, base, left, top - size)]
    for i, (name, v) in enumerate(zip(names, values, strict=True)):
        cx, y = left + slot * (i + 0.5), base - (base - top) * v / max(values)
        ops.append(_rect(cx - slot * 0.3, y, cx + slot * 0.3, base - 1, color))
        ops.append(_t(cx, y - 3, str(v), size, anchor="mb"))
        ops.append(_t(cx, base + 4, name, small, anchor="mt"))
    return ops


def tile_row(w: int, h: int, items: list[str]) -> list[Op]:
    """Framed tiles in a row, each holding a number, "?" or a shape written "shape:<kind>:<fill>"."""
    slot = w * 0.92 / len(items)
    side = round(min(slot * 0.82, h * 0.45))
    ops: list[Op] = []
    for i, item in enumerate(items):
        cx = w * 0.04 + slot * (i + 0.5)
        x1, y1 = round(cx - side / 2), round(h / 2 - side / 2)
        ops.append(_rect(x1, y1, x1 + side, y1 + side, "#ffffff", INK, 2))
        if item.startswith("shape:"):
            _, kind, fill = item.split(":")
            m = round(side * 0.15)
            ops.append(("shape", kind, fill, x1 + m, y1 + m, x1 + side - m, y1 + side - m))
        else:
            ops.append(_t(cx, h / 2, item, fit_size(item, round(side * 0.8), round(side * 0.45))))
    return ops


def number_grid(w: int, h: int, rows: list[list[str]]) -> list[Op]:
    """A grid of framed cells with numbers (or "?")."""
    cell = round(min(w * 0.8 / len(rows[0]), h * 0.8 / len(rows)))
    x0, y0 = round((w - cell * len(rows[0])) / 2), round((h - cell * len(rows)) / 2)
    ops: list[Op] = []
    for r, row in enumerate(rows):
        for c, item in enumerate(row):
            x1, y1 = x0 + c * cell, y0 + r * cell
            ops.append(_rect(x1, y1, x1 + cell, y1 + cell, "#ffffff", INK, 2))
            ops.append(
                _t(x1 + cell / 2, y1 + cell / 2, item, fit_size(item, round(cell * 0.8), round(cell * 0.4)))
            )
    return ops


def thermometer(w: int, h: int, lo: int, hi: int, step: int, label_every: int, value: int) -> list[Op]:
    """A vertical thermometer from `lo` to `hi` °C: ticks every `step`, numbers every `label_every`."""
    size = base_size(w, h)
    top, bottom, cx, tube = size * 1.8, h - size * 2.6, w / 2 - size, max(6, size // 2)
    y_of = lambda t: bottom - (bottom - top) * (t - lo) / (hi - lo)  # noqa: E731
    ops = [
        _t(cx, size * 0.8, "°C", size),
        _rect(cx - tube / 2, top - 4, cx + tube / 2, bottom + tube, "#ffffff"),
        (
            "shape",
            "circle",
            "#d62728",
            round(cx - tube),
            round(bottom),
            round(cx + tube),
            round(bottom + 2 * tube),
        ),
        _rect(cx - tube / 2 + 2, y_of(value), cx + tube / 2 - 2, bottom + tube, "#d62728", None),
    ]
    for t in range(lo, hi + 1, step):
        x2 = cx + tube / 2 + (size * 0.9 if t % label_every == 0 else size * 0.45)
        ops.append(_line(cx + tube / 2 + 1, y_of(t), x2, y_of(t), width=1))
        if t % label_every == 0:
            ops.append(_t(x2 + 4, y_of(t), str(t), max(9, size - 2), anchor="lm"))
    return ops


def ruler(w: int, h: int, length: int, start: float, end: float, color: str) -> list[Op]:
    """A ruler from 0 to `length` cm (ticks every 0.5 cm) with a bar from `start` to `end` above it."""
    size, label = base_size(w, h), max(9, base_size(w, h) - 3)
    x0, x1, y0 = w * 0.07, w * 0.93, h * 0.55
    x_of = lambda c: x0 + (x1 - x0) * c / length  # noqa: E731
    every = 1 if text_width("10", label) * 1.6 < x_of(1) - x_of(0) else 2  # numbers must not touch
    ops = [_rect(x0 - 8, y0, x1 + 8, y0 + size * 3, "#f3dfa2")]
    for k in range(2 * length + 1):
        x = x_of(k / 2)
        ops.append(_line(x, y0, x, y0 + (size if k % 2 == 0 else size * 0.5), width=1))
        if k % 2 == 0 and (k // 2) % every == 0:
            ops.append(_t(x, y0 + size * 1.2, str(k // 2), label, anchor="mt"))
    bar = max(8, size)
    return [
        *ops,
        _t(x1 - 4, y0 + size * 2.9, "cm", label, anchor="rb"),
        _rect(x_of(start), y0 - 6 - bar, x_of(end), y0 - 6, color),
        _line(x_of(start), y0 - 6, x_of(start), y0, "#888888", 1),
        _line(x_of(end), y0 - 6, x_of(end), y0, "#888888", 1),
    ]


def circuit(w: int, h: int, volts: int, resistors: list[int]) -> list[Op]:
    """A series loop: a battery on the left side, resistors R1..Rn along the top side."""
    size = base_size(w, h)
    left, right, top, bottom = w * 0.16, w * 0.9, h * 0.3, h * 0.8
    mid = (top + bottom) / 2
    ops = [
        _line(left, bottom, right, bottom),
        _line(right, top, right, bottom),
        _line(left, top, left, mid - 6),
        _line(left, mid + 6, left, bottom),
        _line(left - size, mid - 6, left + size, mid - 6),  # battery: long thin plate (+) ...
        _rect(left - size / 2, mid + 4, left + size / 2, mid + 8, INK, None),  # ... short thick plate (-)
        _t(left + size * 1.3, mid, f"{volts} V", size, anchor="lm"),
    ]
    slot, prev = (right - left) / len(resistors), left
    for i, r in enumerate(resistors):
        cx, rw = left + slot * (i + 0.5), min(slot * 0.5, size * 3)
        value = f"{r} ohm"
        ops += [
            _line(prev, top, cx - rw / 2, top),
            _rect(cx - rw / 2, top - size / 2, cx + rw / 2, top + size / 2, "#ffffff", INK, 2),
            _t(cx, top - size, f"R{i + 1}", size, anchor="mb"),
            _t(cx, top + size, value, fit_size(value, round(slot * 0.95), size), anchor="mt"),
        ]
        prev = cx + rw / 2
    return [*ops, _line(prev, top, right, top)]


def lever(w: int, h: int, arm: int, left: tuple[int, str], right: tuple[int, str]) -> list[Op]:
    """A beam on a central pivot with `arm` numbered units per side and a labelled block on each side."""
    size = base_size(w, h)
    cx, y, unit = w / 2, h * 0.62, w * 0.42 / arm
    ops = [
        _rect(cx - arm * unit - 4, y, cx + arm * unit + 4, y + 5, "#8c6d46"),
        (
            "shape",
            "triangle",
            "#777777",
            round(cx - size),
            round(y + 6),
            round(cx + size),
            round(y + 6 + 1.6 * size),
        ),
    ]
    for x, k in [(cx + s * k * unit, k) for k in range(1, arm + 1) for s in (-1, 1)]:
        ops += [_line(x, y + 5, x, y + 10, width=1), _t(x, y + 12, str(k), max(9, size - 4), anchor="mt")]
    block = max(14, round(min(unit * 0.9, size * 2.2)))
    for d, label in ((-left[0], left[1]), (right[0], right[1])):
        x = cx + d * unit
        ops.append(_rect(x - block / 2, y - block, x + block / 2, y - 1, "#9fc5e8"))
        ops.append(_t(x, y - block - 3, label, fit_size(label, round(unit * 1.8), size), anchor="mb"))
    return ops
