"""Overlong prompts, text and images together (V-Triune Fig. 9: "Overlong Query Filter (Image + Text)").

The paper gives no threshold; its training script allows 8,192 prompt tokens and errors on longer
ones, so that is the default budget. A prompt's tokens are:

- text: the prompt rendered with the tokenizer's chat template (with the generation prompt), the
  ``<image>`` placeholders removed, counted with the given tokenizer (plain message contents when
  it has no template or `chat_template` is off);
- images: what a Qwen2-VL-family processor turns each image into, from `image_sizes` alone (no
  image is decoded): the image is resized (`triune_data.coords.smart_resize`) to multiples of
  patch × merge (14 × 2 = 28) with an area in [min_pixels, max_pixels], and gives
  (h / 28) × (w / 28) tokens, plus `image_marker_tokens` around it (<|vision_start|>, <|vision_end|>).

The pixel limits and patch sizes default to those of the processor saved with the tokenizer, else
to transformers' Qwen2-VL defaults. transformers is imported only when the filter runs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import polars as pl
from pydantic import Field

from triune_data.coords import smart_resize
from triune_data.errors import RecipeError
from triune_data.filters.base import Context, Filter, Verdict, register_filter
from triune_data.types import IMAGE_PLACEHOLDER

# transformers' Qwen2-VL image processor defaults (size shortest_edge / longest_edge, patch, merge)
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
DEFAULT_PATCH_SIZE = 14
DEFAULT_MERGE_SIZE = 2
_BATCH = 4096  # prompts rendered and tokenized per call


@lru_cache(maxsize=4)
def load_tokenizer(source: str) -> tuple[Any, Any]:
    """(tokenizer, image processor or None) of a local folder or Hub id, loaded once per process."""
    from transformers import AutoImageProcessor, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # transformers raises OSError, ValueError, ... for a missing or bad one
        raise RecipeError(f"prompt_tokens: cannot load tokenizer {source!r}: {exc}".splitlines()[0]) from None
    try:
        image_processor = AutoImageProcessor.from_pretrained(source)
    except Exception:  # a text-only tokenizer: the image defaults apply
        image_processor = None
    return tokenizer, image_processor


def processor_limits(image_processor: Any) -> dict[str, int]:
    """min_pixels, max_pixels, patch_size, merge_size that `image_processor` declares (any subset)."""
    if image_processor is None:
        return {}
    out: dict[str, int] = {}
    size = getattr(image_processor, "size", None)
    size = dict(size) if size is not None else {}
    for key, alt in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
        value = getattr(image_processor, key, None) or size.get(key) or size.get(alt)
        if isinstance(value, int):
            out[key] = value
    for key in ("patch_size", "merge_size"):
        value = getattr(image_processor, key, None)
        if isinstance(value, int):
            out[key] = value
    return out


def token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    """Tokens of each text, special tokens written in it included, none added: through the fast
    tokenizer's Rust backend when there is one (the same ids, without building Python encodings)."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False)]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


