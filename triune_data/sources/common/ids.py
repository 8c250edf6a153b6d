"""Record ids: one rule for every adapter.

A record's own id is a non-bool integer, or a string with at least one non-whitespace character,
taken as `str(value)` unchanged. Anything else is no id: missing, `None`, `""`, `" "`, a bool, a
float, a list. A record without an id of its own is named by its place in the source (`line7` in
a JSONL file, `row3` in a list or a parquet file, as each reader names places), which depends only
on the file, so rebuilds and resumed builds name it the same and two id-less records never
collide. (COCO is the exception that proves the rule: its image ids join the annotations, so an
image without an id of its own cannot be used and is rejected instead.)

>>> own_id(" "), own_id(0), own_id("a b"), own_id(True)
(None, '0', 'a b', None)
>>> record_id({"id": "  ", "question_id": 17}, ("id", "question_id"), position="line3")
'17'
>>> record_id({"id": ""}, ("id",), position="line3")
'line3'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_own_id(value: Any) -> bool:
    """Is `value` a record id (`own_id` is not None), without making its text?"""
    return type(value) is int or (isinstance(value, str) and not value.isspace() and value != "")


def own_id(value: Any) -> str | None:
    """`value` as a record id, or None when it is no id (see the module docstring)."""
    return str(value) if is_own_id(value) else None


def record_id(record: Any, keys: Sequence[str], *, position: str) -> str:
    """The first of `keys` that holds an id in `record` (a mapping), else `position`."""
    if isinstance(record, Mapping):
        for key in keys:
            found = own_id(record.get(key))
            if found is not None:
                return found
    return position
