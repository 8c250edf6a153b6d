"""Field parsing helpers shared by source adapters: each raises `BadRecord` (-> a named Reject)."""

from __future__ import annotations

import math
import os
import posixpath
from pathlib import Path
from typing import Any, TypeGuard

from triune_data.rejects import RejectReason
from triune_data.sources.base import ImageFile, SourceContext


class BadRecord(Exception):
    """A record that becomes a Reject with `reason` (raised by the parsing helpers)."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def text(value: Any, what: str) -> str:
    """A non-empty string that encodes as UTF-8 (JSON escapes can carry lone surrogates)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRecord("malformed_record", f"{what} is missing or not text: {str(value)[:60]!r}")
    if value.isascii():  # ASCII always encodes
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord("invalid_text_encoding", f"{what} is not valid UTF-8: {value[:40]!r}") from None
    return value


_NUMBERS = frozenset({int, float})  # exact types: JSON true/false are bools, not numbers


def number(value: Any) -> TypeGuard[int | float]:
    """An int or a float, not a bool."""
    return type(value) in _NUMBERS


def number_text(value: int | float, what: str) -> str:
    """A number that stands for text (an answer, a ground truth) as that text; NaN and infinity,
    which JSON files and float columns can hold, are no answer (`non_finite_number`).

    >>> number_text(3, "answer"), number_text(2.5, "answer")
    ('3', '2.5')
    """
    if type(value) is float and not math.isfinite(value):
        raise BadRecord("non_finite_number", f"{what} is {value!r}, not a finite number")
    return str(value)


def coords(value: Any, what: str) -> list[float]:
    """Four numbers (NaN and inverted boxes pass: the pipeline rejects them as `invalid_box`)."""
    if type(value) is not list or len(value) != 4 or not _NUMBERS.issuperset(map(type, value)):
        raise BadRecord("malformed_record", f"{what} is not four numbers: {str(value)[:80]}")
    try:
        return [float(v) for v in value]
    except OverflowError:  # JSON integers have no size limit
        raise BadRecord(
            "malformed_record", f"{what} has a number beyond float range: {str(value)[:80]}"
        ) from None


def image_file(root: Path, name: Any, *, ctx: SourceContext) -> ImageFile:
    """The image `name`, relative to the images folder `root`, as the one rule every adapter uses:

    - a name is non-empty UTF-8 text without a NUL byte (`malformed_record`, `invalid_text_encoding`);
    - it stays inside `root` (`path_outside_root` for `../` or an absolute path) unless the recipe
      sets `images.allow_outside_root`; symlinks inside `root` are followed wherever they point
      (the Hugging Face cache is a tree of them);
    - the shard stores the name normalised and relative to `root` ("./a/b.png" -> "a/b.png"),
      never an absolute local path.
    """
    name = text(name, "image file name")
    if "\0" in name:
        raise BadRecord("malformed_record", f"image file name holds a NUL byte: {name[:60]!r}")
    rel = posixpath.normpath(name) if "/" in name else name  # a bare file name is its own normal form
    outside = posixpath.isabs(rel) or rel == ".." or rel.startswith("../")
    if outside and not ctx.images_outside_root:
        where = os.path.relpath(root, ctx.base_dir)
        shown = (
            f"an absolute path to {posixpath.basename(rel)!r}" if posixpath.isabs(rel) else repr(name[:120])
        )
        raise BadRecord(
            "path_outside_root",
            f"image {shown} is outside the images folder {where!r} (images.allow_outside_root)",
        )
    file = os.path.join(root, rel)
    if outside:
        rel = os.path.relpath(file, root).replace(os.sep, "/")
    return ImageFile(file=file, name=rel, recipe_dir=str(ctx.base_dir))


def shard_path(name: str | None) -> str | None:
    r"""An image path as a shard may store it: an absolute local path (a `{"bytes", "path"}` image
    that `datasets` wrote with its cache path) keeps only its file name.

    >>> shard_path("/home/me/.cache/x/0001.jpg"), shard_path("a/b.png"), shard_path("C:\\data\\c.png")
    ('0001.jpg', 'a/b.png', 'c.png')
    """
    if name is None or not (posixpath.isabs(name) or name.startswith("\\") or name[1:3] in (":\\", ":/")):
        return name
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def first(row: dict, keys: list[str], what: str) -> Any:
    for k in keys:
        if k in row:
            return row[k]
    raise BadRecord("malformed_record", f"no {what} (looked for {', '.join(keys)})")