@register_filter
class PromptTokens(Filter):
    """Prompt over `max_tokens` tokens, its text and its images' tokens together."""

    name: ClassVar[str] = "prompt_tokens"
    columns: ClassVar[tuple[str, ...]] = ("prompt", "image_sizes")
    tokenizer: str = Field(description="Tokenizer folder (relative to the recipe) or Hub id.")
    max_tokens: int = Field(default=8192, ge=1, description="Most prompt tokens kept, text and images.")
    chat_template: bool = Field(default=True, description="Count the prompt as the chat template renders it.")
    min_pixels: int | None = Field(default=None, ge=1, description="Default: the processor's.")
    max_pixels: int | None = Field(default=None, ge=1, description="Default: the processor's.")
    patch_size: int | None = Field(default=None, ge=1, description="Default: the processor's (14).")
    merge_size: int | None = Field(default=None, ge=1, description="Default: the processor's (2).")
    image_marker_tokens: int = Field(default=2, ge=0, description="Tokens around each image's own.")

    def _load(self, ctx: Context) -> tuple[Any, dict[str, int]]:
        local = ctx.resolve(self.tokenizer)
        tokenizer, image_processor = load_tokenizer(str(local) if local.exists() else self.tokenizer)
        found = processor_limits(image_processor)
        limits = {
            "min_pixels": self.min_pixels or found.get("min_pixels", DEFAULT_MIN_PIXELS),
            "max_pixels": self.max_pixels or found.get("max_pixels", DEFAULT_MAX_PIXELS),
            "patch_size": self.patch_size or found.get("patch_size", DEFAULT_PATCH_SIZE),
            "merge_size": self.merge_size or found.get("merge_size", DEFAULT_MERGE_SIZE),
        }
        return tokenizer, limits

    def text_tokens(self, tokenizer: Any, prompts: list[list[dict[str, Any]] | None]) -> list[int]:
        """Tokens of each prompt's text (placeholders removed); 0 for a null or empty prompt."""
        template = self.chat_template and getattr(tokenizer, "chat_template", None)
        out: list[int] = []
        for start in range(0, len(prompts), _BATCH):
            chunk = [
                [
                    {
                        "role": m["role"] or "user",
                        "content": (m["content"] or "").replace(IMAGE_PLACEHOLDER, ""),
                    }
                    for m in p or []
                ]
                for p in prompts[start : start + _BATCH]
            ]
            if template:
                full = [c for c in chunk if c]
                rendered = iter(
                    tokenizer.apply_chat_template(full, tokenize=False, add_generation_prompt=True)
                    if full
                    else []
                )
                counts = token_counts(tokenizer, [next(rendered) if c else "" for c in chunk])
            else:
                lengths = iter(token_counts(tokenizer, [m["content"] for c in chunk for m in c]))
                counts = [sum(next(lengths) for _ in c) for c in chunk]
            out.extend(counts)
        return out

    def _text_per_row(self, tokenizer: Any, rows: pl.DataFrame) -> pl.Series:
        """Text tokens of each row's prompt; each distinct prompt is rendered and tokenized once."""
        message = pl.element().struct
        key = (
            pl.col("prompt")
            .list.eval(message.field("role").fill_null("") + "\x01" + message.field("content").fill_null(""))
            .list.join("\x00")
            .fill_null("")
            .alias("key")
        )
        keys = rows.select(key, pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"))
        first = keys.group_by("key", maintain_order=True).agg(pl.col("_i").first())
        prompts = rows["prompt"].gather(first["_i"]).to_list()
        counts = first.select("key", pl.Series("text", self.text_tokens(tokenizer, prompts), dtype=pl.Int64))
        return keys.join(counts, on="key", how="left", maintain_order="left")["text"]

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        tokenizer, limits = self._load(ctx)
        factor = limits["patch_size"] * limits["merge_size"]
        # Image tokens per distinct (width, height): sizes repeat, smart_resize runs once each.
        images = (
            rows.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), "image_sizes")
            .explode("image_sizes")
            .filter(pl.col("image_sizes").is_not_null())
            .unnest("image_sizes")
        )
        sizes = images.select("width", "height").unique()
        tokens = [
            image_tokens(
                w, h, factor=factor, min_pixels=limits["min_pixels"], max_pixels=limits["max_pixels"]
            )
            for w, h in sizes.iter_rows()
        ]
        per_size = sizes.with_columns(pl.Series("tokens", tokens, dtype=pl.Int64))
        per_row = (
            images.join(per_size, on=["width", "height"], how="left", nulls_equal=True)
            .group_by("_i")
            .agg(
                (pl.col("tokens").fill_null(0) + self.image_marker_tokens).sum().alias("image"),
                pl.col("tokens").is_null().any().alias("bad"),
            )
        )
        text = self._text_per_row(tokenizer, rows)
        counts = (
            pl.DataFrame({"_i": pl.int_range(rows.height, dtype=pl.UInt32, eager=True), "text": text})
            .join(per_row, on="_i", how="left")
            .sort("_i")
            .with_columns(pl.col("image").fill_null(0), pl.col("bad").fill_null(False))
            .with_columns((pl.col("text") + pl.col("image")).alias("total"))
        )
        detail = counts.select(
            pl.when("bad")
            .then(pl.lit("an image size the processor cannot resize (a side <= 0, aspect over 200)"))
            .when(pl.col("total") > self.max_tokens)
            .then(pl.format("{} tokens (text {} + images {})", "total", "text", "image"))
            .alias("detail")
        ).to_series()
        return Verdict(detail.is_not_null(), detail=detail, facts={"limits": limits})


def image_tokens(
    width: int | None, height: int | None, *, factor: int, min_pixels: int, max_pixels: int
) -> int | None:
    """Tokens a Qwen2-VL-family processor makes of a width × height image (None: it cannot resize it)."""
    if not width or not height or width <= 0 or height <= 0:
        return None
    try:
        h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError:
        return None
    return (h // factor) * (w // factor)
