"""Load a policy: a local folder, a Hub id, or ``tiny:<family>`` → `Policy(model, processor, family)`.

The config is read first, so an unsupported model (one without a vision tower triune knows) is a
one-line `ModelError` before any weight is loaded. The processor is the family's own class minus
its video processor (`images_only_processor`): triune feeds images only, and the stock class
requires torchvision, which cannot run beside the CPU torch wheel. Its sub-processors still load
through transformers' Auto classes, so a real checkpoint keeps its own image processor settings.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triune_train.models.families import (
    IMAGE_TOKEN,
    VISION_TOKENS,
    Family,
    ModelError,
    family_for,
    quiet_transformers,
)
from triune_train.models.tiny import TinySpec, ensure_tiny, parse_tiny


@functools.cache
def images_only_processor(family: Family) -> Any:
    """The family's processor class without the video slot, saving and loading like the original.

    Saved folders name the original class (``processor_class``), so a machine with torchvision can
    still open them with ``AutoProcessor``.
    """
    base = family.processor_class

    class ImagesOnlyProcessor(base):  # type: ignore[misc, valid-type]
        @classmethod
        def get_attributes(cls) -> list[str]:
            return ["image_processor", "tokenizer"]

        def to_dict(self) -> dict[str, Any]:
            out: dict[str, Any] = super().to_dict()
            out["processor_class"] = base.__name__
            return out

    ImagesOnlyProcessor.__name__ = ImagesOnlyProcessor.__qualname__ = f"{base.__name__}ImagesOnly"
    return ImagesOnlyProcessor


@dataclass
class Policy:
    """A loaded vision-language policy and the token ids every stage needs.

    vision_token_ids   ids of `VISION_TOKENS` present in the vocabulary: banned at sampling and
                       replaced in completions by ``neutral_token_id`` (a space, as V-Triune does)
    eos_token_ids      every id that ends a completion (generation config ∪ tokenizer EOS)
    """

    model: Any
    processor: Any
    family: Family
    path: str
    vision_token_ids: tuple[int, ...] = field(init=False)
    image_token_id: int = field(init=False)
    neutral_token_id: int = field(init=False)
    eos_token_ids: tuple[int, ...] = field(init=False)
    pad_token_id: int = field(init=False)

    def __post_init__(self) -> None:
        tok = self.tokenizer
        vocab = tok.get_vocab()
        self.vision_token_ids = tuple(vocab[t] for t in VISION_TOKENS if t in vocab)
        if IMAGE_TOKEN not in vocab:
            raise ModelError(f"{self.path}: the tokenizer has no {IMAGE_TOKEN} token")
        self.image_token_id = vocab[IMAGE_TOKEN]
        space = tok.encode(" ", add_special_tokens=False)
        if not space or space[0] in self.vision_token_ids:
            raise ModelError(f"{self.path}: the tokenizer cannot encode a space")
        self.neutral_token_id = space[0]
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
        if tok.eos_token_id is not None and tok.eos_token_id not in eos:
            eos.append(tok.eos_token_id)
        if not eos:
            raise ModelError(
                f"{self.path}: neither the generation config nor the tokenizer names an EOS token"
            )
        self.eos_token_ids = tuple(eos)
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else eos[0]

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def patch_size(self) -> int:
        return int(self.processor.image_processor.patch_size)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def load_policy(
    model_path: str,
    *,
    tiny_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    tiny_overrides: dict[str, Any] | None = None,
    dtype: Any = None,
    device: Any = None,
) -> Policy:
    """Load ``model_path`` (a folder, a Hub id, or ``tiny:qwen2_5_vl`` / ``tiny:qwen3_vl``).

    A tiny path is built into ``tiny_dir`` from ``seed`` (and ``tiny_overrides``, `TinySpec` fields)
    unless that folder already holds the same build, then loaded from there like any checkpoint.
    ``dtype`` defaults to float32 (exact log-probs on CPU); pass ``torch.bfloat16`` on GPU.
    """
    import torch
    from transformers import AutoConfig

    spec: TinySpec | None = parse_tiny(model_path, seed=seed, **(tiny_overrides or {}))
    if spec is not None:
        if tiny_dir is None:
            raise ModelError(f"{model_path} needs a folder to build into (tiny_dir)")
        path = str(ensure_tiny(spec, tiny_dir))
    else:
        path = model_path
        if path.startswith(("/", "./", "../", "~")):
            path = str(Path(path).expanduser())
            if not Path(path).is_dir():
                raise ModelError(f"model folder {model_path!r} does not exist")
    with quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(path)
        except Exception as e:  # a missing folder, an unknown Hub id, no network: say which, in one line
            where = "model folder" if Path(path).is_dir() else "Hub model"
            raise ModelError(f"cannot load the {where} {path!r}: {_first_line(e)}") from e
        family = family_for(getattr(config, "model_type", "?"))
        if getattr(config, "vision_config", None) is None:
            raise ModelError(
                f"{path}: model type {config.model_type!r} but no vision_config (no vision tower)"
            )
        try:
            processor = images_only_processor(family).from_pretrained(path)
        except Exception as e:
            raise ModelError(f"cannot load the processor of {path!r}: {_first_line(e)}") from e
        model = family.model_class.from_pretrained(path, dtype=dtype or torch.float32)
    processor.tokenizer.padding_side = "left"
    patch = int(processor.image_processor.patch_size)
    if patch != int(config.vision_config.patch_size):
        raise ModelError(
            f"{path}: processor patch size {patch} != vision tower patch size {config.vision_config.patch_size}"
        )
    if processor.image_token_id != config.image_token_id:
        raise ModelError(
            f"{path}: processor image token {processor.image_token_id} != model's {config.image_token_id}"
        )
    if len(processor.tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ModelError(f"{path}: the tokenizer has more tokens than the model has embeddings")
    if device is not None:
        model.to(device)
    return Policy(model=model, processor=processor, family=family, path=path)
