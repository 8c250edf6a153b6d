import pytest
import torch

from tests.triune_train._model_testkit import make_sample, prompt_of
from triune_train.logprobs import completion_logprobs
from triune_train.rollout.base import PromptInputs, SamplingParams
from triune_train.rollout.hf import HFEngine


def two_prompts(policy) -> list[PromptInputs]:
    samples = [
        make_sample("a", images=[("red", (112, 112))]),
        make_sample("b", text="<image>Colour?", images=[("blue", (60, 200))]),
    ]
    return [prompt_of(s, policy) for s in samples]


def force_token(model, token_id: int, bonus: float = 50.0):
    """Make `token_id` the policy's favourite next token (a hook on the LM head)."""

    def hook(_module, _inputs, logits):
        logits = logits.clone()
        logits[..., token_id] += bonus
        return logits

    return model.lm_head.register_forward_hook(hook)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_n_per_prompt_prompt_major_and_seeded(tiny_policy, family: str) -> None:
    policy = tiny_policy(family)
    prompts = two_prompts(policy)
    engine = HFEngine(policy)
    params = SamplingParams(n=3, max_new_tokens=8, seed=11)
    state = torch.get_rng_state()
    first = engine.generate(prompts, params)
    assert torch.equal(torch.get_rng_state(), state)  # a seeded call leaves the caller's RNG alone
    again = engine.generate(prompts, params)
    other = engine.generate(prompts, SamplingParams(n=3, max_new_tokens=8, seed=12))
    assert [r.prompt_index for r in first] == [0, 0, 0, 1, 1, 1]
    assert [r.completion_ids.tolist() for r in first] == [r.completion_ids.tolist() for r in again]
    assert [r.completion_ids.tolist() for r in first] != [r.completion_ids.tolist() for r in other]
    assert len({tuple(r.completion_ids.tolist()) for r in first[:3]}) > 1  # samples of one prompt differ
    for r in first:
        assert r.num_tokens <= 8 and r.truncated == (
            r.num_tokens == 8 and r.completion_ids[-1] not in policy.eos_token_ids
        )
        assert r.text == policy.tokenizer.decode(r.completion_ids, skip_special_tokens=True)
        assert r.neutralized == 0 and r.engine_logprobs is None


def test_greedy_is_independent_of_batching(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    prompts = two_prompts(policy)
    params = SamplingParams(n=2, max_new_tokens=10, greedy=True)
    together = HFEngine(policy).generate(prompts, params)
    one_by_one = HFEngine(policy, max_batch_size=1).generate(prompts, params)
    assert [r.completion_ids.tolist() for r in together] == [r.completion_ids.tolist() for r in one_by_one]
    assert together[0].completion_ids.tolist() == together[1].completion_ids.tolist()


def test_eos_ends_a_completion_and_is_kept(tiny_policy) -> None:
    policy = tiny_policy("qwen3_vl")
    im_end = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    handle = force_token(policy.model, im_end)
    try:
        rollouts = HFEngine(policy).generate(
            two_prompts(policy), SamplingParams(n=2, max_new_tokens=8, seed=0)
        )
    finally:
        handle.remove()
    assert [r.completion_ids.tolist() for r in rollouts] == [[im_end]] * 4
    assert not any(r.truncated for r in rollouts) and all(r.text == "" for r in rollouts)


@pytest.mark.parametrize("suppress", [True, False])
def test_vision_tokens_are_banned_and_neutralised(tiny_policy, suppress: bool) -> None:
    policy = tiny_policy("qwen2_5_vl")
    prompts = two_prompts(policy)
    handle = force_token(policy.model, policy.image_token_id)  # a policy that loves <|image_pad|>
    try:
        engine = HFEngine(policy, suppress_vision=suppress)
        rollouts = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=6, seed=0))
        banned = torch.tensor(policy.vision_token_ids)
        assert not any(torch.isin(r.completion_ids, banned).any() for r in rollouts)
        if suppress:  # banned at sampling: never sampled
            assert all(r.neutralized == 0 for r in rollouts)
        else:  # sampled, then replaced by a space before anything else sees them
            assert all(r.neutralized == 6 for r in rollouts)
            assert all(r.completion_ids.tolist() == [policy.neutral_token_id] * 6 for r in rollouts)
        with torch.no_grad():  # the guard's point: log-probs can be recomputed
            logp, mask, _ = completion_logprobs(
                policy.model, prompts, rollouts, micro_batch_size=4, with_entropy=False
            )
        assert torch.isfinite(logp).all() and mask.sum() == sum(r.num_tokens for r in rollouts)
    finally:
        handle.remove()


def test_checkpoint_generation_defaults_do_not_leak(tiny_policy) -> None:
    # Qwen2.5-VL-Instruct's generation_config.json sets repetition_penalty, top_k and top_p; a call
    # must sample from the policy as SamplingParams say, whatever the checkpoint carries.
    policy = tiny_policy("qwen2_5_vl")
    prompts = two_prompts(policy)
    params = SamplingParams(n=2, max_new_tokens=12, seed=3)
    clean = HFEngine(policy, return_logprobs=True).generate(prompts, params)
    config = policy.model.generation_config
    config.repetition_penalty, config.top_k, config.top_p, config.temperature = 3.0, 1, 0.001, 0.1
    config.no_repeat_ngram_size = 1
    dirty = HFEngine(policy, return_logprobs=True).generate(prompts, params)
    assert [r.completion_ids.tolist() for r in clean] == [r.completion_ids.tolist() for r in dirty]
    assert policy.model.generation_config is config and config.repetition_penalty == 3.0  # restored


def test_train_mode_and_model_swap(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    engine = HFEngine(policy)
    policy.model.train()
    engine.generate(two_prompts(policy), SamplingParams(n=1, max_new_tokens=2, greedy=True))
    assert policy.model.training  # restored after generating in eval mode
    other = tiny_policy("qwen2_5_vl").model
    engine.sync_weights(other)
    assert engine.model is other
    with pytest.raises(ValueError, match="max_batch_size"):
        HFEngine(policy, max_batch_size=0)


@pytest.mark.parametrize("cut", [{"top_k": 1}, {"top_p": 1e-6}, {"temperature": 1e-4}])
def test_top_k_top_p_and_temperature_reach_the_sampler(tiny_policy, cut: dict) -> None:
    # each of these leaves only the most likely token, so sampling must reproduce greedy decoding
    policy = tiny_policy("qwen3_vl")
    prompts = two_prompts(policy)
    engine = HFEngine(policy)
    greedy = engine.generate(prompts, SamplingParams(n=1, max_new_tokens=10, greedy=True))
    narrow = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=10, seed=5, **cut))
    wide = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=10, seed=5))
    expected = [greedy[0].completion_ids.tolist()] * 2 + [greedy[1].completion_ids.tolist()] * 2
    assert [r.completion_ids.tolist() for r in narrow] == expected
    assert [r.completion_ids.tolist() for r in wide] != expected
