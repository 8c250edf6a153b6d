"""One error family for everything a user can get wrong.

The CLI prints any `TriuneError` as a single line (traceback only with TRIUNE_DEBUG=1) and exits 2.
Code that meets bad *rows* does not raise: it produces a reject with a reason (see `triune_data.rejects`).
"""

from __future__ import annotations


class TriuneError(Exception):
    """Base class: a user-facing problem with a one-line message."""


class SchemaError(TriuneError):
    """A sample or a shard does not match the sample schema."""


class RecipeError(TriuneError):
    """A recipe file is unreadable or invalid (the message names the file, line and field)."""


class SourceError(TriuneError):
    """A source file cannot be read at all (the message names the file)."""


class VerifierError(TriuneError):
    """Verifier parameters or ground truth are invalid for the named verifier."""


class UnknownVerifierError(VerifierError):
    """The reward spec names a verifier that is not registered."""


class DatasetError(TriuneError):
    """An output directory is missing, incomplete or inconsistent."""
