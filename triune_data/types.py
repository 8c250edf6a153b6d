"""The plain types of a triune sample: dataclasses, Literals and constants, nothing heavy.

This module imports only the standard library, so verifiers and reward workers can use the sample
types without loading the storage layer. The Arrow schema, HF `Features`, row conversion and JSON
Schema are derived from these classes in `triune_data.schema`.

Boxes are stored in ONE canonical frame: absolute pixel coordinates (float, x1 y1 x2 y2) of the
first stored image, exactly as its bytes decode. Conversion to and from a model's frame lives in
`triune_data.coords`.

>>> Box("dog", 10.0, 20.0, 110.0, 220.0).x2
110.0
>>> TASK_CATEGORY["grounding"]
'perception'
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

SCHEMA_VERSION = "1.0"
# Absolute pixels of the image as shown (its EXIF orientation applied), float, x1 y1 x2 y2.
BOX_FRAME = "pixel_xyxy"

Task = Literal["math", "puzzle", "science", "chart", "detection", "grounding", "counting", "ocr"]
Category = Literal["reasoning", "perception"]
Role = Literal["system", "user", "assistant"]

TASKS: tuple[Task, ...] = get_args(Task)
TASK_CATEGORY: dict[str, Category] = {
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


class Float32:
    """Marker for `Annotated[float, Float32]`: stored as float32 instead of float64."""


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
    "Float32",
    "Image",
    "ImageSize",
    "Int32",
    "Message",
    "Provenance",
    "RewardSpec",
    "Role",
    "Sample",
    "Task",
]
