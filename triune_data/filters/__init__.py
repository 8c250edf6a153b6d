"""`triune filter`: rule filters, dedup and contamination, caps and mixing, difficulty curation.

Importing this package registers every built-in filter (one module each); `base` has the unit.
"""

# Built-in filters register on import: one line per module, sorted.
import triune_data.filters.contamination
import triune_data.filters.dedup
import triune_data.filters.near_dedup  # noqa: F401
from triune_data.filters.base import (
    Context,
    Filter,
    Verdict,
    filter_names,
    filter_reasons,
    get_filter,
    register_filter,
)

__all__ = ["Context", "Filter", "Verdict", "filter_names", "filter_reasons", "get_filter", "register_filter"]
