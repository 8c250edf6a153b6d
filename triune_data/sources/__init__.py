"""Source adapters: one module per input format, registered by name (see `base` for the contract)."""

from triune_data.registry import import_submodules
from triune_data.sources.base import (
    Draft,
    DraftBox,
    ImageBytes,
    ImageFile,
    ImageRender,
    Reject,
    SourceContext,
    SourceOptions,
    get_source,
    register_source,
    source_names,
)

import_submodules(__name__)

__all__ = [
    "Draft",
    "DraftBox",
    "ImageBytes",
    "ImageFile",
    "ImageRender",
    "Reject",
    "SourceContext",
    "SourceOptions",
    "get_source",
    "register_source",
    "source_names",
]
