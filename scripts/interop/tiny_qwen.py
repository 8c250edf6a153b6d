"""A Qwen2.5-VL tokenizer and processor built offline, for the interop checks (transformers 4.5x and 5.x).

The checks run verl's and EasyR1's own dataset code, which needs a tokenizer and a processor but no
model weights: a byte-level BPE trained on a few strings plus Qwen's special tokens, Qwen's chat
template shape, and the real Qwen2-VL image processor with the released Qwen2.5-VL pixel limits
unless told otherwise. Nothing is downloaded.

Two things stand in for what this CPU machine cannot install (torchvision's wheels need CUDA torch):
the processor accepts no video processor, and `torchvision_stand_in()` gives qwen_vl_utils, which
imports torchvision at import time for its video code, a module that fails loudly if video is used.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "How many objects are in the image? <think> count them </think> <answer> 3 </answer>",
    'Locate every object. [{"bbox_2d": [12.5, 30, 140, 96], "label": "red circle"}] \\boxed{42}',
    "What is written in the image? The answer is 7 + 5 = 12. Which option is correct? (A) (B) (C)",
] * 20
RELEASED_PIXELS = (56 * 56, 28 * 28 * 16384)  # Qwen2.5-VL-7B-Instruct's preprocessor_config.json


def tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[1:],
        chat_template=CHAT_TEMPLATE,
    )
    hf.padding_side = "left"
    return hf


def processor(tok: Any, min_pixels: int = RELEASED_PIXELS[0], max_pixels: int = RELEASED_PIXELS[1]) -> Any:
    import transformers

    image_cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor
    images = image_cls(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14, merge_size=2)

    class ImagesOnly(transformers.Qwen2_5_VLProcessor):  # the stock one insists on a video processor
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument is None and argument_name == "video_processor":
                return None
            if argument_name == "tokenizer" and isinstance(argument, transformers.PreTrainedTokenizerFast):
                return None  # transformers 4.x wants the Qwen2 class; this one has Qwen's tokens
            return super().check_argument_for_proper_class(argument_name, argument)

    ImagesOnly.__name__ = "Qwen2_5_VLProcessor"
    return ImagesOnly(
        image_processor=images, tokenizer=tok, video_processor=None, chat_template=CHAT_TEMPLATE
    )


def torchvision_stand_in() -> None:
    """Let qwen_vl_utils import on a machine without torchvision; images never touch it."""
    if "torchvision" in sys.modules:
        return
    # They decide at import that torchvision is absent: before the stand-in exists.
    import datasets  # noqa: F401
    import transformers  # noqa: F401

    def absent(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin="triune interop stand-in")

        def fail(attr: str) -> Any:
            raise AttributeError(f"{name}.{attr}: torchvision is not installed (video is not supported here)")

        module.__getattr__ = fail  # type: ignore[method-assign]
        return module

    root, io, transforms = absent("torchvision"), absent("torchvision.io"), absent("torchvision.transforms")
    transforms.InterpolationMode = types.SimpleNamespace(BICUBIC="bicubic", BILINEAR="bilinear")  # type: ignore[attr-defined]
    root.io, root.transforms = io, transforms  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": root, "torchvision.io": io, "torchvision.transforms": transforms})
