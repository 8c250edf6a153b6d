"""Shared helpers for the model, prompt, log-prob and rollout tests: samples with real images."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image as PILImage

from triune_data.types import Image, ImageSize, Message, Provenance, RewardSpec, Sample
from triune_train.rollout.base import PromptInputs

if TYPE_CHECKING:
    from triune_train.models.loading import Policy


def png_bytes(color: str | tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def make_sample(
    sid: str = "s0",
    *,
    text: str = "<image>\nWhat colour is the image?",
    images: list[tuple[str, tuple[int, int]]] | None = None,
    image_bytes: list[bytes] | None = None,
    system: str | None = None,
    source: str = "synth",
) -> Sample:
    """A sample whose prompt is `text` (with ``<image>`` placeholders) and solid-colour PNG images."""
    images = [("red", (320, 240))] if images is None else images
    blobs = image_bytes if image_bytes is not None else [png_bytes(c, s) for c, s in images]
    sizes = [ImageSize(width=s[0], height=s[1]) for _, s in images] or [ImageSize(1, 1)] * len(blobs)
    prompt = ([Message(role="system", content=system)] if system else []) + [
        Message(role="user", content=text)
    ]
    return Sample(
        id=sid,
        data_source=source,
        task="counting",
        category="perception",
        split="train",
        images=[Image(bytes=b, path=None) for b in blobs],
        image_sizes=sizes[: len(blobs)],
        prompt=prompt,
        answer="red",
        ground_truth="red",
        boxes=[],
        reward=RewardSpec(verifier="format", verifier_params="{}", accuracy_weight=1.0, format_weight=0.0),
        sample_weight=1.0,
        difficulty=None,
        provenance=Provenance(source="test", original_id=sid),
    )


def prompt_of(sample: Sample, policy: Policy, *, max_prompt_tokens: int = 1000) -> PromptInputs:
    """`build_prompt` for a sample that must fit (fails the test with the skip reason otherwise)."""
    from triune_train.prompts import build_prompt

    prompt = build_prompt(sample, policy, max_prompt_tokens=max_prompt_tokens)
    assert isinstance(prompt, PromptInputs), prompt
    return prompt
