"""Reading a completions file for difficulty statistics: streamed, bounded, every odd line counted.

The completions file is the project's contract between inference servers, `triune eval
--num-samples K`, `triune score` and `triune filter`: JSONL, one ``{"id": str, "completions":
[str, ...]}`` per sample (``{"id": str, "completion": str}`` reads as one completion; either may
carry ``"model_input_size": [w, h]``, the size of the image the model saw, and other keys, which
are ignored).

The file can hold k × N long completions, far more than memory, so it is read twice, never held:

1. `index_completions` streams it once: parses every line (`triune_data.safe_json`, at most
   `max_line_bytes` a line), hashes its bytes (the cache key of the scores), and keeps for each
   wanted sample id only the byte offset of its line. Everything that is not a usable line for a
   wanted sample is counted, with the first few line numbers: malformed lines, ids of no sample
   in the dataset, ids seen before (the first line wins), completions that are not strings.
2. `read_lines` re-reads the lines of the samples being scored, one shard's rows at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from triune_data import safe_json
from triune_data.errors import FileAccessError

MAX_LINE_BYTES = 64 * 1024 * 1024  # 16 completions of 65,536 chars (the verifiers' cap) fit many times
EXAMPLES = 5  # line numbers kept per kind of problem: enough to find them, bounded for the manifest
_SKIP = 1 << 20  # bytes read at a time while skipping the rest of an overlong line


@dataclass(frozen=True, slots=True)
class CompletionsLine:
    """One usable line: its sample id, completions (None where a completion is not a string)."""

    line: int  # 1-based line number in the file
    id: str
    completions: tuple[str | None, ...]
    model_input_size: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Located:
    """Where the line of a wanted sample starts (byte offset) and its line number."""

    offset: int
    line: int


@dataclass
class CompletionsIndex:
    """What one pass over a completions file found (`facts()` is what reports and manifests show)."""

    path: Path
    sha256: str = ""
    lines: int = 0  # non-blank lines
    matched: int = 0  # lines kept for a wanted sample
    out_of_scope: int = 0  # lines for a sample of the dataset this filter does not score
    unknown_ids: int = 0  # lines whose id is no sample of the dataset
    duplicate_ids: int = 0  # lines whose id an earlier line already had (the first one is used)
    malformed: int = 0  # lines that are not a completions object (their reason in `examples`)
    non_string_completions: int = 0  # completions (not lines) that are not strings: not scored
    found: dict[str, Located] = field(default_factory=dict)  # wanted sample id -> its line
    examples: dict[str, list[str]] = field(default_factory=dict)  # kind -> "line N: ..." (first few)

    def note(self, kind: str, text: str) -> None:
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(text)

    def facts(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "sha256": self.sha256,
            "lines": self.lines,
            "matched": self.matched,
            "out_of_scope": self.out_of_scope,
            "unknown_ids": self.unknown_ids,
            "duplicate_ids": self.duplicate_ids,
            "malformed": self.malformed,
            "non_string_completions": self.non_string_completions,
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
        }


def parse_line(raw: bytes, line: int) -> CompletionsLine | str:
    """The line as a `CompletionsLine`, or why it is not one (a short reason, no line number)."""
    try:
        obj = safe_json.loads(raw)
    except ValueError as exc:
        return f"not JSON ({str(exc)[:80]})"
    if type(obj) is not dict:
        return f"a JSON {type(obj).__name__}, not an object"
    sample_id = obj.get("id")
    if type(sample_id) is not str or not sample_id:
        return '"id" is not a non-empty string'
    if ("completion" in obj) == ("completions" in obj):
        return 'needs exactly one of "completions" (a list) and "completion"'
    texts = [obj["completion"]] if "completion" in obj else obj["completions"]
    if type(texts) is not list or not texts:
        return '"completions" is not a non-empty list'
    size = obj.get("model_input_size")
    if size is not None and not (
        type(size) is list and len(size) == 2 and all(type(v) in (int, float) and v > 0 for v in size)
    ):
        return '"model_input_size" is not [width, height]'
    return CompletionsLine(
        line=line,
        id=sample_id,
        completions=tuple(t if type(t) is str else None for t in texts),
        model_input_size=None if size is None else (float(size[0]), float(size[1])),
    )


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot read the completions file ({exc.strerror or exc})") from None


def _raw_lines(
    f: BinaryIO, max_line_bytes: int, digest: Any = None
) -> Iterator[tuple[int, int, bytes | None]]:
    """(offset, 1-based line number, line or None when longer than `max_line_bytes`) for each line;
    every byte read goes into `digest` when given."""
    offset, n = 0, 0
    while True:
        raw = f.readline(max_line_bytes + 1)
        if not raw:
            return
        n += 1
        start, size = offset, len(raw)
        if digest is not None:
            digest.update(raw)
        too_long = size > max_line_bytes and not raw.endswith(b"\n")
        while too_long and not raw.endswith(b"\n"):  # skip the rest of the line, never held
            raw = f.readline(_SKIP)
            if not raw:
                break
            size += len(raw)
            if digest is not None:
                digest.update(raw)
        offset += size
        yield start, n, None if too_long else raw


def index_completions(
    path: Path,
    *,
    wanted: Iterable[str],
    known: Iterable[str],
    max_line_bytes: int = MAX_LINE_BYTES,
) -> CompletionsIndex:
    """One streaming pass over `path`: where the line of each `wanted` sample id is, and counts of
    everything else (`known` is every sample id of the dataset, to tell an out-of-scope line from
    an unknown id). Raises FileAccessError when the file cannot be read."""
    want, every = set(wanted), set(known)
    index = CompletionsIndex(path)
    seen: dict[str, int] = {}  # id -> the line that first had it
    digest = hashlib.sha256()
    with _open(path) as f:
        for offset, n, raw in _raw_lines(f, max_line_bytes, digest):
            if raw is not None and not raw.strip():
                continue
            index.lines += 1
            parsed = f"longer than {max_line_bytes} bytes" if raw is None else parse_line(raw, n)
            if isinstance(parsed, str):
                index.malformed += 1
                index.note("malformed", f"line {n}: {parsed}")
                continue
            bad = sum(t is None for t in parsed.completions)
            if bad:
                index.non_string_completions += bad
                index.note("non_string_completions", f"line {n}: {bad} of {len(parsed.completions)}")
            first = seen.get(parsed.id)
            if first is not None:
                index.duplicate_ids += 1
                index.note("duplicate_ids", f"line {n}: {parsed.id[:80]!r} (first on line {first})")
                continue
            seen[parsed.id] = n
            if parsed.id in want:
                index.matched += 1
                index.found[parsed.id] = Located(offset, n)
            elif parsed.id in every:
                index.out_of_scope += 1
            else:
                index.unknown_ids += 1
                index.note("unknown_ids", f"line {n}: {parsed.id[:80]!r}")
    index.sha256 = digest.hexdigest()
    return index


def read_lines(
    path: Path, where: Iterable[Located], *, max_line_bytes: int = MAX_LINE_BYTES
) -> dict[int, CompletionsLine]:
    """The lines at `where` (offsets an index found), by line number, read in file order."""
    out: dict[int, CompletionsLine] = {}
    with _open(path) as f:
        for loc in sorted(where, key=lambda w: w.offset):
            f.seek(loc.offset)
            raw = f.readline(max_line_bytes + 1)
            parsed = parse_line(raw, loc.line)
            if isinstance(parsed, str):  # the file changed since it was indexed
                raise FileAccessError(f"{path}: line {loc.line} changed while being read ({parsed})")
            out[loc.line] = parsed
    return out


__all__ = [
    "MAX_LINE_BYTES",
    "CompletionsIndex",
    "CompletionsLine",
    "Located",
    "index_completions",
    "parse_line",
    "read_lines",
]
