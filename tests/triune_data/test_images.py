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


# ----------------------------------------------------------------------------------------------
# Bytes after the end: decoders ignore them, so do we (a camera's trailer, a tool's appended data).


def _gif(size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 60).convert("P").save(buf, "GIF")
    return buf.getvalue()


TRAILERS = {
    "16-zero-bytes": b"\0" * 16,
    "4KB-text": b"trailer data " * 315,
    "100KB-noise": bytes((i * 7919) % 251 for i in range(100_000)),
    "a-second-image": b"",  # filled in below: another whole file of the same format
}


@pytest.mark.parametrize("trailer", TRAILERS, ids=TRAILERS.keys())
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_bytes_after_the_end_marker_are_kept(fmt, trailer):
    data = _gif() if fmt == "GIF" else encode(fmt, size=(64, 48))
    tail = TRAILERS[trailer] or (_gif((9, 9)) if fmt == "GIF" else encode(fmt, size=(9, 9)))
    padded = data + tail
    Image.open(io.BytesIO(padded)).load()  # Pillow decodes it
    for check in ("header", "decode"):
        info = probe(padded, ImagePolicy(check=check))
        assert (info.format, info.width, info.height) == (fmt, *Image.open(io.BytesIO(data)).size)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_a_truncated_image_is_still_truncated_with_or_without_a_trailer_check(fmt):
    data = _gif((64, 48)) if fmt == "GIF" else encode(fmt, size=(128, 96))
    with pytest.raises(ImageProblem) as exc:
        probe(data[: len(data) * 2 // 3])
    assert exc.value.reason == "truncated_image"


# ----------------------------------------------------------------------------------------------
# The header walker checks what it reads: it accepts an image exactly when Pillow can open and
# decode it (a PNG whose IHDR checksum is wrong passed before, though Pillow refuses it).


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png_from(chunks: list[tuple[bytes, bytes]], *, bad_crc: bytes = b"") -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) ^ (0xFFFF if kind == bad_crc else 0)
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    return out


def _png_with(**ihdr_changes: int) -> bytes:
    chunks = _png_chunks(encode("PNG", size=(40, 30)))
    fields = dict(
        zip(
            ["w", "h", "depth", "color", "compression", "filter", "interlace"],
            struct.unpack(">IIBBBBB", chunks[0][1]),
            strict=True,
        )
    )
    fields.update(ihdr_changes)
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", *fields.values()))
    return _png_from(chunks)


def _png_bad_crc(kind: bytes) -> bytes:
    chunks = _png_chunks(encode("PNG", size=(40, 30)))
    chunks.insert(1, (b"tEXt", b"Comment\0hello"))
    return _png_from(chunks, bad_crc=kind)


def _jpeg_sof(**changes: int) -> bytes:
    data = bytearray(encode("JPEG", size=(40, 30)))
    at = data.index(b"\xff\xc0")
    if "bits" in changes:
        data[at + 4] = changes["bits"]
    if "layers" in changes:
        data[at + 9] = changes["layers"]
    if "length" in changes:
        struct.pack_into(">H", data, at + 2, changes["length"])
    return bytes(data)


def _jpeg_bad_exif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, "JPEG", exif=b"Exif\0\0XX*\0garbage")
    return buf.getvalue()


MUTATED = {
    "png-ihdr-crc": _png_bad_crc(b"IHDR"),
    "png-text-chunk-crc": _png_bad_crc(b"tEXt"),
    "png-bit-depth-3": _png_with(depth=3),
    "png-colour-type-5": _png_with(color=5),
    "png-palette-16-bit": _png_with(color=3, depth=16),
    "png-interlace-2": _png_with(interlace=2),
    "png-compression-1": _png_with(compression=1),
    "png-zero-width": _png_with(w=0),
    "jpeg-12-bit": _jpeg_sof(bits=12),
    "jpeg-2-components": _jpeg_sof(layers=2),
    "jpeg-sof-too-short": _jpeg_sof(length=8),
    "jpeg-bad-exif-header": _jpeg_bad_exif(),
    "png-good": encode("PNG", size=(40, 30)),
    "jpeg-good": encode("JPEG", size=(40, 30)),
}


def _pillow_reads(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("data", MUTATED.values(), ids=MUTATED.keys())
def test_the_header_check_accepts_exactly_what_pillow_reads(data):
    for check in ("header", "decode"):
        try:
            probe(data, ImagePolicy(check=check))
            accepted = True
        except ImageProblem as exc:
            accepted = False
            assert exc.reason in ("corrupt_image", "truncated_image", "unknown_image_format"), exc.reason
        assert accepted == _pillow_reads(data), check
