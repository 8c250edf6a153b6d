"""The adapter registry checks what it is given."""

import pytest
from pydantic import BaseModel

from triune_data.sources.base import SourceOptions, get_source, register_source, source_names


class GoodOptions(SourceOptions):
    path: str


class NotOptions(BaseModel):
    path: str


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "fragment"),
    [
        ("_never", {"options": NotOptions}, TypeError, "SourceOptions subclass"),
        ("_never", {"options": GoodOptions, "tasks": ("dection",)}, ValueError, "tasks must be among"),
        ("_never", {"options": GoodOptions, "tasks": ()}, ValueError, "tasks must be among"),
        ("", {"options": GoodOptions}, ValueError, "non-empty"),
        ("coco", {"options": GoodOptions}, ValueError, "already registered"),
    ],
)
def test_registration_checks_what_it_is_given(name, kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        register_source(name, **kwargs)(lambda opts, ctx: iter(()))
    assert "_never" not in source_names()
    assert get_source("coco").options.__name__ == "CocoOptions"
