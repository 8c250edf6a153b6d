"""Vision-language model families: what differs between Qwen2-VL, Qwen2.5-VL and Qwen3-VL.

A family is detected from ``config.model_type`` and says:

- the box frame its answers use (``triune_data.coords``): Qwen2.5-VL writes absolute pixels of
  its RESIZED input image, Qwen2-VL and Qwen3-VL write 0–1000 normalised coordinates;
- the patch size of its vision tower (14 for Qwen2/2.5-VL, 16 for Qwen3-VL), checked against the
  processor, which is the truth for the size of the image the model saw (grid × patch);
- its vision placeholder tokens, which a policy must never generate;
- the module CLASSES of its vision tower and connector (the patch merger), so freezing works by
  type: transformers 5 moved ``visual.*`` to ``model.visual.*``, and a freeze by name strings
  silently froze nothing (V-Triune's released ``ACTOR_LR_FREEZE`` matched ``visual.*``).

Classes are imported lazily (importing transformers' modelling code is slow), and a class that a
future transformers renames fails loudly here instead of freezing nothing.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from triune_data.coords import Frame
from triune_data.errors import TriuneError

FamilyName = Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]

# Tokens that stand for vision inputs. A generated `<|image_pad|>` makes the next forward pass fail
# ("Image features and image tokens do not match"); start/end/pad markers would confuse the
# rope-index computation the same way. None of them belongs in a text answer.
VISION_TOKENS: tuple[str, ...] = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
IMAGE_TOKEN = "<|image_pad|>"


class ModelError(TriuneError):
    """A model, tokenizer or processor that triune cannot train (unsupported, inconsistent)."""


@dataclass(frozen=True)
class Family:
    """What triune needs to know about one model family (see the module docstring)."""

    name: FamilyName
    model_types: tuple[str, ...]
    box_frame: Frame
    patch_size: int
    merge_size: int
    # the pixel limits of the released checkpoints' preprocessor_config.json (what a framework's
    # processor uses unless told otherwise)
    min_pixels: int
    max_pixels: int
    default_system: str | None  # the system turn the family's chat template adds when none is given
    _module: str  # transformers module with the classes below
    _model_class: str
    _processor_class: str
    _vision_tower_classes: tuple[str, ...]
    _connector_classes: tuple[str, ...]

    @property
    def factor(self) -> int:
        """Image sides are multiples of this (one merged token covers factor × factor pixels)."""
        return self.patch_size * self.merge_size

    def _classes(self, names: tuple[str, ...]) -> tuple[type, ...]:
        module = importlib.import_module(self._module)
        try:
            return tuple(getattr(module, n) for n in names)
        except AttributeError as e:  # a transformers release renamed a class: refuse, never guess
            raise ModelError(
                f"{self.name}: {self._module} has no class {e.name!r}; unsupported transformers"
            ) from e

    @property
    def model_class(self) -> Any:
        return self._classes((self._model_class,))[0]

    @property
    def processor_class(self) -> Any:
        return getattr(importlib.import_module("transformers"), self._processor_class)

    @property
    def vision_tower_types(self) -> tuple[type, ...]:
        """Module classes of the vision tower (patch embedding, blocks and the merger inside it)."""
        return self._classes(self._vision_tower_classes)

    @property
    def connector_types(self) -> tuple[type, ...]:
        """Module classes of the connector: the patch merger(s) projecting into the language model."""
        return self._classes(self._connector_classes)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="qwen2_vl",
            model_types=("qwen2_vl",),
            box_frame="norm1000",
            patch_size=14,
            merge_size=2,
            min_pixels=56 * 56,
            max_pixels=28 * 28 * 16384,
            default_system="You are a helpful assistant.",
            _module="transformers.models.qwen2_vl.modeling_qwen2_vl",
            _model_class="Qwen2VLForConditionalGeneration",
            _processor_class="Qwen2VLProcessor",
            _vision_tower_classes=("Qwen2VisionTransformerPretrainedModel",),
            _connector_classes=("PatchMerger",),
        ),
        Family(
            name="qwen2_5_vl",
            model_types=("qwen2_5_vl",),
            box_frame="pixel",
            patch_size=14,
            merge_size=2,
            min_pixels=56 * 56,
            max_pixels=28 * 28 * 16384,
            default_system="You are a helpful assistant.",
            _module="transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
            _model_class="Qwen2_5_VLForConditionalGeneration",
            _processor_class="Qwen2_5_VLProcessor",
            _vision_tower_classes=("Qwen2_5_VisionTransformerPretrainedModel",),
            _connector_classes=("Qwen2_5_VLPatchMerger",),
        ),
        Family(
            name="qwen3_vl",
            model_types=("qwen3_vl",),
            box_frame="norm1000",
            patch_size=16,
            merge_size=2,
            min_pixels=256 * 256,
            max_pixels=32 * 32 * 16384,
            default_system=None,
            _module="transformers.models.qwen3_vl.modeling_qwen3_vl",
            _model_class="Qwen3VLForConditionalGeneration",
            _processor_class="Qwen3VLProcessor",
            _vision_tower_classes=("Qwen3VLVisionModel",),
            # the final merger and the deepstack mergers feeding early language layers
            _connector_classes=("Qwen3VLVisionPatchMerger",),
        ),
    )
}


def family_for(model_type: str) -> Family:
    """The family of a ``config.model_type``; a one-line `ModelError` for anything else.

    >>> family_for("qwen2_5_vl").box_frame
    'pixel'
    >>> family_for("qwen3_vl").patch_size
    16
    >>> family_for("qwen2")
    Traceback (most recent call last):
    ...
    triune_train.models.families.ModelError: model type 'qwen2' has no vision tower triune can train; supported: qwen2_vl, qwen2_5_vl, qwen3_vl
    """
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = ", ".join(t for f in FAMILIES.values() for t in f.model_types)
    raise ModelError(f"model type {model_type!r} has no vision tower triune can train; supported: {known}")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide the 'requires torchvision, falling back to the PIL backend' notice (that is the plan) and
    the per-file progress bars of loading a model."""
    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("transformers")
    level, bars = logger.level, hf_logging.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()
