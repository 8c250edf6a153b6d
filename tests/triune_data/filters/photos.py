"""Seeded photo-like test images: gradients, shapes, texture and noise, each one distinct."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def photo(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """An RGB image that looks nothing like another seed's: a random two-colour gradient at a
    random angle, 3-8 filled shapes, a smooth texture and pixel noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = c0 * (1 - t[..., None]) + c1 * t[..., None]
    fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6)
    base += 30 * np.sin(fx * 2 * np.pi * xx / w + fy * 2 * np.pi * yy / h + phase)[..., None]
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(-0.1, 0.9) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(0.1, 0.5) * h
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(im, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(im: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" and not kwargs else kwargs))
    return buf.getvalue()
