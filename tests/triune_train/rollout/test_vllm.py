import importlib.util
import sys

import pytest
import torch

from tests.triune_train._model_testkit import make_sample, prompt_of
from triune_train.rollout.base import RolloutError, SamplingParams
from triune_train.rollout.vllm import collapse_runs

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_module_imports_without_vllm() -> None:
    assert "triune_train.rollout.vllm" in sys.modules
    if not HAS_VLLM:
        assert "vllm" not in sys.modules


@pytest.mark.parametrize(
    ("ids", "expected"),
    [([1, 2, 3], [1, 2, 3]), ([9, 9, 9], [9]), ([1, 9, 9, 2, 9, 3, 9, 9], [1, 9, 2, 9, 3, 9]), ([], [])],
)
def test_collapse_runs(ids: list[int], expected: list[int]) -> None:
    assert collapse_runs(torch.tensor(ids, dtype=torch.long), 9) == expected


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed")
def test_missing_vllm_is_a_clear_error(tiny_policy) -> None:
    from triune_train.rollout.vllm import VLLMEngine

    with pytest.raises(RolloutError, match=r"needs vLLM and a CUDA GPU: pip install 'triune\[gpu\]'"):
        VLLMEngine(tiny_policy("qwen2_5_vl"))


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_VLLM and torch.cuda.is_available()), reason="needs vllm and a CUDA GPU")
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_vllm_engine_matches_the_hf_engine(tiny_policy, family: str) -> None:
    from triune_train.logprobs import completion_logprobs
    from triune_train.rollout.hf import HFEngine
    from triune_train.rollout.vllm import VLLMEngine

    policy = tiny_policy(family)
    policy.model.to("cuda")
    samples = [
        make_sample("a", images=[("red", (320, 240))]),
        make_sample("b", text="<image>Colour?", images=[("blue", (60, 200))]),
    ]
    prompts = [prompt_of(s, policy) for s in samples]
    engine = VLLMEngine(
        policy, dtype="float32", gpu_memory_utilization=0.2, enforce_eager=True, return_logprobs=True
    )
    greedy = SamplingParams(n=2, max_new_tokens=12, greedy=True)
    ours = engine.generate(prompts, greedy)
    theirs = HFEngine(policy).generate(prompts, greedy)
    assert [r.prompt_index for r in ours] == [0, 0, 1, 1]
    assert [r.completion_ids.tolist() for r in ours] == [r.completion_ids.tolist() for r in theirs]
    sampled = engine.generate(prompts, SamplingParams(n=4, max_new_tokens=12, seed=1))
    assert all(r.neutralized == 0 for r in sampled)
    with torch.no_grad():
        logp, _, _ = completion_logprobs(
            policy.model, prompts, sampled, micro_batch_size=8, with_entropy=False
        )
    for b, r in enumerate(sampled):
        assert r.engine_logprobs is not None
        assert torch.allclose(logp[b, : r.num_tokens].cpu(), r.engine_logprobs, atol=1e-3)
    # new weights reach vLLM
    with torch.no_grad():
        policy.model.lm_head.weight.add_(torch.randn_like(policy.model.lm_head.weight))
    engine.sync_weights(policy.model)
    changed = engine.generate(prompts, greedy)
    assert [r.completion_ids.tolist() for r in changed] == [
        r.completion_ids.tolist() for r in HFEngine(policy).generate(prompts, greedy)
    ]
