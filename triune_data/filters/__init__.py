"""`triune filter`: rule filters, dedup and contamination, caps and mixing, difficulty curation.

Importing this package registers every built-in filter (one module each); `base` has the unit.
"""

# ruff: noqa: F401  (importing a filter module registers its filters; one line per module, sorted)
import triune_data.filters.answers
import triune_data.filters.band
import triune_data.filters.boxes
import triune_data.filters.contamination
import triune_data.filters.dedup
import triune_data.filters.difficulty
import triune_data.filters.duplicate
import triune_data.filters.gold
import triune_data.filters.image_size
import triune_data.filters.near_dedup
import triune_data.filters.ocr
import triune_data.filters.phrases
import triune_data.filters.prompt_tokens
import triune_data.filters.sample_weight
import triune_data.filters.source_cap
import triune_data.filters.task_cap
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
