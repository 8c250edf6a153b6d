from types import SimpleNamespace as NS

import pytest
import torch

from tests.triune_train._model_testkit import make_sample, png_bytes
from triune_data.coords import smart_resize
from triune_train.prompts import (
    IMAGE_COUNT_MISMATCH,
    IMAGE_UNREADABLE,
    PLACEHOLDER_IN_TEXT,
    PROMPT_TOO_LONG,
    batch_inputs,
    build_prompt,
    chat_messages,
)
from triune_train.rollout.base import PromptInputs, Skip

IMG, TXT = {"type": "image"}, lambda t: {"type": "text", "text": t}


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ("Hi", [TXT("Hi")]),
        ("<image>", [IMG]),
        ("<image>\nWhat?", [IMG, TXT("\nWhat?")]),
        ("Compare <image> and <image>.", [TXT("Compare "), IMG, TXT(" and "), IMG, TXT(".")]),
        ("<image><image>", [IMG, IMG]),
    ],
)
def test_chat_messages_split_on_placeholders(content: str, parts: list) -> None:
    assert chat_messages(NS(prompt=[NS(role="user", content=content)])) == [  # type: ignore[arg-type]
        {"role": "user", "content": parts}
    ]


@pytest.mark.parametrize(("family", "factor"), [("qwen2_5_vl", 28), ("qwen3_vl", 32)])
@pytest.mark.parametrize("size", [(320, 240), (100, 300), (57, 61), (1000, 40)])
def test_one_processor_call_is_the_truth(
    tiny_policy, family: str, factor: int, size: tuple[int, int]
) -> None:
    policy = tiny_policy(family)
    sample = make_sample(images=[("blue", size)])
    prompt = build_prompt(sample, policy, max_prompt_tokens=1000)
    assert isinstance(prompt, PromptInputs)
    direct = policy.processor(images=[sample_image(size)], text=[prompt.text], return_tensors="pt")
    assert torch.equal(prompt.input_ids, direct["input_ids"][0])
    assert torch.equal(prompt.mm["pixel_values"], direct["pixel_values"])
    assert prompt.text.endswith(
        "<|vision_start|><|image_pad|><|vision_end|>\nWhat colour is the image?<|im_end|>\n<|im_start|>assistant\n"
    )
    # the model input size: grid x patch, which is the processor's own resize rule (cross-checked here)
    ip = policy.processor.image_processor
    h, w = smart_resize(
        size[1],
        size[0],
        factor=factor,
        min_pixels=ip.size["shortest_edge"],
        max_pixels=ip.size["longest_edge"],
    )
    assert prompt.model_input_sizes == [(w, h)]
    t, gh, gw = prompt.mm["image_grid_thw"][0].tolist()
    image_tokens = prompt.input_ids == policy.image_token_id
    assert int(image_tokens.sum()) == t * gh * gw // 4
    assert torch.equal(
        prompt.mm["mm_token_type_ids"], image_tokens.long().to(prompt.mm["mm_token_type_ids"].dtype)
    )
    assert "attention_mask" not in prompt.mm


def sample_image(size: tuple[int, int]):
    from PIL import Image

    return Image.new("RGB", size, "blue")


def test_two_images_and_a_system_turn(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    sample = make_sample(
        text="Compare <image> with <image>.",
        images=[("red", (112, 112)), ("blue", (56, 200))],
        system="Be brief.",
    )
    prompt = build_prompt(sample, policy, max_prompt_tokens=1000)
    assert isinstance(prompt, PromptInputs)
    assert prompt.text.startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCompare <|vision_start|>"
    )
    assert prompt.model_input_sizes == [(112, 112), (56, 196)]
    assert prompt.mm["image_grid_thw"].tolist() == [[1, 8, 8], [1, 14, 4]]


