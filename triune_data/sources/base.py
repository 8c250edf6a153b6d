"""The source-adapter contract.

An adapter turns one source format into a stream of `Draft`s (and `Reject`s for records it cannot
use). It does the cheap part only: parse the annotations, pick a prompt, convert boxes it can
convert without pixels. The build pipeline does the rest in worker processes: load image bytes,
read sizes from headers, bring boxes to the canonical frame, validate, write.

    class CocoOptions(SourceOptions):
        annotations: str
        images: str

    @register_source("coco", options=CocoOptions)
    def read_coco(opts: CocoOptions, ctx: SourceContext) -> Iterator[Draft | Reject]: ...

Rules every adapter keeps:
- deterministic: the same files, options and seed give the same drafts in the same order;
- every record read ends as exactly one Draft or one Reject (counts are conserved per source);
- a file that cannot be read at all raises `SourceError` naming the file;
- ids are stable and unique within the data_source (the pipeline rejects duplicates).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict

from triune_data import safe_json
from triune_data.coords import Frame
from triune_data.errors import RecipeError
from triune_data.files import FileTooLarge, open_regular, read_regular
from triune_data.images import MAX_IMAGE_BYTES
from triune_data.rejects import RejectReason
from triune_data.types import TASKS, Box, Message, Task

# ----------------------------------------------------------------------------------------------
# Where an image comes from. Loading happens in the pipeline's workers, not in the adapter.


def _at_most(data: bytes, max_bytes: int, what: str) -> bytes:
    if len(data) > max_bytes:
        raise FileTooLarge(errno.EFBIG, f"{len(data)} bytes, more than the limit of {max_bytes}", what)
    return data


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An image file on disk; `name` is what the shard stores as the image path (relative to the
    source's images folder), `recipe_dir` where the recipe is (to name the file in reject details
    the same way whatever the current directory)."""

    file: str
    name: str
    recipe_dir: str = field(default="", compare=False)

    def load(self, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
        """The file's bytes; OSError (`triune_data.files`) for a missing, special or too large file."""
        return read_regular(self.file, max_bytes=max_bytes)

    def shown(self) -> str:
        """The file as a path relative to the recipe's folder (for messages and reject details)."""
        return os.path.relpath(self.file, self.recipe_dir or ".")


@dataclass(frozen=True, slots=True)
class ImageBytes:
    """Image bytes already in memory (parquet sources, datasets saved to disk)."""

    data: bytes
    name: str | None = None

    def load(self, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
        return _at_most(self.data, max_bytes, self.name or "embedded image")


@dataclass(frozen=True, slots=True)
class ImageRender:
    """An image drawn on demand (synthetic sources): `render(**kwargs)` returns encoded bytes.

    `render` must be a module-level function so the draft can travel to a worker process.
    """

    render: Callable[..., bytes]
    kwargs: tuple[tuple[str, Any], ...]
    name: str | None = None

    def load(self, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
        return _at_most(self.render(**dict(self.kwargs)), max_bytes, self.name or "rendered image")


ImageSource: TypeAlias = ImageFile | ImageBytes | ImageRender


# A box as the source gives it, in `Draft.box_frame`; the pipeline converts it to the canonical frame.
DraftBox: TypeAlias = Box


@dataclass(slots=True)
class Draft:
    """A sample before its images are loaded. Fields mirror `triune_data.schema.Sample`."""

    id: str
    task: str
    prompt: list[Message]
    answer: str
    ground_truth: str
    images: list[ImageSource]
    original_id: str
    boxes: list[DraftBox] = field(default_factory=list)
    box_frame: Frame = "pixel"  # the frame of `boxes` (`triune_data.coords`)
    verifier: str | None = None  # None: the task's default verifier
    verifier_params: dict[str, Any] = field(default_factory=dict)
    accuracy_weight: float | None = None  # None: the task's default
    format_weight: float | None = None
    file: str | None = None  # source file, for provenance and reject rows


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """A record that will not become a sample, with a named reason (a counter in every report).

    `id` names the record as the sample would have been named (the build prefixes the
    data_source), or by its place in the source when it has no id of its own ("line7", "images[3]").
    """

    reason: RejectReason
    detail: str
    id: str
    original_id: str = ""
    file: str | None = None


# ----------------------------------------------------------------------------------------------
# Options, context and registry.


class SourceOptions(BaseModel):
    """Base of an adapter's typed options (`options:` in a recipe source). Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class PromptPool:
    """Templates and paraphrase pools for one task, from the recipe's `prompts` section.

    The user turn is: one `<image>` placeholder per image, a template from `templates` filled with
    the adapter's fields, then one sentence from each pool in `suffixes`, joined by `joiner`.
    Every choice is a pure function of (seed, sample id, pool), so it does not depend on order or
    on the number of workers.
    """

    templates: tuple[str, ...]
    suffixes: tuple[tuple[str, ...], ...] = ()
    joiner: str = "\n\n"
    image_prefix: str = "<image>"


@dataclass(frozen=True)
class SourceContext:
    """What an adapter gets besides its options."""

    data_source: str
    split: str
    seed: int
    base_dir: Path  # the recipe's directory: relative paths in options resolve against it
    prompts: Mapping[str, PromptPool]
    limit: int | None = None  # stop after this many records (drafts + rejects)
    images_outside_root: bool = False  # the recipe's `images.allow_outside_root`

    def path(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.base_dir / q)

    def pick(self, sample_id: str, pool: str, options: tuple[str, ...] | list[str]) -> str:
        """Deterministic choice from `options` for this sample (seeded, order-independent)."""
        if not options:
            raise ValueError(f"empty prompt pool {pool!r}")
        if len(options) == 1:  # what any digest would pick: no hashing
            return options[0]
        # surrogatepass: an id with a lone surrogate still picks (the pipeline then rejects its text)
        key = f"{self.seed}\x1f{sample_id}\x1f{pool}".encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return options[int.from_bytes(digest, "big") % len(options)]

    def rng_seed(self, *parts: object) -> int:
        """A 64-bit seed derived from the recipe seed and `parts` (for generators)."""
        text = "\x1f".join([str(self.seed), self.data_source, *map(str, parts)])
        return int.from_bytes(
            hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
        )

    def prompt(self, pool_name: str, sample_id: str, *, num_images: int = 1, **fields: Any) -> list[Message]:
        """Render the user turn from the recipe's pool `pool_name`, filling `{field}` slots."""
        pool = self.prompts.get(pool_name)
        if pool is None:
            raise RecipeError(
                f"{self.data_source}: the recipe has no prompt pool {pool_name!r} (see `prompts:`)"
            )
        template_key, suffix_keys = _pick_keys(pool_name, len(pool.suffixes))
        template = self.pick(sample_id, template_key, pool.templates)
        try:
            text = template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise RecipeError(
                f"prompt pool {pool_name!r}: template {template[:60]!r} uses a slot the adapter does not fill "
                f"({exc}); available: {', '.join(sorted(fields))}"
            ) from None
        parts = [text] + [self.pick(sample_id, k, s) for k, s in zip(suffix_keys, pool.suffixes, strict=True)]
        body = pool.joiner.join([p for p in parts if p])
        return [Message(role="user", content=pool.image_prefix * num_images + body)]


@functools.lru_cache(maxsize=256)
def _pick_keys(pool_name: str, suffixes: int) -> tuple[str, tuple[str, ...]]:
    """The `pick` keys of a pool's template and suffixes (made once, not per sample)."""
    return f"{pool_name}.template", tuple(f"{pool_name}.suffix{i}" for i in range(suffixes))


ReadFn: TypeAlias = Callable[[Any, SourceContext], Iterator[Draft | Reject]]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    options: type[SourceOptions]
    read: ReadFn
    tasks: tuple[Task, ...]  # tasks this adapter can produce (for docs and recipe checks)


_SOURCES: dict[str, SourceSpec] = {}


def register_source(
    name: str, *, options: type[SourceOptions], tasks: tuple[Task, ...] = TASKS
) -> Callable[[ReadFn], ReadFn]:
    """Register `fn` as the adapter `name`, reading `options` and producing samples of `tasks`.

    Checked here, so a mistake fails at import: the name is a unique non-empty string, `options`
    is a `SourceOptions` subclass and `tasks` are known tasks.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"source adapter names must be non-empty strings, got {name!r}")
    if not (isinstance(options, type) and issubclass(options, SourceOptions)):
        raise TypeError(f"source adapter {name!r}: options must be a SourceOptions subclass, got {options!r}")
    if not tasks or any(t not in TASKS for t in tasks):
        raise ValueError(f"source adapter {name!r}: tasks must be among {', '.join(TASKS)}, got {tasks!r}")

    def wrap(fn: ReadFn) -> ReadFn:
        if not callable(fn):
            raise TypeError(f"source adapter {name!r}: {fn!r} is not callable")
        if name in _SOURCES:
            raise ValueError(f"source adapter {name!r} is already registered")
        _SOURCES[name] = SourceSpec(name, options, fn, tuple(tasks))
        return fn

    return wrap


def get_source(name: str) -> SourceSpec:
    import triune_data.sources  # noqa: F401  (registers every adapter module)

    if name not in _SOURCES:
        raise KeyError(f"unknown source adapter {name!r} (known: {', '.join(sorted(_SOURCES))})")
    return _SOURCES[name]


def source_names() -> list[str]:
    import triune_data.sources  # noqa: F401

    return sorted(_SOURCES)


# ----------------------------------------------------------------------------------------------
# Small helpers adapters share.


def read_json_file(path: Path) -> Any:
    """Load a whole JSON file (`safe_json.loads`: bounded, lone surrogates kept for the adapter to
    reject) or raise SourceError naming the file (one line)."""
    from triune_data.errors import SourceError

    try:
        with open_regular(path) as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return safe_json.loads(raw)
    except safe_json.JsonLimitError as exc:
        raise SourceError(f"{path}: refused, {exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SourceError(f"{path}: not valid JSON ({exc})") from None


STREAM_ABOVE_BYTES = 32 << 20  # parsed whole, a JSON file takes ~10x its size in Python objects


def streams(path: Path) -> bool:
    """Is this JSON file read with `stream_json_items` rather than parsed whole? Large annotation
    files (COCO train2017 448 MB, CLEVR train questions ~300 MB) would otherwise cost gigabytes
    in every build worker."""
    try:
        return path.stat().st_size > STREAM_ABOVE_BYTES
    except OSError:
        return False  # read_json_file names the problem


def json_rows(path: Path, key: str, missing: str) -> tuple[str, Iterator[Any] | None]:
    """The rows of a JSON file that is a list of rows or an object holding them in a `key` list:
    ("list", rows), (key, rows), or (the JSON value's Python type name, None) for anything else.

    Small files are parsed whole; large ones (`streams`) are streamed, and there an object without
    a `key` list shows once its rows are read, as SourceError(missing).
    """
    if streams(path):
        with open_regular(path) as fh:
            first = fh.read(4096).lstrip()[:1]
        if first == b"[":
            return "list", stream_json_items(path, "item")
        if first == b"{":
            return key, nonempty(stream_json_items(path, f"{key}.item"), missing)
    data = read_json_file(path)  # small, or not a container at all
    if isinstance(data, dict) and isinstance(data.get(key), list):
        return key, iter(data[key])
    if isinstance(data, list):
        return "list", iter(data)
    return type(data).__name__, None


def nonempty(items: Iterator[Any], message: str) -> Iterator[Any]:
    """`items`, or SourceError(message) when there are none (a streamed prefix that matched nothing)."""
    from triune_data.errors import SourceError

    empty = True
    for item in items:
        empty = False
        yield item
    if empty:
        raise SourceError(message)


def stream_json_items(path: Path, prefix: str) -> Iterator[Any]:
    """The values at `prefix` (ijson's syntax: "images.item" is each element of the top-level
    `images` array) of a JSON file, one at a time, or SourceError naming the file (one line).

    For files too large to hold parsed: memory holds one value, not the document. Each call is one
    pass over the file, about 3x slower than `read_json_file`'s whole parse. Unlike that parse,
    a lone-surrogate escape, NaN or an integer past 64 bits is an error here, not a value. The
    bounds of `safe_json` hold as the file is read (`CheckedReader`).
    """
    import ijson  # yajl2_c backend: C tokenizer, Python objects only for the values taken

    from triune_data.errors import SourceError

    try:
        with open_regular(path) as fh:
            yield from ijson.items(safe_json.CheckedReader(fh), prefix, use_float=True)
    except safe_json.JsonLimitError as exc:
        raise SourceError(f"{path}: refused, {exc}") from None
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: not valid JSON ({_first_line(exc)})") from None
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None


def _first_line(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else ""
    if isinstance(msg, bytes):  # yajl's messages come as bytes, with a caret diagram below
        msg = msg.decode("utf-8", "replace")
    return str(msg).strip().split("\n", 1)[0] or type(exc).__name__


def iter_jsonl(path: Path, *, label: str | None = None) -> Iterator[tuple[int, Any | Reject]]:
    """Yield (line number, parsed object or Reject) for each non-empty line of a JSONL file.

    Lines are parsed by `safe_json.loads`: a line that is not UTF-8 is `invalid_text_encoding`,
    one that is not JSON or passes its bounds `malformed_record`. Rejects name the file as
    `label` (the path as the recipe gives it), else as `path`.
    """
    from triune_data.errors import SourceError

    try:
        fh = open_regular(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    file = label if label is not None else str(path)
    with fh:
        for lineno, raw in _bounded_lines(fh):
            if raw is None:
                why = f"line {lineno}: longer than {MAX_LINE_BYTES} bytes"
                yield lineno, Reject(reason="malformed_record", detail=why, **_at_line(lineno, file))
                continue
            if not raw.strip():
                continue
            try:
                yield lineno, safe_json.loads(raw)
            except UnicodeDecodeError:
                yield (
                    lineno,
                    Reject(
                        reason="invalid_text_encoding",
                        detail=f"line {lineno}: not UTF-8",
                        **_at_line(lineno, file),
                    ),
                )
            except ValueError as exc:
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                yield (
                    lineno,
                    Reject(
                        reason="malformed_record", detail=f"line {lineno}: {why}", **_at_line(lineno, file)
                    ),
                )


MAX_LINE_BYTES = 64 << 20  # a JSONL line past this is a reject (a file without newlines: one line)


def _bounded_lines(fh: Any) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line), or (line number, None) for a line longer than `MAX_LINE_BYTES`, whose
    bytes are skipped without being held."""
    lineno = 0
    while line := fh.readline(MAX_LINE_BYTES + 1):
        lineno += 1
        if len(line) <= MAX_LINE_BYTES:
            yield lineno, line
            continue
        while line and not line.endswith(b"\n"):
            line = fh.readline(1 << 20)
        yield lineno, None


def _at_line(lineno: int, file: str) -> dict[str, str]:
    return {"id": f"line{lineno}", "original_id": f"line{lineno}", "file": file}


def take(records: Iterator[Draft | Reject], limit: int | None) -> Iterator[Draft | Reject]:
    """Apply a source's `limit` (counting drafts and rejects alike)."""
    for i, rec in enumerate(records):
        if limit is not None and i >= limit:
            return
        yield rec
