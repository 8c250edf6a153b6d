"""The default task scope of a filter, as a pydantic field (a fresh list per instance)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from triune_data.types import Task


def default_tasks(*tasks: Task) -> Any:
    """`tasks: list[Task] | None = default_tasks("detection")`: the filter's own scope by default."""
    return Field(default_factory=lambda: list(tasks), description="Only rows of these tasks.")
