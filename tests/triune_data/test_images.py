import io
import struct
import zlib

import pytest
from PIL import Image

from triune_data.images import (
    ImagePolicy,
    ImageProblem,
    probe,
)


def encode(fmt: str, size=(48, 32), **kw) -> bytes:
    buf = io.BytesIO()
    im = Image.effect_noise(size, 60).convert("RGB")  # noise: the file is mostly pixel data
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a size: Pillow reads the size without allocating pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_probe_reads_size_and_format(fmt):
    info = probe(encode(fmt))
    assert (info.width, info.height) == (48, 32)
    assert info.format == fmt


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "corrupt_image"),
        (b"hello, not an image at all", "unknown_image_format"),
        (encode("JPEG", size=(256, 256))[:-2000], "truncated_image"),
        (encode("PNG", size=(256, 256))[:-20], "truncated_image"),
        (encode("GIF", size=(256, 256))[:-3], "truncated_image"),
        (encode("WEBP", size=(256, 256))[:-100], "truncated_image"),
        (png_header_only(20_000, 20_000), "image_too_large"),  # 400 Mpx decompression bomb
        (png_header_only(10_000, 40), "extreme_aspect_ratio"),
        (encode("ICO", size=(32, 32)), "unknown_image_format"),  # readable, but not an accepted format
    ],
    ids=[
        "empty",
        "text",
        "jpeg-truncated",
        "png-truncated",
        "gif-truncated",
        "webp-truncated",
        "bomb",
        "aspect",
        "ico",
    ],
)
def test_probe_rejects_with_reason(data, reason):
    with pytest.raises(ImageProblem) as exc:
        probe(data)
    assert exc.value.reason == reason


def test_pixel_limit_is_configurable():
    data = encode("PNG", size=(100, 100))
    assert probe(data, ImagePolicy(max_pixels=10_000)).width == 100
    with pytest.raises(ImageProblem) as exc:
        probe(data, ImagePolicy(max_pixels=9_999))
    assert exc.value.reason == "image_too_large"


def test_decode_check_finds_damage_the_header_check_cannot_see():
    good = encode("PNG", size=(64, 64))
    # Flip bytes inside the compressed pixel data; header and IEND stay intact.
    idat = good.index(b"IDAT") + 8
    broken = good[:idat] + bytes(b ^ 0xFF for b in good[idat : idat + 12]) + good[idat + 12 :]
    assert probe(broken).width == 64  # header mode: size is readable, end marker present
    with pytest.raises(ImageProblem) as exc:
        probe(broken, ImagePolicy(check="decode"))
    assert exc.value.reason == "corrupt_image"


def _jpeg_with_exif_thumbnail() -> bytes:
    thumb = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 0, 0)).save(thumb, "JPEG")
    exif = Image.Exif()
    exif[0x010E] = "a description"
    buf = io.BytesIO()
    # The APP1 segment embeds a second SOI/SOF (the thumbnail): the walker must skip it.
    Image.effect_noise((64, 48), 30).convert("RGB").save(buf, "JPEG", exif=exif.tobytes() + thumb.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        encode("JPEG", size=(61, 37)),
        encode("JPEG", size=(61, 37), progressive=True),
        encode("JPEG", size=(61, 37), subsampling=0, quality=95),
        encode("PNG", size=(61, 37)),
        _jpeg_with_exif_thumbnail(),
    ],
    ids=["baseline", "progressive", "444", "png", "exif-thumbnail"],
)
def test_header_shortcut_agrees_with_pillow(data):
    from triune_data.images import _fast_info

    fast = _fast_info(data)
    im = Image.open(io.BytesIO(data))
    assert fast is not None and (fast.format, fast.width, fast.height) == (im.format, *im.size)


def test_grayscale_and_cmyk_jpegs():
    for mode in ("L", "CMYK"):
        buf = io.BytesIO()
        Image.new(mode, (33, 21)).save(buf, "JPEG")
        assert (probe(buf.getvalue()).width, probe(buf.getvalue()).height) == (33, 21)
