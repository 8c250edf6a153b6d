"""The one definition of a triune sample.

Everything else is derived from the dataclasses below:

- `arrow_schema()`  the Arrow schema of every shard (with the `huggingface` metadata that keeps
                     `Image` features intact when `datasets` loads the shards);
- `hf_features()`   the `datasets.Features`, also written into the dataset card;
- `json_schema()`   `schemas/sample.schema.json` (JSON Schema 2020-12), via pydantic.

A test regenerates all three and fails if the committed JSON Schema drifts or if the Arrow schema
disagrees with the one `datasets` derives from the Features.

Boxes are stored in ONE canonical frame: absolute pixel coordinates (float, x1 y1 x2 y2) of the
first stored image, exactly as its bytes decode. Conversion to and from a model's frame lives in
`triune_data.coords`.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import pyarrow as pa

SCHEMA_VERSION = "1.0"
BOX_FRAME = "pixel_xyxy"  # absolute pixels of the stored image, float, x1 y1 x2 y2

Task = Literal["math", "puzzle", "science", "chart", "detection", "grounding", "counting", "ocr"]
Category = Literal["reasoning", "perception"]
Role = Literal["system", "user", "assistant"]

TASKS: tuple[str, ...] = get_args(Task)
TASK_CATEGORY: dict[str, str] = {
    "math": "reasoning",
    "puzzle": "reasoning",
    "science": "reasoning",
    "chart": "reasoning",
    "detection": "perception",
    "grounding": "perception",
    "counting": "perception",
    "ocr": "perception",
}
BOX_TASKS = frozenset({"detection", "grounding"})
IMAGE_PLACEHOLDER = "<image>"


class Int32:
    """Marker for `Annotated[int, Int32]`: stored as int32 instead of int64."""


@dataclass(slots=True)
class Image:
    """One image, stored as HF `Image` storage: original bytes (never re-encoded) and a path/name."""

    bytes: builtins.bytes | None  # `builtins.` because the field name shadows the type
    path: str | None


@dataclass(slots=True)
class ImageSize:
    width: Annotated[int, Int32]
    height: Annotated[int, Int32]


@dataclass(slots=True)
class Message:
    role: Role
    content: str


@dataclass(slots=True)
class Box:
    """A labelled box in the canonical frame (absolute float pixels of the stored image)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(slots=True)
class RewardSpec:
    """How a completion for this sample is scored.

    `verifier_params` is a JSON object (as text, so that rows with different verifiers share one
    Arrow type); its content is validated by the named verifier's params model.
    """

    verifier: str
    verifier_params: str
    accuracy_weight: float
    format_weight: float


@dataclass(slots=True)
class Difficulty:
    """Curation statistics; null until `triune filter` computes them."""

    pass_rate: float | None = None
    mean_reward: float | None = None
    num_rollouts: Annotated[int, Int32] | None = None
    model: str | None = None
    metric: str | None = None


@dataclass(slots=True)
class Provenance:
    source: str  # adapter name that produced the row
    original_id: str  # id of the record in the source
    license: str | None = None
    revision: str | None = None
    file: str | None = None  # source file (relative to the recipe), for audits


@dataclass(slots=True)
class Sample:
    id: str
    data_source: str
    task: Task
    category: Category
    split: str
    images: list[Image]
    image_sizes: list[ImageSize]
    prompt: list[Message]
    answer: str
    ground_truth: str
    boxes: list[Box]
    reward: RewardSpec
    sample_weight: float
    difficulty: Difficulty | None
    provenance: Provenance


# ----------------------------------------------------------------------------------------------
# Derivations. One walker over the type hints serves Arrow and HF Features.

_SCALARS_ARROW: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
}
_SCALARS_HF: dict[Any, str] = {str: "string", int: "int64", float: "float64", bool: "bool", bytes: "binary"}


@functools.cache
def _unwrap(tp: Any) -> tuple[Any, bool, bool]:
    """Return (base type, nullable, int32) for a resolved annotation."""
    nullable = int32 = False
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        int32 = any(m is Int32 for m in meta)
        tp = base
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        nullable = len(args) != len(get_args(tp))
        assert len(args) == 1, f"only Optional unions are supported: {tp}"
        inner, _, inner32 = _unwrap(args[0])
        return inner, nullable, int32 or inner32
    return tp, nullable, int32


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


