"""Storage derivations of the plain types in `triune_data.types`.

One walker over the dataclasses' type hints gives:

- `arrow_schema()`   the Arrow schema of every shard (with the `huggingface` metadata that keeps
                     `Image` features intact when `datasets` loads the shards);
- `hf_features()`    the `datasets.Features`, also written into the dataset card;
- `json_schema()`    the JSON Schema of one sample (`schemas/sample.schema.json`, via pydantic;
                     `triune_data.schemas_gen` adds the registered verifier names);
- `record_schema(cls)` / `records_to_table(rows, cls)`  the same for any other row dataclass
                     (reject rows, the verl export's rows).

A test regenerates the JSON Schemas and fails if the committed ones drift or if the Arrow schema
disagrees with the one `datasets` derives from the Features.

>>> from triune_data.types import Box
>>> record_schema(Box).names
['label', 'x1', 'y1', 'x2', 'y2']
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import operator
import types
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, get_args, get_origin

import pyarrow as pa

from triune_data.types import (
    BOX_FRAME,
    SCHEMA_VERSION,
    TASKS,
    Box,
    Difficulty,
    Float32,
    Image,
    ImageSize,
    Int32,
    Message,
    Provenance,
    RewardSpec,
    Sample,
)

# ----------------------------------------------------------------------------------------------
# The walker. Scalars, Literals (as strings), lists, Optional and nested dataclasses.

_SCALARS_ARROW: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
}
_SCALARS_HF: dict[Any, str] = {str: "string", int: "int64", float: "float64", bool: "bool", bytes: "binary"}


@functools.cache
def _unwrap(tp: Any) -> tuple[Any, bool, Any]:
    """Return (base type, nullable, width marker: Int32, Float32 or None) for a resolved annotation."""
    nullable, width = False, None
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        width = next((m for m in meta if m in (Int32, Float32)), None)
        tp = base
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        nullable = len(args) != len(get_args(tp))
        assert len(args) == 1, f"only Optional unions are supported: {tp}"
        inner, _, inner_width = _unwrap(args[0])
        return inner, nullable, width or inner_width
    return tp, nullable, width


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


@functools.cache
def _to_arrow(tp: Any) -> pa.DataType:
    base, _, width = _unwrap(tp)
    if get_origin(base) is Literal:
        return pa.string()
    if get_origin(base) is list:
        return pa.list_(pa.field("item", _to_arrow(get_args(base)[0])))
    if dataclasses.is_dataclass(base):
        return pa.struct(record_fields(base))  # type: ignore[arg-type]
    if base is int and width is Int32:
        return pa.int32()
    if base is float and width is Float32:
        return pa.float32()
    return _SCALARS_ARROW[base]


def record_fields(cls: type) -> list[pa.Field]:
    """The Arrow fields of a row dataclass, in declaration order."""
    return [pa.field(n, _to_arrow(t)) for n, t in _hints(cls).items()]


def record_schema(cls: type, metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of a table whose rows are instances of the dataclass `cls`."""
    return pa.schema(record_fields(cls), metadata=metadata)


