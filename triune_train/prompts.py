"""Sample → `PromptInputs`: the model's chat template and ONE processor call per prompt.

That one call is the truth for the prompt's token ids, pixel values and image grid: generation and
log-prob recomputation both reuse its tensors (`batch_inputs`), and the size of each image as the
model saw it (``model_input_sizes``, for box rewards) is read from its ``image_grid_thw``, never
recomputed from a resize rule that could drift from the processor's.

A prompt that does not fit is skipped with a named reason, never truncated: cutting through the
image placeholder tokens would desynchronise tokens and pixel features (and cutting text would
change the question).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from triune_data.types import IMAGE_PLACEHOLDER, Sample
from triune_train.models.families import VISION_TOKENS
from triune_train.rollout.base import PromptInputs, Skip

if TYPE_CHECKING:
    from PIL.Image import Image

    from triune_train.models.loading import Policy

# Skip reasons (counted per data_source by the caller).
PROMPT_TOO_LONG = "prompt_too_long"
IMAGE_COUNT_MISMATCH = "image_count_mismatch"
IMAGE_UNREADABLE = "image_unreadable"
PLACEHOLDER_IN_TEXT = "placeholder_in_text"

# Processor outputs with one entry per token: padded with the sequence, not concatenated.
TOKEN_ALIGNED_KEYS = frozenset({"mm_token_type_ids", "token_type_ids"})


def chat_messages(sample: Sample) -> list[dict[str, Any]]:
    """The sample's prompt as chat-template messages: each ``<image>`` becomes an image part, in order.

    >>> from types import SimpleNamespace as NS
    >>> chat_messages(NS(prompt=[NS(role="user", content="<image>\\nWhat colour?")]))
    [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': '\\nWhat colour?'}]}]
    """
    messages = []
    for message in sample.prompt:
        parts: list[dict[str, Any]] = []
        for i, text in enumerate(message.content.split(IMAGE_PLACEHOLDER)):
            if i:
                parts.append({"type": "image"})
            if text:
                parts.append({"type": "text", "text": text})
        messages.append({"role": message.role, "content": parts})
    return messages


def decode_images(sample: Sample) -> list[Image]:
    """The sample's images as RGB PIL images (stored bytes, or the path when there are none)."""
    from PIL import Image as PILImage

    images = []
    for image in sample.images:
        source = io.BytesIO(image.bytes) if image.bytes is not None else image.path
        if source is None:
            raise ValueError("image has neither bytes nor path")
        with PILImage.open(source) as opened:
            images.append(opened.convert("RGB"))
    return images


def build_prompt(sample: Sample, policy: Policy, *, max_prompt_tokens: int) -> PromptInputs | Skip:
    """Render the chat template and run the processor once; `Skip` when the prompt cannot be used.

    Skips: ``placeholder_in_text`` (prompt text spells a vision token such as ``<|image_pad|>``,
    which would desynchronise tokens and images), ``image_count_mismatch``, ``image_unreadable``,
    ``prompt_too_long`` (more than ``max_prompt_tokens`` tokens with the image tokens counted).
    """
    texts = [m.content for m in sample.prompt]
    spelled = sorted({t for t in VISION_TOKENS for text in texts if t in text})
    if spelled:
        return Skip(PLACEHOLDER_IN_TEXT, f"prompt text contains {', '.join(spelled)}")
    placeholders = sum(text.count(IMAGE_PLACEHOLDER) for text in texts)
    if placeholders != len(sample.images):
        return Skip(
            IMAGE_COUNT_MISMATCH,
            f"{placeholders} {IMAGE_PLACEHOLDER} placeholders, {len(sample.images)} images",
        )
    try:
        images = decode_images(sample)
    except Exception as e:  # any decoder failure is this sample's problem, not the run's
        return Skip(IMAGE_UNREADABLE, f"{type(e).__name__}: {e}")
    processor = policy.processor
    text = processor.apply_chat_template(chat_messages(sample), tokenize=False, add_generation_prompt=True)
    out = processor(images=images or None, text=[text], return_tensors="pt")
    input_ids = out["input_ids"][0]
    num_tokens = int(input_ids.shape[0])
    if num_tokens > max_prompt_tokens:
        image_tokens = int((input_ids == policy.image_token_id).sum())
        return Skip(
            PROMPT_TOO_LONG,
            f"{num_tokens} tokens ({image_tokens} image tokens for {len(images)} images) > max_prompt_tokens {max_prompt_tokens}",
        )
    mm = {
        k: v[0] if k in TOKEN_ALIGNED_KEYS else v
        for k, v in out.items()
        if k not in ("input_ids", "attention_mask")
    }
    patch = policy.patch_size
    grid = mm.get("image_grid_thw", torch.zeros(0, 3, dtype=torch.long))
    sizes = [(int(w) * patch, int(h) * patch) for _, h, w in grid.tolist()]
    return PromptInputs(sample=sample, text=text, input_ids=input_ids, mm=mm, model_input_sizes=sizes)


def batch_inputs(
    prompts: Sequence[PromptInputs],
    completions: Sequence[torch.Tensor] | None = None,
    *,
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """Model inputs for a batch: prompts left-padded to a common end, completions right-padded.

    Row ``i`` is ``[pad …][prompt_i][completion_i][pad …]`` with ``attention_mask`` 0 on pads, so
    every prompt ends at column ``P = max prompt length`` and completion token ``j`` sits at
    column ``P + j`` in every row (the layout `generate` itself produces). Token-aligned processor
    outputs (``mm_token_type_ids``) are padded and extended with 0 (text) over the completion;
    the others (``pixel_values``, ``image_grid_thw``) are concatenated in row order.

    Shapes: input_ids, attention_mask, mm_token_type_ids [B, P + C]; pixel_values [sum N_i, D];
    image_grid_thw [sum I_i, 3].
    """
    if completions is not None and len(completions) != len(prompts):
        raise ValueError(f"{len(completions)} completions for {len(prompts)} prompts")
    width_p = max(p.num_tokens for p in prompts)
    width_c = max((int(c.shape[0]) for c in completions), default=0) if completions is not None else 0
    rows, masks = [], []
    aligned: dict[str, list[torch.Tensor]] = {k: [] for k in prompts[0].mm if k in TOKEN_ALIGNED_KEYS}
    stacked: dict[str, list[torch.Tensor]] = {}
    for i, prompt in enumerate(prompts):
        completion = completions[i] if completions is not None else prompt.input_ids[:0]
        left, right = width_p - prompt.num_tokens, width_c - int(completion.shape[0])
        ids = prompt.input_ids
        rows.append(
            torch.cat(
                [
                    ids.new_full((left,), pad_token_id),
                    ids,
                    completion.to(ids),
                    ids.new_full((right,), pad_token_id),
                ]
            )
        )
        masks.append(
            torch.cat(
                [
                    ids.new_zeros(left),
                    ids.new_ones(prompt.num_tokens + completion.shape[0]),
                    ids.new_zeros(right),
                ]
            )
        )
        for key, value in prompt.mm.items():
            if key in TOKEN_ALIGNED_KEYS:
                aligned.setdefault(key, []).append(
                    torch.cat([value.new_zeros(left), value, value.new_zeros(width_c)])
                )
            else:
                stacked.setdefault(key, []).append(value)
    batch = {"input_ids": torch.stack(rows), "attention_mask": torch.stack(masks)}
    for key, values in aligned.items():
        if len(values) != len(prompts):
            raise ValueError(f"processor output {key!r} is missing for some prompts")
        batch[key] = torch.stack(values)
    batch.update({key: torch.cat(values) for key, values in stacked.items()})
    return batch
