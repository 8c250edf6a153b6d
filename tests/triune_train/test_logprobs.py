import pytest
import torch

from tests.triune_train._model_testkit import make_sample, prompt_of
from triune_train.logprobs import completion_logprobs
from triune_train.prompts import batch_inputs
from triune_train.rollout.base import PromptInputs, Rollout, RolloutError, SamplingParams, neutralize
from triune_train.rollout.hf import HFEngine

FAMILIES = ["qwen2_5_vl", "qwen3_vl"]


def prompts_for(policy) -> list[PromptInputs]:
    """Three prompts of different lengths: different image sizes, one with two images, longer text."""
    samples = [
        make_sample("a", images=[("red", (320, 240))]),
        make_sample(
            "b",
            text="Look: <image> and <image>. Which is blue?",
            images=[("blue", (64, 64)), ("red", (100, 300))],
        ),
        make_sample(
            "c",
            text="<image>\nDescribe the shape and its colour in one short sentence.",
            images=[("green", (90, 90))],
        ),
    ]
    prompts = [prompt_of(s, policy) for s in samples]
    assert len({p.num_tokens for p in prompts}) == 3
    return prompts


def dense(rollouts: list[Rollout], width: int) -> torch.Tensor:
    out = torch.zeros(len(rollouts), width)
    for b, r in enumerate(rollouts):
        assert r.engine_logprobs is not None
        out[b, : r.num_tokens] = r.engine_logprobs
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("greedy", [False, True])
def test_recomputed_logprobs_equal_generate_scores(tiny_policy, family: str, greedy: bool) -> None:
    policy = tiny_policy(family)
    prompts = prompts_for(policy)
    engine = HFEngine(policy, return_logprobs=True)
    rollouts = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=16, greedy=greedy, seed=7))
    width = max(r.num_tokens for r in rollouts)
    expected = dense(rollouts, width)  # log-softmax of generate's own logits, token by token (KV cache)
    results = []
    for micro in (1, 4, len(rollouts)):
        with torch.no_grad():
            logp, mask, entropy = completion_logprobs(
                policy.model, prompts, rollouts, micro_batch_size=micro, with_entropy=False
            )
        assert entropy is None and logp.shape == mask.shape == (6, width)
        assert torch.allclose(logp, expected, atol=1e-5, rtol=0), (logp - expected).abs().max()
        results.append(logp)
    assert torch.allclose(results[0], results[2], atol=1e-5, rtol=0)  # micro-batching changes nothing
    assert mask.tolist() == [[1.0] * r.num_tokens + [0.0] * (width - r.num_tokens) for r in rollouts]
    if greedy:  # every greedy token is the argmax of the recomputed distribution
        assert all(torch.equal(rollouts[0].completion_ids, r.completion_ids) for r in rollouts[:2])


def test_entropy_and_temperature_match_a_hand_computation(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    prompt = prompts_for(policy)[0]
    completion = torch.tensor(
        [*policy.tokenizer.encode(" red circle", add_special_tokens=False), policy.eos_token_ids[0]]
    )
    rollout = Rollout(prompt_index=0, completion_ids=completion, text="red circle", truncated=False)
    with torch.no_grad():
        logp, _, entropy = completion_logprobs(
            policy.model, [prompt], [rollout], micro_batch_size=1, with_entropy=True, temperature=0.7
        )
        batch = batch_inputs([prompt], [completion], pad_token_id=policy.pad_token_id)
        logits = policy.model(**batch).logits[0, prompt.num_tokens - 1 : -1] / 0.7
    dist = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(logp[0], dist.log_prob(completion), atol=1e-6)
    assert entropy is not None and torch.allclose(entropy[0], dist.entropy(), atol=1e-5)


def test_gradients_flow_only_when_enabled(tiny_policy) -> None:
    policy = tiny_policy("qwen3_vl")
    prompts = prompts_for(policy)
    rollouts = HFEngine(policy).generate(prompts, SamplingParams(n=1, max_new_tokens=4, seed=0))
    logp, mask, entropy = completion_logprobs(
        policy.model, prompts, rollouts, micro_batch_size=2, with_entropy=True
    )
    assert logp.requires_grad and entropy is not None and entropy.requires_grad
    ((logp * mask).sum() + entropy.sum()).backward()
    assert policy.model.lm_head.weight.grad is not None and policy.model.lm_head.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not completion_logprobs(
            policy.model, prompts, rollouts, micro_batch_size=2, with_entropy=False
        )[0].requires_grad


@pytest.mark.parametrize("family", FAMILIES)
def test_a_stray_image_pad_crashes_the_forward_and_the_guard_fixes_it(tiny_policy, family: str) -> None:
    policy = tiny_policy(family)
    prompt = prompts_for(policy)[0]
    space = policy.neutral_token_id
    stray = torch.tensor([space, policy.image_token_id, space])
    # without the guard: the model finds one more image token than image features
    with pytest.raises(ValueError, match="Image features and image tokens do not match"), torch.no_grad():
        policy.model(**batch_inputs([prompt], [stray], pad_token_id=policy.pad_token_id))
    bad = Rollout(prompt_index=0, completion_ids=stray, text="", truncated=True)
    with pytest.raises(RolloutError, match="neutralise them first"):
        completion_logprobs(policy.model, [prompt], [bad], micro_batch_size=1, with_entropy=False)
    # with it: the token becomes a space, counted, and the forward pass runs
    fixed, count = neutralize(stray, policy.vision_token_ids, policy.neutral_token_id)
    assert count == 1 and fixed.tolist() == [space] * 3
    good = Rollout(prompt_index=0, completion_ids=fixed, text="   ", truncated=True, neutralized=count)
    with torch.no_grad():
        logp, mask, _ = completion_logprobs(
            policy.model, [prompt], [good], micro_batch_size=1, with_entropy=False
        )
    assert mask.sum() == 3 and torch.isfinite(logp).all()


def test_edge_cases(tiny_policy) -> None:
    policy = tiny_policy("qwen2_5_vl")
    prompt = prompts_for(policy)[0]
    logp, mask, entropy = completion_logprobs(
        policy.model, [prompt], [], micro_batch_size=2, with_entropy=True
    )
    assert logp.shape == mask.shape == (0, 0) and entropy is not None and entropy.shape == (0, 0)
    empty = Rollout(prompt_index=0, completion_ids=torch.zeros(0, dtype=torch.long), text="", truncated=False)
    one = Rollout(prompt_index=0, completion_ids=torch.tensor([5, 6]), text="", truncated=False)
    with torch.no_grad():
        logp, mask, _ = completion_logprobs(
            policy.model, [prompt], [empty, one], micro_batch_size=1, with_entropy=False
        )
    assert mask.tolist() == [[0.0, 0.0], [1.0, 1.0]] and logp[0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="micro_batch_size"):
        completion_logprobs(policy.model, [prompt], [one], micro_batch_size=0, with_entropy=False)
    with pytest.raises(RolloutError, match="points at prompt 3 of 1"):
        completion_logprobs(
            policy.model,
            [prompt],
            [Rollout(3, torch.tensor([5]), "", False)],
            micro_batch_size=1,
            with_entropy=False,
        )
