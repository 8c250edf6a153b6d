"""`triune filter`: rule filters, dedup and contamination, caps and mixing, difficulty curation.

Importing this package registers every built-in filter (one module each); `base` has the unit.
"""

from triune_data.filters import answers as answers
from triune_data.filters import boxes as boxes
from triune_data.filters import gold as gold
from triune_data.filters import image_size as image_size
from triune_data.filters import ocr as ocr
from triune_data.filters import phrases as phrases
from triune_data.filters import prompt_tokens as prompt_tokens
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
