"""Row readers shared by the table-shaped adapters (`vqa`, `orsta`): JSONL, JSON, parquet, `datasets`.

`iter_rows(path, fmt)` yields `Row(key, value, file)`: `key` is a fallback id for the record
(`line<n>` in JSONL, also JSON lines named `.json`, which `auto` recognises; `row<n>` in a JSON
list or a parquet file, with `<file stem>-` before it in a directory of several; the key in a JSON
object of records), `value` the record (a dict, or a `Reject` for an undecodable JSONL line; other
non-dict records are the adapter's to reject).

Parquet and `datasets` saved to disk are streamed in record batches of `BATCH_ROWS`, projected on
the columns an adapter needs, so a multi-gigabyte file with embedded images never sits in memory
whole. Images stay in HF `Image` storage form (`{"bytes", "path"}` dicts): nothing is decoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from triune_data import safe_json
from triune_data.errors import SourceError
from triune_data.files import open_regular
from triune_data.sources.base import (
    ImageBytes,
    ImageSource,
    Reject,
    SourceContext,
    iter_jsonl,
    read_json_file,
)
from triune_data.sources.common.fields import BadRecord, image_file, shard_path, text

TableFormat: TypeAlias = Literal["auto", "jsonl", "json", "parquet", "hf_disk"]
BATCH_ROWS = 64  # rows materialised at a time (a batch of embedded images stays a few MB)


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    value: Any
    file: Path
    not_utf8: str | None = None  # a column of this row whose string bytes are not UTF-8


def detect_format(path: Path) -> str:
    """The format of `path` from its suffix, or for a directory from what it holds."""
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "hf_disk"
        if any(path.glob("*.parquet")):
            return "parquet"
        raise SourceError(
            f"{path}: a directory with neither parquet files nor a `datasets` save_to_disk layout"
        )
    kinds = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
    if path.suffix.lower() in kinds:
        return kinds[path.suffix.lower()]
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    raise SourceError(f"{path}: cannot tell the format from the name; set `format`")


def iter_rows(
    path: Path,
    fmt: TableFormat = "auto",
    *,
    columns: Iterable[str] | None = None,
    hf_split: str | None = None,
) -> Iterator[Row]:
    """Every record of `path` in file order (see the module docstring); `columns` projects tables."""
    kind = detect_format(path) if fmt == "auto" else fmt
    wanted = None if columns is None else list(dict.fromkeys(columns))
    if kind == "jsonl":
        return (Row(f"line{n}", v, path) for n, v in iter_jsonl(path))
    if kind == "json":
        return _json_rows(path, sniff=fmt == "auto")
    if kind == "parquet":
        return _parquet_rows(path, wanted)
    return _hf_rows(path, wanted, hf_split)


def _json_rows(path: Path, *, sniff: bool) -> Iterator[Row]:
    try:
        data = read_json_file(path)
    except SourceError:
        # Many datasets (PuzzleVQA, AlgoPuzzleVQA) ship JSON lines under a `.json` name.
        if sniff and _first_line_is_object(path):
            return (Row(f"line{n}", v, path) for n, v in iter_jsonl(path))
        raise
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if isinstance(data, list):
        return (Row(f"row{n}", v, path) for n, v in enumerate(data, start=1))
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return (Row(str(k), v, path) for k, v in data.items())  # MathVista: records keyed by id
    raise SourceError(f"{path}: expected a JSON list of records, {{'data': [...]}} or an object of records")


def _first_line_is_object(path: Path) -> bool:
    try:
        with open_regular(path) as fh:
            line = next((raw for raw in iter(lambda: fh.readline(1 << 20), b"") if raw.strip()), b"")
        return isinstance(safe_json.loads(line), dict)
    except (OSError, ValueError):
        return False


def parquet_files(path: Path) -> list[Path]:
    """`path` itself, or the sorted `*.parquet` files directly inside the directory `path`."""
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("*.parquet"))
    if not files:
        raise SourceError(f"{path}: no *.parquet files in the directory")
    return files


def _parquet_rows(path: Path, wanted: list[str] | None) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(path)
    for file in files:
        prefix = f"{file.stem}-" if len(files) > 1 else ""
        try:
            pf = pq.ParquetFile(file)
        except FileNotFoundError:
            raise SourceError(f"{file}: file not found") from None
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{file}: not a readable parquet file ({exc})") from None
        names = pf.schema_arrow.names
        cols = None if wanted is None else [c for c in wanted if c in names]
        n = 0
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
            for value, bad in _batch_rows(batch):
                n += 1
                yield Row(f"{prefix}row{n}", value, file, bad)


def _hf_rows(path: Path, wanted: list[str] | None, split: str | None) -> Iterator[Row]:
    import datasets  # slow to import: only when a source needs it

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise SourceError(f"{path}: not a `datasets` directory saved with save_to_disk ({exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) == 1:
            split = next(iter(ds))
        if split not in ds:
            raise SourceError(f"{path}: set `hf_split` to one of {sorted(ds)} (got {split!r})")
        ds = ds[split]
    if wanted is not None:
        ds = ds.select_columns([c for c in wanted if c in ds.column_names])
    ds = ds.with_format("arrow")  # Image columns stay {"bytes", "path"}: no PIL decode
    for start in range(0, len(ds), BATCH_ROWS):
        for i, (value, bad) in enumerate(_batch_rows(ds[start : start + BATCH_ROWS]), start=start + 1):
            yield Row(f"row{i}", value, path, bad)


def _batch_rows(batch: Any) -> list[tuple[dict, str | None]]:
    """The rows of an Arrow batch or table as (dict, the first column whose strings are not UTF-8).

    Arrow does not validate string columns when a file is read: bytes that are not UTF-8 raise
    only when converted, and would fail the whole batch. Such a batch is converted row by row,
    and a string that is not UTF-8 becomes text with lone surrogates in place of the bad bytes
    (`surrogateescape`), so the adapter can still tell whose row it is (orsta's `data_source`)
    before it rejects the row (`invalid_text_encoding`, naming the column).
    """
    try:
        return [(row, None) for row in batch.to_pylist()]
    except UnicodeDecodeError:
        pass
    rows = []
    for i in range(batch.num_rows):
        row, bad = batch.slice(i, 1), None
        values = {}
        for name in row.schema.names:
            values[name], ok = _column_value(row.column(name))
            bad = bad or (None if ok else name)
        rows.append((values, bad))
    return rows


def _column_value(column: Any) -> tuple[Any, bool]:
    """(the value of a one-row column, whether its strings were all UTF-8)."""
    try:
        return column.to_pylist()[0], True
    except UnicodeDecodeError:
        pass
    try:
        return _escaped(column.cast(_as_binary(column.type)).to_pylist()[0], column.type), False
    except Exception:  # a type Arrow cannot cast (a dictionary column): text that fails every check
        return "\udcff", False


def not_utf8(row: Row, file: str) -> Reject:
    """The reject of a row whose column `row.not_utf8` holds bytes that are not UTF-8."""
    return Reject(
        reason="invalid_text_encoding",
        detail=f"column {row.not_utf8!r} holds bytes that are not UTF-8",
        id=row.key,
        original_id=row.key,
        file=file,
    )


def _as_binary(t: Any) -> Any:
    """`t` with every string type replaced by the binary type of the same width."""
    import pyarrow as pa

    if pa.types.is_string(t):
        return pa.binary()
    if pa.types.is_large_string(t):
        return pa.large_binary()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_as_binary(f.type)) for f in t])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_as_binary(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_as_binary(t.value_type)))
    return t


def _escaped(value: Any, t: Any) -> Any:
    """A value read through `_as_binary(t)` with its strings decoded again (bad bytes escaped)."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return value.decode("utf-8", "surrogateescape")
    if pa.types.is_struct(t):
        return {f.name: _escaped(value[f.name], f.type) for f in t}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [_escaped(v, t.value_type) for v in value]
    return value


def lookup(row: dict, column: str) -> Any:
    """`row[column]`, or a nested value for a dotted name (`extra_info.answer`); None if absent."""
    if column in row:
        return row[column]
    value: Any = row
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def image_sources(value: Any, root: Path, *, ctx: SourceContext) -> list[ImageSource]:
    """Images in any shape sources store them: a path, bytes, an HF `{"bytes", "path"}` dict, or a
    list of those. Paths go through `fields.image_file` (relative to `root`, inside it); the name
    of embedded bytes through `fields.shard_path` (never an absolute local path)."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    out: list[ImageSource] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("bytes"), (bytes, bytearray)) and item["bytes"]:
            path = item.get("path")
            name = text(path, "image path") if isinstance(path, str) and path.strip() else None
            out.append(ImageBytes(bytes(item["bytes"]), name=shard_path(name)))
        elif isinstance(item, (bytes, bytearray)) and item:
            out.append(ImageBytes(bytes(item)))
        elif isinstance(item, (str, dict)):
            name = item.get("path") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name.strip():
                raise BadRecord("malformed_record", f"image without bytes or path: {str(item)[:60]!r}")
            out.append(image_file(root, name, ctx=ctx))
        else:
            raise BadRecord("malformed_record", f"image is a {type(item).__name__}: {str(item)[:60]!r}")
    return out
