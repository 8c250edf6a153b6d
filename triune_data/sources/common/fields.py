"""Field parsing helpers shared by source adapters: each raises `BadRecord` (-> a named Reject)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from triune_data.rejects import RejectReason
from triune_data.sources.base import ImageFile


class BadRecord(Exception):
    """A record that becomes a Reject with `reason` (raised by the parsing helpers)."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def text(value: Any, what: str) -> str:
    """A non-empty string that encodes as UTF-8 (JSON escapes can carry lone surrogates)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRecord("malformed_record", f"{what} is missing or not text: {str(value)[:60]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord("invalid_text_encoding", f"{what} is not valid UTF-8: {value[:40]!r}") from None
    return value


_NUMBERS = frozenset({int, float})  # exact types: JSON true/false are bools, not numbers


def number(value: Any) -> bool:
    return type(value) in _NUMBERS


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


def image_file(root: Path, name: Any) -> ImageFile:
    """The image `name` (relative to `root`, or absolute); the shard stores the normalised name."""
    rel = posixpath.normpath(text(name, "image file name"))  # "./a/b.png" -> "a/b.png"
    return ImageFile(file=os.path.join(root, rel), name=rel)


def first(row: dict, keys: list[str], what: str) -> Any:
    for k in keys:
        if k in row:
            return row[k]
    raise BadRecord("malformed_record", f"no {what} (looked for {', '.join(keys)})")
