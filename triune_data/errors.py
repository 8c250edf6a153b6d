"""One error family for everything a user can get wrong, and one for what is our fault.

The CLI prints any `TriuneError` as a single line naming the thing and the cause (the traceback
only with TRIUNE_DEBUG=1) and exits 2. A `TriuneInternalError` is a broken invariant, a bug: the
CLI asks for a report and exits 1. Code that meets bad *rows* does not raise: it produces a
reject with a reason (see `triune_data.rejects`).
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


class FileAccessError(TriuneError):
    """A file or directory named on the command line cannot be read or written (missing, a
    directory where a file is expected, no permission, a read-only place)."""


class HubError(TriuneError):
    """The Hugging Face Hub refused or could not be reached (offline, no or bad token, bad repo id)."""


class TriuneInternalError(Exception):
    """An invariant of triune's own code does not hold: a bug to report, never the user's input."""
