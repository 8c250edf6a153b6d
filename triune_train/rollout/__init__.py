"""Rollout engines behind one interface (`base.Engine`): transformers `generate` now, vLLM on GPU."""

from triune_train.rollout.base import Engine, PromptInputs, Rollout, RolloutError, SamplingParams, Skip

__all__ = ["Engine", "PromptInputs", "Rollout", "RolloutError", "SamplingParams", "Skip"]
