"""One image-path rule for every adapter: inside the images folder, never an absolute path stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.triune_data.sources.test_contract import KITS, pools
from triune_data.sources.base import Draft, ImageBytes, ImageFile, Reject, SourceContext, get_source
from triune_data.sources.common.fields import shard_path
from triune_data.sources.common.tabular import image_sources

# How each adapter's record names its image.
SET_PATH: dict[str, Callable[[dict, str], dict]] = {
    "clevr": lambda r, p: {**r, "image_path": p},
    "coco": lambda r, p: {**r, "file_name": p},
    "ocr_vqa": lambda r, p: {**r, "image": p},
    "odvg": lambda r, p: {**r, "filename": p},
    "orsta": lambda r, p: {**r, "images": [{"bytes": None, "path": p}]},
    "refcoco": lambda r, p: {**r, "image": p},
    "vqa": lambda r, p: {**r, "image": p},
}

OUTSIDE = {
    "parent": "../secret.png",
    "parent-after-a-folder": "a/../../secret.png",
    "deep-parent": "a/b/../../../../home/user/x.png",
    "absolute": "/etc/hostname",
    "absolute-image": "/tmp/x.png",
    "just-dotdot": "..",
}
MALFORMED = {
    "nul-byte": ("a\0b.png", "malformed_record"),
    "surrogate": ("caf\udce9.png", "invalid_text_encoding"),
}


def read(adapter: str, tmp, records: list[Any], *, outside: bool = False) -> list[Draft | Reject]:
    kit = KITS[adapter]
    assert kit is not None
    options = kit.write(tmp, records)
    ctx = SourceContext(f"{adapter}_src", "train", 0, tmp, pools(), images_outside_root=outside)
    return list(get_source(adapter).read(options, ctx))


def test_every_adapter_with_image_paths_is_covered():
    assert sorted(SET_PATH) == sorted(name for name, kit in KITS.items() if kit is not None)


@pytest.mark.parametrize("adapter", sorted(SET_PATH))
@pytest.mark.parametrize("path", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_a_path_leaving_the_images_folder_is_rejected(adapter, path, tmp_path):
    kit = KITS[adapter]
    assert kit is not None
    records = [kit.valid(0, "a"), SET_PATH[adapter](kit.valid(1, "b"), path), kit.valid(2, "c")]
    out = read(adapter, tmp_path, records)
    rejects = [r for r in out if isinstance(r, Reject)]
    assert len(rejects) == 1 and rejects[0].reason == "path_outside_root", out
    assert "images.allow_outside_root" in rejects[0].detail
    assert sum(isinstance(r, Draft) for r in out) == 2


@pytest.mark.parametrize("adapter", sorted(SET_PATH))
@pytest.mark.parametrize("path", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_the_recipe_option_allows_them_and_the_shard_name_stays_relative(adapter, path, tmp_path):
    kit = KITS[adapter]
    assert kit is not None
    out = read(adapter, tmp_path, [SET_PATH[adapter](kit.valid(1, "b"), path)], outside=True)
    assert len(out) == 1 and isinstance(out[0], Draft), out
    image = out[0].images[0]
    assert isinstance(image, ImageFile)
    assert not image.name.startswith("/") and image.name.startswith(".."), image.name


@pytest.mark.parametrize("adapter", sorted(SET_PATH))
@pytest.mark.parametrize("path, reason", MALFORMED.values(), ids=MALFORMED.keys())
def test_an_unusable_name_is_rejected(adapter, path, reason, tmp_path):
    kit = KITS[adapter]
    assert kit is not None
    if adapter == "orsta" and "\udce9" in path:
        pytest.skip(
            "a parquet string cannot hold a lone surrogate (see test_hostile for bytes that are not UTF-8)"
        )
    out = read(adapter, tmp_path, [kit.valid(0, "a"), SET_PATH[adapter](kit.valid(1, "b"), path)])
    assert [type(r) for r in out] == [Draft, Reject], out
    assert out[1].reason == reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name, stored",
    [
        ("a/./b/../c.png", "a/c.png"),
        ("./x.png", "x.png"),
        ("sub/dir/x.png", "sub/dir/x.png"),
    ],
)
def test_names_inside_the_folder_are_stored_normalised(tmp_path, name, stored):
    ctx = SourceContext("s", "train", 0, tmp_path, pools())
    (image,) = image_sources(name, tmp_path / "imgs", ctx=ctx)
    assert isinstance(image, ImageFile) and image.name == stored
    assert image.file == str(tmp_path / "imgs" / stored)


@pytest.mark.parametrize(
    "path, stored",
    [
        ("/root/.cache/huggingface/datasets/abc/0001.jpg", "0001.jpg"),
        ("C:\\data\\images\\2.png", "2.png"),
        ("\\\\server\\share\\3.png", "3.png"),
        ("relative/4.png", "relative/4.png"),
        (None, None),
    ],
    ids=["posix", "windows-drive", "unc", "relative", "none"],
)
def test_embedded_images_never_keep_an_absolute_local_path(tmp_path, path, stored):
    ctx = SourceContext("s", "train", 0, tmp_path, pools())
    (image,) = image_sources({"bytes": b"\x89PNG....", "path": path}, tmp_path, ctx=ctx)
    assert isinstance(image, ImageBytes) and image.name == stored
    assert shard_path(path) == stored