@functools.cache
def _to_arrow(tp: Any) -> pa.DataType:
    base, _, int32 = _unwrap(tp)
    if get_origin(base) is Literal:
        return pa.string()
    if get_origin(base) is list:
        return pa.list_(pa.field("item", _to_arrow(get_args(base)[0])))
    if dataclasses.is_dataclass(base):
        return pa.struct([pa.field(n, _to_arrow(t)) for n, t in _hints(base).items()])
    if base is int and int32:
        return pa.int32()
    return _SCALARS_ARROW[base]


def arrow_schema(extra_metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of a shard, carrying the HF features and the schema version as metadata."""
    fields = [pa.field(n, _to_arrow(t)) for n, t in _hints(Sample).items()]
    metadata = {
        "huggingface": json.dumps({"info": {"features": hf_features_dict()}}, sort_keys=True),
        "triune": json.dumps({"schema_version": SCHEMA_VERSION, "box_frame": BOX_FRAME}, sort_keys=True),
    }
    metadata.update(extra_metadata or {})
    return pa.schema(fields, metadata=metadata)


def _to_hf(tp: Any, *, name: str = "") -> Any:
    base, _, int32 = _unwrap(tp)
    if base is Image:
        return {"_type": "Image"}
    if get_origin(base) is Literal:
        return {"dtype": "string", "_type": "Value"}
    if get_origin(base) is list:
        return {"feature": _to_hf(get_args(base)[0]), "_type": "List"}
    if dataclasses.is_dataclass(base):
        return {n: _to_hf(t, name=n) for n, t in _hints(base).items()}
    dtype = "int32" if (base is int and int32) else _SCALARS_HF[base]
    return {"dtype": dtype, "_type": "Value"}


def hf_features_dict() -> dict[str, Any]:
    """The `datasets.Features` of a sample, in the serialised form `Features.from_dict` reads."""
    return {n: _to_hf(t, name=n) for n, t in _hints(Sample).items()}


def hf_features():
    """The `datasets.Features` object (imports `datasets`, so call it only where needed)."""
    from datasets import Features

    return Features.from_dict(hf_features_dict())


def json_schema() -> dict[str, Any]:
    """JSON Schema 2020-12 of one sample as JSON (bytes as base64 strings)."""
    from pydantic import TypeAdapter

    from triune_data.verifiers import verifier_names

    schema = TypeAdapter(Sample).json_schema(ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    defs["RewardSpec"]["properties"]["verifier"]["enum"] = verifier_names(builtin=True)
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


def _column(values: list[Any], tp: Any) -> pa.Array:
    """Build one Arrow column from Python values of annotation `tp`, column-wise.

    `pa.Table.from_pylist` walks row dicts and is ~20x slower on image bytes; here every leaf is
    one `pa.array` call over a flat list, and lists/structs are assembled from offsets and children.
    """
    base, _, _ = _unwrap(tp)
    arrow_type = _to_arrow(tp)
    if get_origin(base) is list:
        offsets = [0]
        flat: list[Any] = []
        for v in values:
            flat.extend(v)
            offsets.append(len(flat))
        child = _column(flat, get_args(base)[0])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), child, type=arrow_type)
    if dataclasses.is_dataclass(base):
        mask = [v is None for v in values]
        children = [
            _column([None if v is None else getattr(v, n) for v in values], t)
            for n, t in _hints(base).items()
        ]
        return pa.StructArray.from_arrays(
            children, fields=list(arrow_type), mask=pa.array(mask, pa.bool_()) if any(mask) else None
        )
    return pa.array(values, arrow_type)


def samples_to_table(samples: list[Sample], schema: pa.Schema | None = None) -> pa.Table:
    schema = schema or arrow_schema()
    columns = [_column([getattr(s, n) for s in samples], t) for n, t in _hints(Sample).items()]
    return pa.Table.from_arrays(columns, schema=schema)


__all__ = [
    "BOX_FRAME",
    "BOX_TASKS",
    "IMAGE_PLACEHOLDER",
    "SCHEMA_VERSION",
    "TASKS",
    "TASK_CATEGORY",
    "Box",
    "Category",
    "Difficulty",
    "Image",
    "ImageSize",
    "Message",
    "Provenance",
    "RewardSpec",
    "Sample",
    "Task",
    "arrow_schema",
    "hf_features",
    "hf_features_dict",
    "json_schema",
    "row_to_sample",
    "sample_to_row",
    "samples_to_table",
]
