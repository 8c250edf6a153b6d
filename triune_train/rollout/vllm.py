"""Rollouts with vLLM (GPU only), behind the same `Engine` interface as `HFEngine`.

vLLM is imported when an engine is built, never at module import, so this module loads anywhere.
Install the GPU extra (``pip install 'triune[gpu]'``, which keeps the torch pin: vllm 0.32).

The engine runs in the training process (colocated), samples with the same rules as `HFEngine`
(vision placeholder tokens banned while sampling and neutralised afterwards, EOS kept, truncation
flagged, n samples per prompt, prompt-major), and takes new weights with `sync_weights`. It sends
the prompt's own token ids with each image placeholder run collapsed to one token, and the decoded
images; vLLM re-expands them with the checkpoint's processor settings, and the expanded prompt
length is checked against ours, so the two never disagree on what the model saw. Log-probs for the
update are always recomputed from `PromptInputs` (`triune_train.logprobs`), never taken from vLLM.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from triune_train.prompts import decode_images
from triune_train.rollout.base import PromptInputs, Rollout, RolloutError, SamplingParams, finish_rollout

if TYPE_CHECKING:
    from triune_train.models.loading import Policy

BANNED_LOGIT_BIAS = -100.0  # vLLM clamps logit_bias to [-100, 100]: probability ~e^-100 relative


def collapse_runs(ids: torch.Tensor, token_id: int) -> list[int]:
    """Token ids with every run of ``token_id`` shortened to one token (the un-expanded prompt).

    >>> collapse_runs(torch.tensor([1, 9, 9, 9, 2, 9, 9, 3]), 9)
    [1, 9, 2, 9, 3]
    """
    out: list[int] = []
    for t in ids.tolist():
        if t == token_id and out and out[-1] == token_id:
            continue
        out.append(t)
    return out


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise RolloutError(
            "the vllm rollout engine needs vLLM and a CUDA GPU: pip install 'triune[gpu]' (or use engine: hf)"
        ) from e
    return vllm


class VLLMEngine:
    """`Engine` over a colocated ``vllm.LLM`` loaded from the policy's folder.

    gpu_memory_utilization  share of GPU memory vLLM may take (the trainer needs the rest)
    return_logprobs         fill `Rollout.engine_logprobs` (vLLM's log-prob of each sampled token)
    llm_options             passed to ``vllm.LLM`` (max_model_len, enforce_eager, tensor_parallel_size, ...)
    """

    def __init__(
        self,
        policy: Policy,
        *,
        gpu_memory_utilization: float = 0.5,
        dtype: str = "bfloat16",
        return_logprobs: bool = False,
        max_images_per_prompt: int = 4,
        **llm_options: Any,
    ) -> None:
        vllm = _import_vllm()
        # keep the engine core in this process, so sync_weights can reach the model
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.policy = policy
        self.return_logprobs = return_logprobs
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=policy.path,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"image": max_images_per_prompt, "video": 0},
            **llm_options,
        )

    def _sampling_params(self, params: SamplingParams) -> Any:
        policy = self.policy
        sampling = dict(temperature=0.0) if params.greedy else dict(
            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k if params.top_k > 0 else -1
        )  # fmt: skip
        return self._vllm.SamplingParams(
            n=params.n,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
            stop_token_ids=list(policy.eos_token_ids),
            logit_bias={int(t): BANNED_LOGIT_BIAS for t in policy.vision_token_ids},
            logprobs=0 if self.return_logprobs else None,
            skip_special_tokens=True,
            **sampling,
        )

    def generate(self, prompts: Sequence[PromptInputs], params: SamplingParams) -> list[Rollout]:
        """``params.n`` rollouts per prompt, prompt-major, as `HFEngine.generate`."""
        policy = self.policy
        requests = []
        for prompt in prompts:
            request: dict[str, Any] = {
                "prompt_token_ids": collapse_runs(prompt.input_ids, policy.image_token_id)
            }
            if prompt.sample.images:
                request["multi_modal_data"] = {"image": decode_images(prompt.sample)}
            requests.append(request)
        outputs = self.llm.generate(requests, self._sampling_params(params), use_tqdm=False)
        rollouts: list[Rollout] = []
        for index, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
            if len(output.prompt_token_ids) != prompt.num_tokens:
                raise RolloutError(
                    f"vLLM expanded prompt {index} to {len(output.prompt_token_ids)} tokens, the processor to "
                    f"{prompt.num_tokens}: the checkpoint's processor settings differ from the policy's"
                )
            for completion in output.outputs:
                rollouts.append(self._rollout(index, completion))
        return rollouts

    def _rollout(self, index: int, completion: Any) -> Rollout:
        policy = self.policy
        ids = list(completion.token_ids)
        if completion.finish_reason == "stop" and (not ids or ids[-1] not in policy.eos_token_ids):
            # stopped on a stop token that vLLM did not echo: keep it, as HFEngine does
            stop = (
                completion.stop_reason if isinstance(completion.stop_reason, int) else policy.eos_token_ids[0]
            )
            ids.append(stop)
        logps = None
        if self.return_logprobs and completion.logprobs is not None:
            logps = torch.tensor(
                [step[t].logprob for t, step in zip(completion.token_ids, completion.logprobs, strict=False)]
            )
            logps = torch.cat([logps, logps.new_zeros(len(ids) - len(logps))])
        return finish_rollout(
            index,
            torch.tensor(ids, dtype=torch.long),
            eos_ids=policy.eos_token_ids,
            banned_ids=policy.vision_token_ids,
            neutral_id=policy.neutral_token_id,
            decode=lambda t: str(policy.tokenizer.decode(t, skip_special_tokens=True)),
            engine_logprobs=logps,
        )

    def _runner_model(self) -> Any:
        executor = self.llm.llm_engine.model_executor
        worker = executor.driver_worker
        for path in (("worker", "model_runner", "model"), ("model_runner", "model")):
            obj = worker
            try:
                for attr in path:
                    obj = getattr(obj, attr)
                return obj
            except AttributeError:
                continue
        raise RolloutError("cannot reach vLLM's model in this process; set VLLM_ENABLE_V1_MULTIPROCESSING=0")

    def sync_weights(self, model: nn.Module) -> None:
        """Copy the trainable weights of ``model`` into vLLM (frozen ones never change)."""
        weights = [(name, p.detach()) for name, p in model.named_parameters() if p.requires_grad]
        self._runner_model().load_weights(weights)
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights
