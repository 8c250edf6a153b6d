"""Image checks that read headers, not pixels.

A converter that passes encoded bytes through is bound by I/O; one that decodes is bound by decode
(docs/cpu-stack.md: ~1,600 JPEG decodes a second per core against GB/s for bytes). So by default we read the
format and size from the header and check that the file is complete (end marker present), and
decode only when the recipe asks for `check: decode`.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

from triune_data.rejects import RejectReason

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
MAX_IMAGE_BYTES = 64 << 20  # default of `images.max_bytes`: a 12k x 9k photo is ~30 MB as JPEG


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
    max_bytes: int = MAX_IMAGE_BYTES  # an image file or embedded image is read up to this
    formats: frozenset[str] = ALLOWED_FORMATS


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """Format and size of an image as a loader shows it: after its EXIF orientation.

    `datasets`' Image feature and transformers' `load_image` apply the EXIF orientation
    (`PIL.ImageOps.exif_transpose`), so a model sees a JPEG stored as 200x100 with orientation 6
    as 100x200. `orientation` is the tag (1-8; 1 when absent or invalid): 2-8 flip or rotate the
    stored pixels, 5-8 also swap the sides.
    """

    format: str
    width: int
    height: int
    orientation: int = 1

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the pixels as the file stores them."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


def _shown(fmt: str, width: int, height: int, orientation: int) -> ImageInfo:
    orientation = orientation if 1 <= orientation <= 8 else 1  # as exif_transpose: others do nothing
    if orientation >= 5:
        width, height = height, width
    return ImageInfo(fmt, width, height, orientation)


# ----------------------------------------------------------------------------------------------
# Header walkers for JPEG and PNG: size, orientation and completeness without Pillow.


def _tiff_orientation(tiff: bytes) -> int | None:
    """The Orientation tag of IFD0 in a TIFF-structured EXIF block; 1 when it has none; None when
    the block is not what it should be (then Pillow decides)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    if ifd + 2 + 12 * count > len(tiff):
        return None
    for k in range(count):
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, ifd + 2 + 12 * k)
        if tag == 0x0112:
            if n != 1 or kind not in (3, 4):
                return None
            return struct.unpack_from(order + ("H" if kind == 3 else "I"), tiff, ifd + 10 + 12 * k)[0]
    return 1


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_markers(data: bytes) -> tuple[list[tuple[int, int]], tuple[int, int] | None, int | None]:
    """Walk the marker segments up to the first start of scan (SOS), stopping early at anything
    that is not a well-formed segment: ((payload start, end) of every frame header (SOF), those of
    the first Exif APP1 segment (Pillow reads its header; later ones are appended), the offset of
    the first scan's entropy-coded data or None)."""
    pos, n = 2, len(data)
    frames: list[tuple[int, int]] = []
    exif = None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if end < pos + 4 or end > n:
            break
        if marker == 0xDA:
            return frames, exif, end
        if marker in _SOF_MARKERS:
            frames.append((pos + 4, end))
        elif marker == 0xE1 and exif is None and data.startswith(b"Exif\0\0", pos + 4):
            exif = (pos + 10, end)
        pos = end
    return frames, exif, None


def _jpeg(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, orientation) from the markers before the first scan, or None when anything
    is unusual (Pillow then decides). Checks what it reads: a frame header of another length than
    its components need is corrupt; one frame header, 8-bit samples and 1, 3 or 4 components are
    what Pillow reads, anything else is left to Pillow."""
    frames, exif, scan = _jpeg_markers(data)
    for at, end in frames:
        layers = data[at + 5] if end - at >= 6 else 0
        if end - at != 6 + 3 * layers:
            raise ImageProblem(
                "corrupt_image", f"JPEG frame header of {end - at + 2} bytes for {layers} components"
            )
    if scan is None or len(frames) != 1:
        return None
    bits, height, width, layers = struct.unpack_from(">BHHB", data, frames[0][0])
    if bits != 8 or layers not in (1, 3, 4):
        return None
    orientation = _tiff_orientation(data[exif[0] : exif[1]]) if exif else 1
    return None if orientation is None else (width, height, orientation)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_IEND = b"\0\0\0\0IEND\xaeB`\x82"


def _png(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, orientation) of a PNG, or None when anything is unusual (Pillow decides).

    Checks what it reads (ImageProblem `corrupt_image`), as Pillow's reader does: the IHDR fields
    Pillow decodes by, and the CRC of every chunk up to the first IDAT (a file whose IHDR checksum
    is wrong used to pass here; Pillow refuses it). Chunks after it are walked by their lengths
    only, for an eXIf chunk (Pillow finds it anywhere).
    """
    if len(data) < 33 or data[8:16] != b"\0\0\0\rIHDR":
        return None
    width, height, depth, color, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if zlib.crc32(data[12:29]) != struct.unpack_from(">I", data, 29)[0]:
        raise ImageProblem("corrupt_image", "PNG header (IHDR) fails its checksum")
    if depth not in _PNG_DEPTHS.get(color, ()) or interlace > 1:  # Pillow ignores the other two fields
        raise ImageProblem(
            "corrupt_image",
            f"PNG header (IHDR) is invalid: depth {depth}, colour type {color}, interlace {interlace}",
        )
    pos, n, orientation, pixels = 33, len(data), None, False
    while pos + 12 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if kind == b"IDAT":
            pixels = True
        elif kind == b"IEND":
            break
        if end > n:
            if pixels:
                break  # truncated pixel data: `_complete` says so
            return None
        if not pixels and zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise ImageProblem("corrupt_image", f"PNG chunk {kind.decode('latin-1')!r} fails its checksum")
        if kind == b"eXIf" and orientation is None:
            orientation = _tiff_orientation(data[pos + 8 : end - 4])
            if orientation is None:
                return None
        pos = end
    return (width, height, orientation or 1) if pixels else None


def _fast_info(data: bytes) -> ImageInfo | None:
    """Format, size and orientation of a JPEG or PNG from its header bytes, or None to ask Pillow.

    Opening an image with Pillow costs ~50 µs of Python per file; walking the JPEG segments to the
    first scan costs a few. Anything unusual returns None and Pillow decides, so this is a
    shortcut, never a second opinion.
    """
    if data[:8] == _PNG_SIGNATURE:
        png = _png(data)
        return _shown("PNG", *png) if png else None
    if data[:3] == b"\xff\xd8\xff":
        jpeg = _jpeg(data)
        return _shown("JPEG", *jpeg) if jpeg else None
    return None


def _complete(fmt: str, data: bytes) -> bool:
    """Does the byte string hold a whole file of this format? Bytes after the end (a trailer some
    cameras and tools append) are allowed: Pillow and every decoder ignore them."""
    n = len(data)
    if fmt in ("JPEG", "MPO"):
        # 0xFFD9 appears only as the end-of-image marker after the first scan begins (entropy
        # data escapes 0xFF); it usually ends the file, else a trailer follows it.
        if data.rfind(b"\xff\xd9", max(0, n - 1024)) >= 0:
            return True
        scan = _jpeg_markers(data)[2]
        return scan is not None and data.find(b"\xff\xd9", scan) >= 0
    if fmt == "PNG":
        return data.endswith(_IEND) or _png_end(data) is not None
    if fmt == "GIF":
        return data.rfind(b"\x3b", max(0, n - 16)) >= 0 or _gif_end(data) is not None
    if fmt == "WEBP":
        return n >= 12 and struct.unpack_from("<I", data, 4)[0] + 8 <= n
    if fmt == "BMP":
        return n >= 6 and struct.unpack_from("<I", data, 2)[0] <= n
    return True  # TIFF: offsets point anywhere; only a decode can tell


def _png_end(data: bytes) -> int | None:
    """Offset just past the IEND chunk, walking chunks by their lengths; None if it is missing."""
    pos, n = 8, len(data)
    while pos + 12 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        if kind == b"IEND":
            return pos if pos <= n else None
    return None


def _gif_end(data: bytes) -> int | None:
    """Offset just past the GIF trailer, walking blocks and sub-blocks; None if it is missing."""
    n = len(data)
    if n < 13:
        return None
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while pos < n:
        block = data[pos]
        if block == 0x3B:
            return pos + 1
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if pos + 10 > n:
                return None
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        else:
            return None
        while pos < n and data[pos]:
            pos += data[pos] + 1
        pos += 1
    return None


# ----------------------------------------------------------------------------------------------


def probe(data: bytes, policy: ImagePolicy = ImagePolicy()) -> ImageInfo:
    """Format, size (as shown) and orientation of an encoded image, or ImageProblem with a reason."""
    if not data:
        raise ImageProblem("corrupt_image", "empty image file")
    fast = _fast_info(data) if policy.check == "header" else None
    if fast is not None and fast.format in policy.formats and fast.width > 0 and fast.height > 0:
        return _checked(fast, data, policy)
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
        info = _checked(_shown(im.format or "?", *im.size, _orientation(im)), data, policy)
        if policy.check == "decode":
            try:
                im.load()
            except Exception as exc:
                raise ImageProblem("corrupt_image", f"decode failed: {exc}") from None
    return info


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation of an image Pillow opened, without decoding its pixels."""
    try:
        if im.format == "PNG":  # PNG's getexif() decodes the image to find a late eXIf chunk
            exif = Image.Exif()
            exif.load(im.info.get("exif") or b"")
        else:
            exif = im.getexif()
        value = exif.get(0x0112, 1)
    except Exception:  # a broken EXIF block: loaders that cannot read it apply nothing
        return 1
    return value if type(value) is int else 1


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
