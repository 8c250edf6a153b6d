"""Perceptual hashes of images (64-bit DCT pHash) and their Hamming distances, vectorised in numpy.

The algorithm is `imagehash.phash`'s (hash_size 8, highfreq_factor 4), bit for bit: grayscale,
resize to 32x32 (Lanczos), 2-D DCT-II, keep the top-left 8x8 low frequencies, set a bit where a
coefficient exceeds their median. The median is taken over all 64 coefficients, DC included, as
imagehash does (the DC bit is then almost always 1 and carries little; keeping it makes our hashes
interchangeable with imagehash's hex strings: `int(str(imagehash.phash(im)), 16) == our hash`).
Bits are packed row-major, first coefficient in the most significant bit.

Two differences from calling imagehash in a loop, both for speed:
- the DCT is two matrix products over a whole batch (no scipy at runtime);
- a JPEG is decoded with Pillow's `draft()`, which lets libjpeg scale by 1/2, 1/4 or 1/8 in the
  DCT domain while decoding (to no less than 64 px a side) before the Lanczos resize to 32x32.
  That changes a few low-contrast bits on some images: `exact=True` decodes in full instead.

Decoding is bounded: an image over `max_pixels` (the build's default limit, `ImagePolicy`) or one
Pillow cannot read gets no hash (None), never an exception.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from triune_data.images import ImagePolicy

HASH_SIDE = 8  # the hash is HASH_SIDE x HASH_SIDE bits
RESIZE_SIDE = 32  # pixels a side before the DCT (imagehash: hash_size * highfreq_factor)
DRAFT_SIDE = 2 * RESIZE_SIDE  # JPEG draft decodes to at least this, then Lanczos to RESIZE_SIDE
MAX_PIXELS = ImagePolicy().max_pixels

# Rows k < 8 of the (unnormalised) DCT-II matrix of size 32: C[k, n] = cos(pi * (2n + 1) * k / 64).
# scipy's dct is 2 * C @ x; the factor does not change which side of the median a coefficient is.
_DCT = np.cos(np.pi * np.outer(np.arange(HASH_SIDE), 2 * np.arange(RESIZE_SIDE) + 1) / (2 * RESIZE_SIDE))


def gray_thumbnail(data: bytes, *, exact: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """The 32x32 uint8 grayscale image pHash works on, or None when `data` is not a readable image
    within `max_pixels`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, truncated-file warnings
        try:
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width < 1 or height < 1 or width * height > max_pixels:
                return None
            if im.format == "JPEG" and not exact:
                im.draft("L", (DRAFT_SIDE, DRAFT_SIDE))  # libjpeg scales while decoding
            small = im.convert("L").resize((RESIZE_SIDE, RESIZE_SIDE), Image.Resampling.LANCZOS)
            return np.asarray(small, dtype=np.uint8)
        except Exception:  # any unreadable image (truncated, corrupt, bomb): no hash, counted
            return None


def dct_hashes(thumbs: np.ndarray) -> np.ndarray:
    """pHashes (uint64) of a batch of 32x32 grayscale thumbnails, shape (n, 32, 32)."""
    pixels = thumbs.astype(np.float64)
    low = _DCT @ pixels @ _DCT.T  # (n, 8, 8): the low-frequency corner of the 2-D DCT
    flat = low.reshape(len(thumbs), HASH_SIDE * HASH_SIDE)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def phashes(images: Sequence[bytes | None], *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint64, ok bool) for encoded images; `ok` is False (hash 0) where there is no hash."""
    hashes = np.zeros(len(images), dtype=np.uint64)
    ok = np.zeros(len(images), dtype=bool)
    thumbs, where = [], []
    for k, data in enumerate(images):
        thumb = gray_thumbnail(data, exact=exact) if data else None
        if thumb is not None:
            thumbs.append(thumb)
            where.append(k)
    if thumbs:
        hashes[where] = dct_hashes(np.stack(thumbs))
        ok[where] = True
    return hashes, ok


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances between uint64 hashes (broadcasting), as uint8."""
    return np.bitwise_count(np.bitwise_xor(a, b))


__all__ = ["MAX_PIXELS", "dct_hashes", "gray_thumbnail", "hamming", "phashes"]