def arrow_schema(extra_metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of a shard, carrying the HF features and the schema version as metadata."""
    metadata = {
        "huggingface": json.dumps({"info": {"features": hf_features_dict()}}, sort_keys=True),
        "triune": json.dumps({"schema_version": SCHEMA_VERSION, "box_frame": BOX_FRAME}, sort_keys=True),
    }
    metadata.update(extra_metadata or {})
    return record_schema(Sample, metadata)


def _to_hf(tp: Any) -> Any:
    base, _, width = _unwrap(tp)
    if base is Image:
        return {"_type": "Image"}
    if get_origin(base) is Literal:
        return {"dtype": "string", "_type": "Value"}
    if get_origin(base) is list:
        return {"feature": _to_hf(get_args(base)[0]), "_type": "List"}
    if dataclasses.is_dataclass(base):
        return {n: _to_hf(t) for n, t in _hints(base).items()}  # type: ignore[arg-type]
    if base is int and width is Int32:
        return {"dtype": "int32", "_type": "Value"}
    if base is float and width is Float32:
        return {"dtype": "float32", "_type": "Value"}
    return {"dtype": _SCALARS_HF[base], "_type": "Value"}


def hf_features_dict() -> dict[str, Any]:
    """The `datasets.Features` of a sample, in the serialised form `Features.from_dict` reads."""
    return {n: _to_hf(t) for n, t in _hints(Sample).items()}


def hf_features() -> Any:
    """The `datasets.Features` object (imports `datasets`, so call it only where needed)."""
    from datasets import Features

    return Features.from_dict(hf_features_dict())


def json_schema() -> dict[str, Any]:
    """JSON Schema 2020-12 of one sample as JSON (bytes as base64 strings).

    `reward.verifier` is a plain string here; `triune_data.schemas_gen` enumerates the registered
    verifier names in the committed file.
    """
    from pydantic import TypeAdapter

    schema = TypeAdapter(Sample).json_schema(ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    defs["RewardSpec"]["properties"]["accuracy_weight"]["minimum"] = 0
    defs["RewardSpec"]["properties"]["format_weight"]["minimum"] = 0
    defs["ImageSize"]["properties"]["width"]["minimum"] = 1
    defs["ImageSize"]["properties"]["height"]["minimum"] = 1
    schema["properties"]["task"]["enum"] = list(TASKS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://triune.dev/schemas/sample.schema.json",
        "title": "triune sample",
        "description": f"One row of a triune shard, schema version {SCHEMA_VERSION}; boxes in frame {BOX_FRAME}.",
        **schema,
    }


# ----------------------------------------------------------------------------------------------
# Row conversion. Hand-written for speed (dataclasses.asdict deep-copies every value).


def sample_to_row(s: Sample) -> dict[str, Any]:
    d = s.difficulty
    p = s.provenance
    r = s.reward
    return {
        "id": s.id,
        "data_source": s.data_source,
        "task": s.task,
        "category": s.category,
        "split": s.split,
        "images": [{"bytes": i.bytes, "path": i.path} for i in s.images],
        "image_sizes": [{"width": z.width, "height": z.height} for z in s.image_sizes],
        "prompt": [{"role": m.role, "content": m.content} for m in s.prompt],
        "answer": s.answer,
        "ground_truth": s.ground_truth,
        "boxes": [{"label": b.label, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2} for b in s.boxes],
        "reward": {
            "verifier": r.verifier,
            "verifier_params": r.verifier_params,
            "accuracy_weight": r.accuracy_weight,
            "format_weight": r.format_weight,
        },
        "sample_weight": s.sample_weight,
        "difficulty": None if d is None else dataclasses.asdict(d),
        "provenance": {
            "source": p.source,
            "original_id": p.original_id,
            "license": p.license,
            "revision": p.revision,
            "file": p.file,
        },
    }


def row_to_sample(row: dict[str, Any]) -> Sample:
    """Inverse of `sample_to_row` (for readers of shards: score, export, filter)."""
    return Sample(
        id=row["id"],
        data_source=row["data_source"],
        task=row["task"],
        category=row["category"],
        split=row["split"],
        images=[Image(**i) for i in row["images"]],
        image_sizes=[ImageSize(**z) for z in row["image_sizes"]],
        prompt=[Message(**m) for m in row["prompt"]],
        answer=row["answer"],
        ground_truth=row["ground_truth"],
        boxes=[Box(**b) for b in row["boxes"]],
        reward=RewardSpec(**row["reward"]),
        sample_weight=row["sample_weight"],
        difficulty=None if row.get("difficulty") is None else Difficulty(**row["difficulty"]),
        provenance=Provenance(**row["provenance"]),
    )


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to build the Arrow column of one annotation, worked out once per row class: the
    annotation's Arrow type, and the plan of a list's items or of a struct's fields."""

    arrow_type: pa.DataType
    item: _Plan | None = None  # a list: its items
    names: tuple[str, ...] = ()  # a struct (dataclass): its field names, plans and Arrow fields
    fields: tuple[_Plan, ...] = ()
    arrow_fields: tuple[pa.Field, ...] = ()
    get: Callable[[Any], tuple[Any, ...]] | None = None  # a struct: all its field values at once
    flat: bool = False  # a struct of scalars only: `pa.array` converts its field tuples directly

    @property
    def struct(self) -> bool:
        return self.get is not None


def _plan(tp: Any) -> _Plan:
    base, _, _ = _unwrap(tp)
    arrow_type = _to_arrow(tp)
    if get_origin(base) is list:
        return _Plan(arrow_type, item=_plan(get_args(base)[0]))
    if dataclasses.is_dataclass(base):
        return _struct_plan(base, arrow_type)  # type: ignore[arg-type]
    return _Plan(arrow_type)


def _struct_plan(cls: type, arrow_type: pa.DataType) -> _Plan:
    hints = _hints(cls)
    names = tuple(hints)
    getter = operator.attrgetter(*names) if len(names) > 1 else _one_getter(names[0])
    fields = tuple(_plan(t) for t in hints.values())
    return _Plan(
        arrow_type,
        names=names,
        fields=fields,
        arrow_fields=tuple(arrow_type) if isinstance(arrow_type, pa.StructType) else (),
        get=getter,
        flat=all(f.item is None and not f.struct for f in fields),
    )


def _one_getter(name: str) -> Callable[[Any], tuple[Any, ...]]:
    get = operator.attrgetter(name)
    return lambda v: (get(v),)


@functools.cache
def _class_plan(cls: type) -> _Plan:
    """The plan of a table of `cls` rows: a struct plan whose fields are the table's columns."""
    return _struct_plan(cls, pa.struct(record_fields(cls)))


def _field_values(values: list[Any], plan: _Plan) -> list[Sequence[Any]]:
    """The values of each field of the struct `values` (no None among them), column by column."""
    if not values:
        return [[] for _ in plan.names]
    return list(zip(*map(plan.get, values), strict=True))  # type: ignore[arg-type]


def _column(values: Sequence[Any], plan: _Plan) -> pa.Array:
    """Build one Arrow column from Python values following `plan`, column-wise.

    `pa.Table.from_pylist` walks row dicts and is ~20x slower on image bytes; here every leaf is
    one `pa.array` call over a flat list, and lists/structs are assembled from offsets and children.
    A struct of scalars without nulls is one `pa.array` call over its rows' field tuples (half the
    cost of a call per field), and an all-null struct is `pa.nulls`.
    """
    if plan.item is not None:
        offsets = [0, *itertools.accumulate(map(len, values))]
        child = _column(list(itertools.chain.from_iterable(values)), plan.item)
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), child, type=plan.arrow_type)
    if plan.struct:
        mask = [v is None for v in values]
        if mask and all(mask):  # a column of nulls (`difficulty` until `triune filter`): no children to walk
            return pa.nulls(len(mask), plan.arrow_type)
        if plan.flat and not any(mask):  # one conversion of (field, ...) tuples, not one per field
            return pa.array(list(map(plan.get, values)), type=plan.arrow_type)  # type: ignore[arg-type]
        if any(mask):
            columns: list[Sequence[Any]] = [
                [None if v is None else getattr(v, n) for v in values] for n in plan.names
            ]
        else:
            columns = _field_values(list(values), plan)
        children = [_column(c, p) for c, p in zip(columns, plan.fields, strict=True)]
        return pa.StructArray.from_arrays(
            children,
            fields=list(plan.arrow_fields),
            mask=pa.array(mask, pa.bool_()) if any(mask) else None,
        )
    return pa.array(values, plan.arrow_type)


def records_to_table(records: list[Any], cls: type, schema: pa.Schema | None = None) -> pa.Table:
    """A table of `records` (instances of the dataclass `cls`), column by column."""
    schema = schema or record_schema(cls)
    plan = _class_plan(cls)
    columns = _field_values(records, plan)
    return pa.Table.from_arrays(
        [_column(c, p) for c, p in zip(columns, plan.fields, strict=True)], schema=schema
    )


def samples_to_table(samples: list[Sample], schema: pa.Schema | None = None) -> pa.Table:
    return records_to_table(samples, Sample, schema or arrow_schema())


__all__ = [
    "arrow_schema",
    "hf_features",
    "hf_features_dict",
    "json_schema",
    "record_fields",
    "record_schema",
    "records_to_table",
    "row_to_sample",
    "sample_to_row",
    "samples_to_table",
]
