"""Image checks that read headers, not pixels.

A converter that passes encoded bytes through is bound by I/O; one that decodes is bound by decode
(stack.md: ~1,600 JPEG decodes a second per core against GB/s for bytes). So by default we read the
format and size from the header and check that the file is complete (end marker present), and
decode only when the recipe asks for `check: decode`.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

from triune_data.rejects import RejectReason

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})


class ImageProblem(Exception):
    """An image that cannot go into a shard; `reason` becomes the reject reason."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImagePolicy:
    check: Literal["header", "decode"] = "header"
    max_pixels: int = 89_478_485  # PIL's own decompression-bomb warning limit
    max_aspect_ratio: float = 200.0  # Qwen2-VL's smart_resize refuses anything wider
    formats: frozenset[str] = ALLOWED_FORMATS


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    width: int
    height: int


def _complete(fmt: str, data: bytes) -> bool:
    """Does the byte string end the way a whole file of this format ends?"""
    n = len(data)
    if fmt in ("JPEG", "MPO"):
        # 0xFFD9 appears only as the end-of-image marker in the last KB (entropy data escapes 0xFF).
        return data.rfind(b"\xff\xd9", max(0, n - 1024)) >= 0
    if fmt == "PNG":
        return data.rfind(b"IEND", max(0, n - 64)) >= 0
    if fmt == "GIF":
        return data.rfind(b"\x3b", max(0, n - 16)) >= 0
    if fmt == "WEBP":
        return n >= 12 and struct.unpack_from("<I", data, 4)[0] + 8 <= n
    if fmt == "BMP":
        return n >= 6 and struct.unpack_from("<I", data, 2)[0] <= n
    return True  # TIFF: offsets point anywhere; only a decode can tell


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _fast_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) of a JPEG or PNG from its header bytes, or None to ask Pillow.

    Opening an image with Pillow costs ~50 µs of Python per file; walking the JPEG segments to the
    frame header costs a few. Anything unusual (no SOF before the scan, odd sizes) returns None
    and Pillow decides, so this is a shortcut, never a second opinion.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack_from(">II", data, 16)
        return "PNG", width, height
    if data[:3] != b"\xff\xd8\xff":
        return None
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _SOF_MARKERS:
            if pos + 9 > n:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return "JPEG", width, height
        pos += 2 + length
    return None


def probe(data: bytes, policy: ImagePolicy = ImagePolicy()) -> ImageInfo:
    """Format and size of an encoded image, or ImageProblem with a reason."""
    if not data:
        raise ImageProblem("corrupt_image", "empty image file")
    fast = _fast_size(data) if policy.check == "header" else None
    if fast is not None and fast[0] in policy.formats and fast[1] > 0 and fast[2] > 0:
        return _checked(ImageInfo(*fast), data, policy)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and not _complete("WEBP", data):
        # Pillow's WebP reader decodes on open and only says "could not create decoder".
        raise ImageProblem("truncated_image", "WEBP data shorter than its RIFF header declares")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageProblem("unknown_image_format", "not an image format Pillow can identify") from None
        except Image.DecompressionBombError as exc:
            raise ImageProblem("image_too_large", str(exc)) from None
        except Exception as exc:
            truncated = "truncated" in str(exc).lower()
            raise ImageProblem(
                "truncated_image" if truncated else "corrupt_image", f"unreadable header: {exc}"
            ) from None
        info = _checked(ImageInfo(im.format or "?", *im.size), data, policy)
        if policy.check == "decode":
            try:
                im.load()
            except Exception as exc:
                raise ImageProblem("corrupt_image", f"decode failed: {exc}") from None
    return info


def _checked(info: ImageInfo, data: bytes, policy: ImagePolicy) -> ImageInfo:
    fmt, width, height = info.format, info.width, info.height
    if fmt not in policy.formats:
        raise ImageProblem("unknown_image_format", f"format {fmt} is not accepted")
    if width < 1 or height < 1:
        raise ImageProblem("corrupt_image", f"size {width}x{height}")
    if width * height > policy.max_pixels:
        raise ImageProblem("image_too_large", f"{width}x{height} exceeds {policy.max_pixels} pixels")
    if max(width, height) / min(width, height) > policy.max_aspect_ratio:
        raise ImageProblem("extreme_aspect_ratio", f"{width}x{height}")
    if not _complete(fmt, data):
        raise ImageProblem("truncated_image", f"{fmt} data ends before its end marker")
    return info
