"""`triune filter`: rule filters, dedup and contamination, caps and mixing, difficulty curation.

Importing this package registers every built-in filter (one module each); `base` has the unit.
"""

# Built-in filters, one module each (importing registers them).
from triune_data.filters.band import DifficultyBand as DifficultyBand
from triune_data.filters.base import (
    Context,
    Filter,
    Verdict,
    filter_names,
    filter_reasons,
    get_filter,
    register_filter,
)
from triune_data.filters.difficulty import DifficultyStats as DifficultyStats

__all__ = ["Context", "Filter", "Verdict", "filter_names", "filter_reasons", "get_filter", "register_filter"]
