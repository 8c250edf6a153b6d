"""Rollouts with transformers `generate` (CPU or GPU), behind the `Engine` interface.

The prompts' own tensors are batched with left padding (`triune_train.prompts.batch_inputs`), so
generation sees exactly what log-prob recomputation will see. Two details keep the samples true
to the policy:

- a checkpoint's ``generation_config.json`` may carry sampling defaults (Qwen2.5-VL-Instruct ships
  ``repetition_penalty 1.05, top_k 1, top_p 0.001``) that transformers silently merges into any
  call; during our call the model's generation config is replaced by a neutral one, so only
  `SamplingParams` shape the distribution and the GRPO ratio compares like with like;
- vision placeholder tokens are suppressed at every step (their logits set to −inf) and, as a
  second line of defence, replaced after sampling (`base.finish_rollout`), counted per rollout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from triune_train.prompts import batch_inputs
from triune_train.rollout.base import PromptInputs, Rollout, SamplingParams, finish_rollout

if TYPE_CHECKING:
    from triune_train.models.loading import Policy


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run with the torch RNG seeded, restoring the caller's RNG state afterwards (no-op for None)."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _neutral_generation_config(model: Any) -> Iterator[None]:
    from transformers import GenerationConfig

    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


class HFEngine:
    """`Engine` over ``model.generate``.

    max_batch_size    rows (prompt × sample) per `generate` call; None: all at once
    return_logprobs   fill `Rollout.engine_logprobs` (keeps [rows, V] logits per step: tests, debugging)
    suppress_vision   ban vision placeholder tokens while sampling (turn off only to test the guard)
    """

    def __init__(
        self,
        policy: Policy,
        *,
        max_batch_size: int | None = None,
        return_logprobs: bool = False,
        suppress_vision: bool = True,
    ) -> None:
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.policy = policy
        self.model = policy.model
        self.max_batch_size = max_batch_size
        self.return_logprobs = return_logprobs
        self.suppress_vision = suppress_vision

    def sync_weights(self, model: nn.Module) -> None:
        """Sample from ``model`` from now on (the policy being trained: usually the same object)."""
        self.model = model

    def _generation_config(self, params: SamplingParams) -> Any:
        from transformers import GenerationConfig

        policy = self.policy
        common: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens,
            eos_token_id=list(policy.eos_token_ids),
            pad_token_id=policy.pad_token_id,
            suppress_tokens=list(policy.vision_token_ids) if self.suppress_vision else None,
            output_logits=self.return_logprobs,
            return_dict_in_generate=True,
            num_beams=1,
        )
        if params.greedy:
            return GenerationConfig(do_sample=False, **common)
        return GenerationConfig(
            do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k, **common
        )

    def generate(self, prompts: Sequence[PromptInputs], params: SamplingParams) -> list[Rollout]:
        """``params.n`` rollouts per prompt, prompt-major (rollout ``i*n + k`` is sample k of prompt i)."""
        rows = [i for i in range(len(prompts)) for _ in range(params.n)]
        step = self.max_batch_size or max(len(rows), 1)
        config = self._generation_config(params)
        temperature = 1.0 if params.greedy else params.temperature
        model = self.model
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        rollouts: list[Rollout] = []
        try:
            with torch.no_grad(), seeded(params.seed, device), _neutral_generation_config(model):
                for start in range(0, len(rows), step):
                    chunk = rows[start : start + step]
                    rollouts += self._generate_chunk(
                        model, [prompts[i] for i in chunk], chunk, config, temperature
                    )
        finally:
            model.train(was_training)
        return rollouts

    def _generate_chunk(
        self,
        model: nn.Module,
        prompts: list[PromptInputs],
        indices: list[int],
        config: Any,
        temperature: float,
    ) -> list[Rollout]:
        policy = self.policy
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch_inputs(prompts, pad_token_id=policy.pad_token_id).items()}
        out = model.generate(**batch, generation_config=config)  # type: ignore[operator]
        width = batch["input_ids"].shape[1]
        generated = out.sequences[:, width:]
        logps = None
        if self.return_logprobs:  # raw logits, before suppression and top-p/top-k: the policy itself
            logits = torch.stack(out.logits, dim=1).float() / temperature  # [rows, G, V]
            logps = torch.log_softmax(logits, -1).gather(-1, generated.unsqueeze(-1)).squeeze(-1)
        decode = self._decode
        return [
            finish_rollout(
                index,
                generated[row],
                eos_ids=policy.eos_token_ids,
                banned_ids=policy.vision_token_ids,
                neutral_id=policy.neutral_token_id,
                decode=decode,
                engine_logprobs=None if logps is None else logps[row],
            )
            for row, index in enumerate(indices)
        ]

    def _decode(self, ids: list[int]) -> str:
        return str(self.policy.tokenizer.decode(ids, skip_special_tokens=True))
