"""Tiny random Qwen2.5-VL and Qwen3-VL, built offline in code, saved as a Hugging Face folder.

Tests and the demo need a real vision-language model that loads through the same code path as a
Hub checkpoint, yet is built in a second with nothing downloaded. `build_tiny` makes one:

- a byte-level BPE tokenizer trained here on a corpus covering the demo's prompts and answers
  (digits, colour and shape words, JSON box syntax, think/answer tags, ``\\boxed{}``) plus Qwen's
  14 special tokens, with a Qwen-style chat template, EOS ``<|im_end|>`` and left padding;
- the family's processor without a video processor (`loading.images_only_processor`: the stock one
  requires torchvision, which cannot run beside the CPU torch wheel);
- a random model of the real architecture: text hidden 128, 2 layers, a 2-block vision tower of
  width 64 (0.6–0.7 M parameters), with small image budgets (a 320×240 image is 12 image tokens).

Every part is a pure function of its arguments: the same arguments give the same tokenizer and the
same weights (the global torch RNG is left untouched). ``ensure_tiny`` reuses an earlier build with
the same spec, which is what `--resume` needs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from triune_data import atomic
from triune_train.models.families import FAMILIES, VISION_TOKENS, Family, ModelError, quiet_transformers

TINY_PREFIX = "tiny:"
TINY_FAMILIES = ("qwen2_5_vl", "qwen3_vl")
SPEC_FILE = "triune_tiny.json"

# Qwen's special tokens, in Qwen's order (their ids follow the BPE vocabulary, as in the real models).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    *VISION_TOKENS,
)


def chat_template(default_system: str | None) -> str:
    """A Qwen-style chat template: string or part-list contents, images as
    ``<|vision_start|><|image_pad|><|vision_end|>``, an optional default system turn."""
    # No whitespace control anywhere: every character of the output is literal in the template.
    system = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n"
        + default_system
        + "<|im_end|>\n{% endif %}"
        if default_system
        else ""
    )
    return (
        system + "{% for message in messages %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}"
        "{% endif %}{% endfor %}{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "pink")
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")


def corpus() -> list[str]:
    """The strings the tokenizer is trained on: what demo prompts and answers are made of."""
    lines = [
        "You are a helpful assistant.",
        "system user assistant",
        "What colour is the image? Answer with one word.",
        "What is the colour of the shape in the image?",
        "How many objects are there in the image?",
        "Locate all objects of the designated class present in the image:",
        "Find the region of the image referred to by the expression",
        "Give the bounding box of the object described as: the largest red circle",
        "Let's reason through this step by step. Put the final answer in \\boxed{}.",
        "What is the value of x in the figure? Which option is correct? A. 3 B. 4 C. 5 D. 6",
        "Begin by clearly explaining your thought process enclosed within <think> and </think> tags. "
        "Afterward, present your final detection results enclosed within <answer> and </answer> tags.",
        "<think>\nYour detailed reasoning process here.\n</think>\n<answer>\n"
        "[{'bbox_2d': [x1,y1,x2,y2],'label': label_name}]\n</answer>",
        "The answer is \\boxed{42}. The area is \\frac{3}{4} and the total is 12.5.",
    ]
    for i, colour in enumerate(COLOURS):
        for j, shape in enumerate(SHAPES):
            x1, y1 = (37 * i + 11 * j) % 900, (53 * j + 7 * i) % 900
            lines.append(
                f"a {colour} {shape}. The {colour} {shape} is left of the {shape}. {colour.capitalize()}"
            )
            lines.append(f'[{{"bbox_2d": [{x1}, {y1}, {x1 + 64}, {y1 + 48}], "label": "{colour} {shape}"}}]')
            lines.append(f"<think>\nI see a {colour} {shape}.\n</think>\n<answer>{colour}</answer>")
            lines.append(
                f"<answer>\n[{{'bbox_2d': [{x1},{y1},{x1 + 30},{y1 + 20}],'label': '{shape}'}}]\n</answer>"
            )
    lines += [" ".join(str(n) for n in range(k, 1001, 10)) for k in range(10)]
    return lines * 4


@dataclass(frozen=True)
class TinySpec:
    """Everything a tiny build depends on; saved beside it as `SPEC_FILE`."""

    family: str
    seed: int = 0
    vocab_size: int = 400
    hidden_size: int = 128
    num_layers: int = 2
    vision_width: int = 64
    max_image_side: int = 0  # 0: the family's default (112 for patch 14, 128 for patch 16)

    def __post_init__(self) -> None:
        if self.family not in TINY_FAMILIES:
            raise ModelError(f"no tiny model for {self.family!r}; choose one of {', '.join(TINY_FAMILIES)}")
        if self.vocab_size < 256 + len(SPECIAL_TOKENS) + 16:
            raise ModelError(f"tiny vocab_size must be at least {256 + len(SPECIAL_TOKENS) + 16}")
        if self.hidden_size % 32:
            raise ModelError("tiny hidden_size must be a multiple of 32 (4 heads, mrope sections)")


def build_tokenizer(vocab_size: int, *, default_system: str | None) -> Any:
    """A byte-level BPE trained on `corpus()`, Qwen's special tokens, chat template, left padding."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    # Qwen's pre-tokenizer: its split regex (one digit per token), then bytes to printable characters
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(), trainer=trainer)
    bpe.add_special_tokens(list(SPECIAL_TOKENS))  # after the BPE ranks, as in Qwen's vocabulary
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=chat_template(default_system),
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_processor(family: Family, tokenizer: Any, *, max_image_side: int = 0) -> Any:
    """The family's processor with a PIL image processor and a small pixel budget."""
    from transformers import Qwen2VLImageProcessorPil

    from triune_train.models.loading import images_only_processor

    factor = family.patch_size * family.merge_size
    side = max_image_side or 4 * factor  # 112 px for patch 14, 128 px for patch 16: at most 16 image tokens
    mean_std: dict[str, Any] = (
        {"image_mean": [0.5] * 3, "image_std": [0.5] * 3} if family.name == "qwen3_vl" else {}
    )
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=2 * factor * 2 * factor,
        max_pixels=side * side,
        patch_size=family.patch_size,
        temporal_patch_size=2,
        merge_size=family.merge_size,
        **mean_std,
    )
    return images_only_processor(family)(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


def _config(spec: TinySpec, family: Family, tokenizer: Any) -> Any:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads, hidden = 4, spec.hidden_size
    head_dim = hidden // heads
    text: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    vision: dict[str, Any] = dict(
        depth=2,
        hidden_size=spec.vision_width,
        intermediate_size=2 * spec.vision_width,
        num_heads=4,
        out_hidden_size=hidden,
        patch_size=family.patch_size,
        spatial_merge_size=family.merge_size,
        temporal_patch_size=2,
        in_channels=3,
    )
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    if family.name == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        # mrope sections (temporal, height, width) sum to head_dim / 2
        sections = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": sections}
        vision.update(window_size=4 * family.patch_size * family.merge_size, fullatt_block_indexes=[1])
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    from transformers import Qwen3VLConfig

    sections = [head_dim // 4, head_dim // 8, head_dim // 8]
    text.update(head_dim=head_dim)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5e6,
        "mrope_section": sections,
        "mrope_interleaved": True,
    }
    vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
    return Qwen3VLConfig(text_config=text, vision_config=vision, **common)


def build_model(spec: TinySpec, tokenizer: Any) -> Any:
    """A random model of the family's real architecture, initialised from ``spec.seed``."""
    import torch
    from transformers import GenerationConfig

    family = FAMILIES[spec.family]
    config = _config(spec, family, tokenizer)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream stays where it was
        torch.manual_seed(spec.seed)
        model = family.model_class(config)
    im_end, eot = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    model.generation_config = GenerationConfig(eos_token_id=[im_end, eot], pad_token_id=eot, bos_token_id=eot)
    return model.eval()


def build_tiny(spec: TinySpec, out_dir: str | os.PathLike[str]) -> Path:
    """Build the tiny model, tokenizer and processor and save them as a HF folder (atomically).

    The folder loads with `triune_train.models.loading.load_policy` like any checkpoint.
    """
    family = FAMILIES[spec.family]
    out = Path(out_dir)
    tokenizer = build_tokenizer(spec.vocab_size, default_system=family.default_system)
    processor = build_processor(family, tokenizer, max_image_side=spec.max_image_side)
    model = build_model(spec, tokenizer)

    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
        (tmp / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2, sort_keys=True) + "\n")

    atomic.swap_dir(out, write)
    return out


def parse_tiny(model_path: str, *, seed: int = 0, **overrides: Any) -> TinySpec | None:
    """`TinySpec` for a ``tiny:<family>`` model path, None for anything else.

    >>> parse_tiny("tiny:qwen3_vl", seed=3).seed
    3
    >>> parse_tiny("Qwen/Qwen2.5-VL-7B-Instruct") is None
    True
    """
    if not model_path.startswith(TINY_PREFIX):
        return None
    return TinySpec(family=model_path[len(TINY_PREFIX) :], seed=seed, **overrides)


def ensure_tiny(spec: TinySpec, out_dir: str | os.PathLike[str]) -> Path:
    """Build into `out_dir` unless it already holds a build of the same spec (resume reuses it).

    A folder holding a different spec is an error, never silently replaced.
    """
    out = Path(out_dir)
    marker = out / SPEC_FILE
    if marker.exists():
        existing = json.loads(marker.read_text())
        if existing == asdict(spec):
            return out
        raise ModelError(f"{out} holds a different tiny model ({existing}); expected {asdict(spec)}")
    if out.exists() and any(out.iterdir()):
        raise ModelError(f"{out} exists and is not a tiny model build; refusing to overwrite it")
    return build_tiny(spec, out)
