"""EXIF orientation: sizes and boxes in the frame a loader shows, bytes untouched, all eight tags.

What loaders show was checked, not assumed: `datasets`' Image feature and transformers'
`load_image` (what the Qwen processors' chat templates use) both apply the orientation, as
`PIL.ImageOps.exif_transpose` does; the tests below assert each of them.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageOps

from triune_data.coords import orient_box
from triune_data.images import _fast_info, probe

ORIENTATIONS = range(1, 9)
STORED = (60, 30)  # width, height of the stored pixels
RED = (5, 3, 20, 10)  # a red rectangle on the stored pixels, as a continuous xyxy box


def _picture() -> Image.Image:
    im = Image.new("RGB", STORED, (255, 255, 255))
    im.paste((255, 0, 0), RED)  # covers pixels x 5..19, y 3..9: the box (5, 3, 20, 10)
    return im


def tiff(orientation: int, order: str) -> bytes:
    """An EXIF (TIFF) block whose IFD0 holds Orientation and one other tag, in either byte order."""
    e = "<" if order == "II" else ">"
    entries = [(0x010F, 2, 4, b"cam\0"), (0x0112, 3, 1, struct.pack(e + "HH", orientation, 0))]
    body = struct.pack(e + "H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(e + "HHI", tag, kind, count) + value
    return order.encode() + struct.pack(e + "HI", 42, 8) + body + b"\0\0\0\0"


def jpeg(orientation: int, order: str = "MM") -> bytes:
    buf = io.BytesIO()
    _picture().save(buf, "JPEG", quality=95, exif=b"Exif\0\0" + tiff(orientation, order))
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(orientation: int, where: str = "before", order: str = "MM") -> bytes:
    buf = io.BytesIO()
    _picture().save(buf, "PNG")
    data = buf.getvalue()
    at = data.index(b"IDAT") - 4 if where == "before" else data.index(b"IEND") - 4
    return data[:at] + _chunk(b"eXIf", tiff(orientation, order)) + data[at:]


def shown(data: bytes) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data)))


VARIANTS = {
    "jpeg-MM": lambda o: jpeg(o, "MM"),
    "jpeg-II": lambda o: jpeg(o, "II"),
    "png-eXIf-before-IDAT": lambda o: png(o, "before"),
    "png-eXIf-after-IDAT": lambda o: png(o, "after", "II"),
}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_probe_gives_the_size_a_loader_shows(variant, orientation):
    data = variant(orientation)
    info = probe(data)
    assert info.orientation == orientation
    assert (info.width, info.height) == shown(data).size
    assert info.stored_size == STORED
    fast = _fast_info(data)  # the header walker reads it, not Pillow
    assert fast is not None and fast == info


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_orient_box_follows_the_pixels(orientation):
    """The red rectangle, drawn on the stored pixels, is where `orient_box` says once shown."""
    image = shown(png(orientation))
    mask = Image.eval(image.convert("RGB").split()[1], lambda g: 255 if g < 128 else 0)  # red: no green
    assert mask.getbbox() == orient_box(RED, orientation, stored_size=STORED)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_datasets_and_transformers_show_the_oriented_image(orientation, tmp_path):
    pytest.importorskip("transformers")
    import datasets
    from transformers.image_utils import load_image

    data = jpeg(orientation)
    info = probe(data)
    decoded = datasets.Image().decode_example({"bytes": data, "path": None})
    assert decoded.size == (info.width, info.height)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    assert load_image(str(path)).size == (info.width, info.height)


def test_the_qwen_processor_sees_the_oriented_size(tmp_path):
    """Qwen2-VL's image processor, fed what `load_image` returns, makes a patch grid of the shown
    size: a box stored in the stored frame would be wrong for every rotated image."""
    pytest.importorskip("transformers")
    import torch
    from transformers import Qwen2VLImageProcessor
    from transformers.image_utils import load_image

    from triune_data.coords import resized_size

    torch.set_num_threads(1)
    processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    path = tmp_path / "x.jpg"
    big = Image.new("RGB", (280, 112), (0, 0, 255))
    buf = io.BytesIO()
    big.save(buf, "JPEG", exif=b"Exif\0\0" + tiff(6, "MM"))  # stored 280 x 112, shown 112 x 280
    path.write_bytes(buf.getvalue())
    info = probe(buf.getvalue())
    grid = processor(images=[load_image(str(path))], return_tensors="pt")["image_grid_thw"][0].tolist()
    width, height = resized_size((info.width, info.height), min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    assert (info.width, info.height) == (112, 280)
    assert grid == [1, height // 14, width // 14]