def test_text_only_prompt(tiny_policy) -> None:
    prompt = build_prompt(
        make_sample(text="What is 2 + 2?", images=[]), tiny_policy("qwen3_vl"), max_prompt_tokens=100
    )
    assert (
        isinstance(prompt, PromptInputs)
        and prompt.model_input_sizes == []
        and "pixel_values" not in prompt.mm
    )


def test_budget_skips_never_truncates(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    sample = make_sample()
    exact = build_prompt(sample, policy, max_prompt_tokens=10_000)
    assert isinstance(exact, PromptInputs)
    assert isinstance(build_prompt(sample, policy, max_prompt_tokens=exact.num_tokens), PromptInputs)
    skip = build_prompt(sample, policy, max_prompt_tokens=exact.num_tokens - 1)
    assert skip == Skip(
        PROMPT_TOO_LONG,
        f"{exact.num_tokens} tokens (12 image tokens for 1 images) > max_prompt_tokens {exact.num_tokens - 1}",
    )


@pytest.mark.parametrize(
    ("kwargs", "reason", "detail"),
    [
        ({"text": "No placeholder here"}, IMAGE_COUNT_MISMATCH, "0 <image> placeholders, 1 images"),
        ({"text": "<image><image>"}, IMAGE_COUNT_MISMATCH, "2 <image> placeholders, 1 images"),
        ({"image_bytes": [b"\x89PNG not really"]}, IMAGE_UNREADABLE, "UnidentifiedImageError"),
        ({"image_bytes": [png_bytes("red", (64, 64))[:60]]}, IMAGE_UNREADABLE, "Error"),
        ({"text": "<image>What is <|image_pad|>?"}, PLACEHOLDER_IN_TEXT, "<|image_pad|>"),
        ({"text": "<image>", "system": "<|vision_start|>"}, PLACEHOLDER_IN_TEXT, "<|vision_start|>"),
    ],
)
def test_unusable_samples_are_skipped_with_a_reason(
    tiny_policy, kwargs: dict, reason: str, detail: str
) -> None:
    skip = build_prompt(make_sample(**kwargs), tiny_policy("qwen2_5_vl"), max_prompt_tokens=1000)
    assert isinstance(skip, Skip) and skip.reason == reason and detail in skip.detail


def test_batch_inputs_layout(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    long = build_prompt(
        make_sample(text="<image>\n" + "red " * 10, images=[("red", (112, 112))]),
        policy,
        max_prompt_tokens=999,
    )
    short = build_prompt(make_sample(images=[("blue", (56, 56))]), policy, max_prompt_tokens=999)
    assert isinstance(long, PromptInputs) and isinstance(short, PromptInputs)
    pad = policy.pad_token_id
    c_long, c_short = torch.tensor([7, 8, 9]), torch.tensor([5])
    batch = batch_inputs([short, long], [c_long, c_short], pad_token_id=pad)
    width = max(short.num_tokens, long.num_tokens)
    left = width - short.num_tokens
    assert batch["input_ids"].shape == (2, width + 3)
    assert batch["input_ids"][0].tolist() == [pad] * left + short.input_ids.tolist() + [7, 8, 9]
    assert batch["input_ids"][1].tolist() == [*long.input_ids.tolist(), 5, pad, pad]
    assert batch["attention_mask"].tolist() == [
        [0] * left + [1] * (short.num_tokens + 3),
        [1] * (width + 1) + [0, 0],
    ]
    assert batch["mm_token_type_ids"][0].tolist() == [0] * left + short.mm["mm_token_type_ids"].tolist() + [
        0,
        0,
        0,
    ]
    assert torch.equal(batch["pixel_values"], torch.cat([short.mm["pixel_values"], long.mm["pixel_values"]]))
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 8, 8]]
    prompts_only = batch_inputs([short, long], pad_token_id=pad)
    assert prompts_only["input_ids"].shape == (2, width)
    with pytest.raises(ValueError, match="2 completions for 1 prompts"):
        batch_inputs([short], [c_long, c_short], pad_token_id=pad)
