"""`triune filter`: rule filters, dedup and contamination, caps and mixing, difficulty curation.

Importing this package registers every built-in filter (one module each); `base` has the unit.
"""

# Built-in filters, one module each (importing registers them).
from triune_data.filters import duplicate as duplicate
from triune_data.filters import sample_weight as sample_weight
from triune_data.filters import source_cap as source_cap
from triune_data.filters import task_cap as task_cap
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
