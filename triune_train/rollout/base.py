"""The rollout interface: what a prompt is, how to sample, what comes back, and the engine protocol.

One prompt is ONE processor call (`triune_train.prompts.build_prompt`): its token ids and pixel
values are the truth every later stage reuses, so generation and log-prob recomputation see exactly
the same inputs. Tensors inside a `PromptInputs` are unbatched (no leading batch dimension);
engines and `triune_train.logprobs` batch them with left padding.

Engines (`HFEngine` over transformers `generate`, `VLLMEngine` on GPU) return `n` rollouts per
prompt, prompt-major: rollouts ``[i * n, (i + 1) * n)`` belong to prompt ``i``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch

from triune_data.errors import TriuneError
from triune_data.types import Sample

if TYPE_CHECKING:
    from torch import nn


class RolloutError(TriuneError):
    """Bad sampling settings or inputs an engine cannot run."""


@dataclass
class PromptInputs:
    """One prompt, as the model's processor produced it.

    Shapes (P = prompt tokens, N = image patches, I = images):
      input_ids          [P] long, no padding
      mm                 the processor's other outputs for this prompt, unbatched:
                         ``pixel_values`` [N, D], ``image_grid_thw`` [I, 3] and, with transformers 5,
                         ``mm_token_type_ids`` [P] (1 on image placeholder tokens); no ``attention_mask``
      model_input_sizes  (width, height) of each image as the model saw it: image_grid_thw × patch size
    """

    sample: Sample
    text: str
    input_ids: torch.Tensor
    mm: dict[str, torch.Tensor] = field(default_factory=dict)
    model_input_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class Skip:
    """A sample that cannot become a prompt, with a named reason (counted per data_source).

    Reasons: ``prompt_too_long`` (image tokens or text over the prompt budget; never truncated),
    ``image_count_mismatch``, ``image_unreadable``, ``placeholder_in_text``.
    """

    reason: str
    detail: str


@dataclass
class SamplingParams:
    """How to sample. ``greedy`` ignores temperature/top_p/top_k; ``top_k = 0`` means no top-k cut.

    ``seed`` makes a call deterministic (same prompts, params and weights → same rollouts on one
    device and thread count); ``None`` continues from the global torch generator.
    """

    n: int
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.n < 1:
            problems.append(f"n must be >= 1, got {self.n}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.greedy and not self.temperature > 0:
            problems.append(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0, got {self.top_k}")
        if problems:
            raise RolloutError("bad sampling params: " + "; ".join(problems))


@dataclass
class Rollout:
    """One completion of one prompt.

    completion_ids  [C] long: the sampled tokens up to and including EOS (no padding after it),
                    with any vision placeholder token already replaced (``neutralized`` counts them)
    text            decoded with special tokens skipped
    truncated       True when it hit ``max_new_tokens`` without an EOS
    engine_logprobs [C] the engine's own log-probs of the sampled tokens under the unmodified policy
                    at the sampling temperature (before top-p/top-k and the vision-token ban),
                    for engine-vs-trainer mismatch checks; None unless requested
    """

    prompt_index: int
    completion_ids: torch.Tensor
    text: str
    truncated: bool
    neutralized: int = 0
    engine_logprobs: torch.Tensor | None = None  # [C] float32, only when the engine was asked for them

    @property
    def num_tokens(self) -> int:
        return int(self.completion_ids.shape[0])


class Engine(Protocol):
    """A rollout engine: ``params.n`` rollouts per prompt, prompt-major."""

    def generate(self, prompts: Sequence[PromptInputs], params: SamplingParams) -> list[Rollout]: ...

    def sync_weights(self, model: nn.Module) -> None:
        """Make the engine sample from ``model``'s current weights (HF: nothing to do)."""
        ...


def neutralize(
    completion_ids: torch.Tensor, banned_ids: Sequence[int], neutral_id: int
) -> tuple[torch.Tensor, int]:
    """Replace banned (vision placeholder) tokens by ``neutral_id``; returns (new ids, how many).

    The length stays the same, as in V-Triune, so positions and masks are unchanged.

    >>> neutralize(torch.tensor([5, 9, 7, 9]), [9], 0)
    (tensor([5, 0, 7, 0]), 2)
    """
    hits = torch.isin(completion_ids, torch.tensor(list(banned_ids), dtype=completion_ids.dtype))
    count = int(hits.sum())
    if not count:
        return completion_ids, 0
    return completion_ids.masked_fill(hits, neutral_id), count


def finish_rollout(
    prompt_index: int,
    generated: torch.Tensor,
    *,
    eos_ids: Sequence[int],
    banned_ids: Sequence[int],
    neutral_id: int,
    decode: Callable[[list[int]], str],
    engine_logprobs: torch.Tensor | None = None,
) -> Rollout:
    """A `Rollout` from an engine's raw tokens [G]: cut after the first EOS (kept), flag truncation
    (no EOS), neutralise vision tokens, decode. Shared by every engine so they agree exactly."""
    generated = generated.cpu()
    is_eos = torch.isin(generated, torch.tensor(list(eos_ids), dtype=generated.dtype))
    stops = torch.nonzero(is_eos)
    truncated = stops.numel() == 0
    length = int(generated.shape[0]) if truncated else int(stops[0, 0]) + 1
    ids, count = neutralize(generated[:length], banned_ids, neutral_id)
    logp = None if engine_logprobs is None else engine_logprobs[:length].float().cpu()
    return Rollout(
        prompt_index=prompt_index,
        completion_ids=ids,
        text=decode(ids.tolist()),
        truncated=truncated,
        neutralized=count,
        engine_logprobs=logp,
    )
