"""GRPO advantages and losses against numbers computed by hand (the arithmetic is in each test)."""

from __future__ import annotations

import math

import pytest
import torch

from triune_train.grpo import (
    AGGREGATIONS,
    advantage_stats,
    group_advantages,
    kl_penalty,
    loss_normalizers,
    merge_stats,
    policy_loss,
)

torch.set_num_threads(1)

T = torch.tensor


def close(actual: torch.Tensor, expected: list, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual.double(), T(expected, dtype=torch.float64), atol=tol, rtol=0)


# ----------------------------------------------------------------------------------------------
# group_advantages

# rewards [1, 0 | 3, 1, 2] in groups 0 and 1:
#   group 0: mean 0.5, unbiased std sqrt((0.25 + 0.25) / 1) = 0.70710678 → ±0.5 / 0.70710678 = ±0.70710678
#   group 1: mean 2, unbiased std sqrt((1 + 1 + 0) / 2) = 1 → [1, −1, 0]
#   batch: mean 1.4, unbiased var (0.16 + 1.96 + 2.56 + 0.16 + 0.36) / 4 = 1.3, std 1.14017543;
#          centred [0.5, −0.5, 1, −1, 0] / 1.14017543
REWARDS = [1.0, 0.0, 3.0, 1.0, 2.0]
GROUPS = [0, 0, 1, 1, 1]
B_STD = math.sqrt(1.3)


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("group", [0.70710678, -0.70710678, 1.0, -1.0, 0.0]),
        ("batch", [0.5 / B_STD, -0.5 / B_STD, 1 / B_STD, -1 / B_STD, 0.0]),
        ("none", [0.5, -0.5, 1.0, -1.0, 0.0]),
    ],
)
def test_group_advantages_scales(scale, expected):
    adv = group_advantages(T(REWARDS), T(GROUPS), scale=scale, eps=0.0)
    close(adv, expected)


def test_group_advantages_eps_and_dtype():
    # One success in four: mean 0.25, unbiased std sqrt((0.5625 + 3 · 0.0625) / 3) = 0.5;
    # with eps 1e-6 the success gets 0.75 / 0.500001.
    adv = group_advantages(T([1.0, 0.0, 0.0, 0.0]), T([7, 7, 7, 7]), T([True] * 4))
    assert adv.dtype == torch.float32
    close(adv, [0.75 / 0.500001, -0.25 / 0.500001, -0.25 / 0.500001, -0.25 / 0.500001])


def test_group_ids_are_arbitrary_and_rows_unordered():
    # Same rewards as REWARDS, rows shuffled and group ids 42 / −3: the same advantages per row.
    adv = group_advantages(T([2.0, 1.0, 0.0, 3.0, 1.0]), T([-3, 42, 42, -3, -3]), eps=0.0)
    close(adv, [0.0, 0.70710678, -0.70710678, 1.0, -1.0])


def test_invalid_rows_are_excluded_and_get_zero():
    # Row 2 timed out (reward 99 must not count), row 4's reward is NaN (also excluded):
    # valid rewards [1, 0, 0.5]: mean 0.5, unbiased std sqrt((0.25 + 0.25 + 0) / 2) = 0.5 → [1, −1, 0].
    rewards = T([1.0, 0.0, 99.0, 0.5, float("nan")])
    valid = T([True, True, False, True, True])
    adv = group_advantages(rewards, T([0] * 5), valid, eps=0.0)
    close(adv, [1.0, -1.0, 0.0, 0.0, 0.0])
    stats = advantage_stats(rewards, T([0] * 5), valid, adv)
    assert stats["masked"] == 2.0
    assert stats["zero_variance_groups"] == 0.0


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_groups_of_one_and_zero_variance_get_zero(scale):
    # group 5: one rollout (no baseline); group 6: two valid rows of reward 0.3 and one invalid row;
    # group 8: two valid rows of equal reward. All 0, never NaN, for every scale.
    rewards = T([0.7, 0.3, 0.3, 1.0, 0.5, 0.5])
    group = T([5, 6, 6, 6, 8, 8])
    valid = T([True, True, True, False, True, True])
    adv = group_advantages(rewards, group, valid, scale=scale)
    close(adv, [0.0] * 6)
    stats = advantage_stats(rewards, group, valid, adv)
    assert (stats["groups"], stats["zero_variance_groups"], stats["singleton_groups"]) == (3.0, 3.0, 1.0)


def test_all_invalid_gives_zeros():
    adv = group_advantages(T([1.0, 0.0]), T([0, 0]), T([False, False]))
    close(adv, [0.0, 0.0])


# Per-task normalisation. Task 0 is binary (math), one group [1, 0, 1, 0]; task 1 is continuous
# (IoU): groups [0.6, 0.5] and [0.9, 0.8].
#   task 0: mean 0.5, unbiased std sqrt(4 · 0.25 / 3) = 0.57735027 → standardised ±0.8660254;
#           the group mean of those is 0 → advantages ±0.8660254 (scale none).
#   task 1: mean 0.7, deviations [−0.1, −0.2, 0.2, 0.1], unbiased std sqrt(0.1 / 3) = 0.18257419;
#           group means 0.55 and 0.85 → (±0.05) / 0.18257419 = ±0.27386128.
#   Without it (scale none) the math rows get ±0.5 and the IoU rows ±0.05: ten times less signal.
TASK_REWARDS = [1.0, 0.0, 1.0, 0.0, 0.6, 0.5, 0.9, 0.8]
TASK_GROUPS = [0, 0, 0, 0, 1, 1, 2, 2]
TASK_IDS = [0, 0, 0, 0, 1, 1, 1, 1]


def test_per_task_normalisation_by_hand():
    adv = group_advantages(T(TASK_REWARDS), T(TASK_GROUPS), scale="none", normalize_by=T(TASK_IDS), eps=0.0)
    m, d = 0.8660254, 0.27386128
    close(adv, [m, -m, m, -m, d, -d, d, -d])
    plain = group_advantages(T(TASK_REWARDS), T(TASK_GROUPS), scale="none", eps=0.0)
    close(plain, [0.5, -0.5, 0.5, -0.5, 0.05, -0.05, 0.05, -0.05])


def test_per_task_normalisation_is_a_no_op_under_group_scaling():
    # A group lies inside one task, and the group std is invariant to a per-task affine map.
    args = (T(TASK_REWARDS), T(TASK_GROUPS))
    with_tasks = group_advantages(*args, scale="group", normalize_by=T(TASK_IDS), eps=0.0)
    close(with_tasks, group_advantages(*args, scale="group", eps=0.0).tolist(), tol=1e-5)


def test_per_task_normalisation_skips_invalid_rows():
    # The invalid row (reward 50) must not move task 1's mean or std: same as without it.
    rewards = T([*TASK_REWARDS, 50.0])
    adv = group_advantages(
        rewards,
        T([*TASK_GROUPS, 2]),
        T([True] * 8 + [False]),
        scale="none",
        normalize_by=T([*TASK_IDS, 1]),
        eps=0.0,
    )
    m, d = 0.8660254, 0.27386128
    close(adv, [m, -m, m, -m, d, -d, d, -d, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rewards": T([1.0, 2.0]), "group": T([0])}, "group must have shape"),
        ({"rewards": T([1.0]), "group": T([0]), "valid": T([True, False])}, "valid must have shape"),
        ({"rewards": T([1.0]), "group": T([0]), "scale": "task"}, "scale must be one of"),
        ({"rewards": T([1.0]), "group": T([0]), "normalize_by": T([0, 1])}, "normalize_by must have shape"),
    ],
)
def test_group_advantages_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        group_advantages(**kwargs)


# ----------------------------------------------------------------------------------------------
# policy_loss
#
# Two sequences, ratios set directly (old log-prob 0, log-prob log r), clip range [0.8, 1.28]:
#   seq 0: A = +1, ratios [1.0, 1.5, 0.5], 3 tokens:
#          per-token max(−A·r, −A·clip(r)) = [−1, max(−1.5, −1.28) = −1.28, max(−0.5, −0.8) = −0.5]
#   seq 1: A = −2, ratios [0.5, 1.5, pad], 2 tokens:
#          [max(1.0, 1.6) = 1.6, max(3.0, 2.56) = 3.0]
#   Σ = −2.78 + 4.6 = 1.82 over 5 tokens.
#   token-mean 1.82 / 5 = 0.364; seq-mean-token-mean (−2.78/3 + 4.6/2) / 2 = 0.68666667;
#   seq-mean-token-sum-norm with max_len 4: 1.82 / (2 · 4) = 0.2275.
# Gradient w.r.t. log-prob: −A·r / N on unclipped tokens, 0 on clipped ones.


def two_sequences(pad: float = float("nan")):
    ratios = T([[1.0, 1.5, 0.5], [0.5, 1.5, 1.0]])
    logp = ratios.log()
    logp[1, 2] = pad  # padding may hold anything
    logp.requires_grad_(True)
    mask = T([[1, 1, 1], [1, 1, 0]])
    return logp, torch.zeros(2, 3), T([1.0, -2.0]), mask


@pytest.mark.parametrize(
    ("agg", "expected", "grad"),
    [
        ("token-mean", 0.364, [[-1 / 5, 0.0, -0.5 / 5], [0.0, 3.0 / 5, 0.0]]),
        ("seq-mean-token-mean", 0.68666667, [[-1 / 6, 0.0, -0.5 / 6], [0.0, 3.0 / 4, 0.0]]),
        ("seq-mean-token-sum-norm", 0.2275, [[-1 / 8, 0.0, -0.5 / 8], [0.0, 3.0 / 8, 0.0]]),
    ],
)
def test_policy_loss_clip_higher_by_hand(agg, expected, grad):
    logp, old, adv, mask = two_sequences()
    loss, stats = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, agg=agg, max_len=4)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert logp.grad is not None
    close(logp.grad, grad)
    # One token clipped low (0.5 with A < 0), one clipped high (1.5 with A > 0), out of 5.
    assert stats["clip_frac_low"] == pytest.approx(0.2)
    assert stats["clip_frac_high"] == pytest.approx(0.2)
    assert stats["ratio_mean"] == pytest.approx(1.0)  # (1 + 1.5 + 0.5 + 0.5 + 1.5) / 5
    assert (stats["ratio_min"], stats["ratio_max"]) == pytest.approx((0.5, 1.5))
    assert (stats["tokens"], stats["seqs"]) == (5.0, 2.0)
    assert stats["pg_loss"] == pytest.approx(expected, abs=1e-6)


def test_symmetric_clip_differs_from_clip_higher():
    # With ε_high = 0.2 the high-clipped token costs −1.2 instead of −1.28: Σ = 1.9 → 0.38.
    logp, old, adv, mask = two_sequences()
    loss, _ = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    assert loss.item() == pytest.approx(0.38, abs=1e-6)


def test_sequence_level_ratio_gspo_by_hand():
    # seq 0: mean log-ratio (0 + ln 1.5 + ln 0.5) / 3 = ln(0.75) / 3 → s = 0.75^(1/3) = 0.90856030,
    #        inside [0.8, 1.28]: loss −A·s = −0.90856030 on each of its 3 tokens;
    # seq 1: (ln 0.5 + ln 1.5) / 2 → s = sqrt(0.75) = 0.86602540; A = −2: loss 1.73205081 on 2 tokens;
    # seq 2: ratios [2, 2] → s = 2 > 1.28 with A = +1: clipped, loss −1.28, no gradient.
    #   seq-mean-token-mean: (−0.90856030 + 1.73205081 − 1.28) / 3 = −0.15216983
    #   token-mean: (−2.72568090 + 3.46410162 − 2.56) / 7 = −0.26022561
    ratios = T([[1.0, 1.5, 0.5], [0.5, 1.5, 1.0], [2.0, 2.0, 1.0]])
    mask = T([[1, 1, 1], [1, 1, 0], [1, 1, 0]])
    adv = T([1.0, -2.0, 1.0])
    for agg, expected in (("seq-mean-token-mean", -0.15216983), ("token-mean", -0.26022561)):
        logp = ratios.log().requires_grad_(True)
        loss, stats = policy_loss(logp, torch.zeros(3, 3), adv, mask, ratio_level="sequence", agg=agg)
        assert loss.item() == pytest.approx(expected, abs=1e-6)
        assert stats["clip_frac_high"] == pytest.approx(1 / 3)  # counted per sequence
        assert stats["clip_frac_low"] == 0.0
        loss.backward()
        assert logp.grad is not None
        # seq-mean-token-mean: d/dlogp_t of −A·s/3 = −A·s/(3·|seq|) on each token of seq 0.
        if agg == "seq-mean-token-mean":
            close(logp.grad[0], [-0.90856030 / 9] * 3)
            close(logp.grad[2], [0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # x = logp − ref = [1, −0.5]:
        ("k1", (1.0 - 0.5) / 2),  # mean x = 0.25
        ("k3", ((math.exp(-1) - 1 + 1) + (math.exp(0.5) - 1 - 0.5)) / 2),  # (0.367879 + 0.148721) / 2
        ("mse", (0.5 * 1.0 + 0.5 * 0.25) / 2),  # 0.3125
    ],
)
def test_kl_estimators_by_hand(kind, expected):
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = T([[-1.0, 0.5]])
    # A = 0: the policy term vanishes; the loss is kl_coef · KL (token-mean).
    loss, stats = policy_loss(
        logp, torch.zeros(1, 2), T([0.0]), torch.ones(1, 2), ref_logp=ref, kl_coef=0.1, kl_kind=kind
    )
    assert stats["kl"] == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx(0.1 * expected, abs=1e-6)


def test_kl_is_logged_but_not_added_at_zero_coef():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, stats = policy_loss(
        logp, torch.zeros(1, 2), T([0.0]), torch.ones(1, 2), ref_logp=T([[-1.0, 0.5]]), kl_kind="k1"
    )
    assert loss.item() == 0.0
    assert stats["kl"] == pytest.approx(0.25)


def test_kl_penalty_k3_is_finite_far_from_reference():
    assert torch.isfinite(kl_penalty(T([[0.0]]), T([[-1e4]]), "k3")).all()


def test_entropy_bonus_by_hand():
    # A = 0; entropy [[1, 2], [3, pad]] over 3 tokens: token-mean 2 → loss −0.01 · 2 = −0.02.
    ent = T([[1.0, 2.0], [3.0, 100.0]], requires_grad=True)
    logp = torch.zeros(2, 2, requires_grad=True)
    mask = T([[1, 1], [1, 0]])
    loss, stats = policy_loss(logp, torch.zeros(2, 2), T([0.0, 0.0]), mask, entropy=ent, entropy_coef=0.01)
    assert loss.item() == pytest.approx(-0.02, abs=1e-7)
    assert stats["entropy"] == pytest.approx(2.0)
    loss.backward()
    assert ent.grad is not None
    close(ent.grad, [[-0.01 / 3, -0.01 / 3], [-0.01 / 3, 0.0]], tol=1e-9)


def test_sample_weights_by_hand():
    # Weights [2, 0] on the two sequences: token-mean (2 · −2.78 + 0 · 4.6) / 5 = −1.112.
    logp, old, adv, mask = two_sequences()
    loss, _ = policy_loss(logp, old, adv, mask, sample_weight=T([2.0, 0.0]))
    assert loss.item() == pytest.approx(-1.112, abs=1e-6)


def test_masked_rows_carry_no_loss_and_no_count():
    # A third row masked out (its reward timed out): same loss and counts as the two rows alone.
    logp, old, adv, mask = two_sequences(pad=0.0)
    loss2, _ = policy_loss(logp, old, adv, mask, agg="seq-mean-token-mean")
    logp3 = torch.cat([logp.detach(), T([[5.0, 5.0, 5.0]])]).requires_grad_(True)
    mask3 = torch.cat([mask, T([[0, 0, 0]])])
    loss3, stats = policy_loss(
        logp3, torch.zeros(3, 3), T([1.0, -2.0, 0.0]), mask3, agg="seq-mean-token-mean"
    )
    assert loss3.item() == pytest.approx(loss2.item(), abs=1e-7)
    assert (stats["tokens"], stats["seqs"]) == (5.0, 2.0)


def test_on_policy_gradient_is_reinforce():
    # old = logp.detach(): ratio 1, never clipped; d loss / d logp = −A / N per token.
    logp = T([[-0.3, -1.2], [-2.0, -0.1]], requires_grad=True)
    loss, stats = policy_loss(logp, logp.detach(), T([0.5, -1.0]), torch.ones(2, 2))
    loss.backward()
    assert logp.grad is not None
    close(logp.grad, [[-0.125, -0.125], [0.25, 0.25]])
    assert stats["clip_frac_low"] == stats["clip_frac_high"] == 0.0


# ----------------------------------------------------------------------------------------------
# Gradient accumulation: micro-batches with global counts give exactly the full-batch gradient.


def random_batch(seed: int, b: int = 6, t: int = 7):
    g = torch.Generator().manual_seed(seed)
    lengths = T([7, 2, 5, 1, 6, 3])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    old = -torch.rand(b, t, generator=g) * 3
    logp = old + torch.randn(b, t, generator=g) * 0.3
    ref = old + torch.randn(b, t, generator=g) * 0.2
    ent = torch.rand(b, t, generator=g) * 2
    adv = torch.randn(b, generator=g)
    weight = torch.rand(b, generator=g) + 0.5
    return logp, old, ref, ent, adv, mask, weight


def loss_kwargs(agg: str, level: str) -> dict:
    return dict(agg=agg, ratio_level=level, max_len=7, kl_coef=0.05, kl_kind="k3", entropy_coef=0.01)


@pytest.mark.parametrize("agg", AGGREGATIONS)
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_micro_batches_give_the_full_batch_gradient(agg, level):
    logp, old, ref, ent, adv, mask, weight = random_batch(0)
    full_logp, full_ent = logp.clone().requires_grad_(True), ent.clone().requires_grad_(True)
    full, _ = policy_loss(
        full_logp,
        old,
        adv,
        mask,
        sample_weight=weight,
        ref_logp=ref,
        entropy=full_ent,
        **loss_kwargs(agg, level),
    )
    full.backward()

    num_tokens, num_seqs = loss_normalizers(mask)
    mb_logp, mb_ent = logp.clone().requires_grad_(True), ent.clone().requires_grad_(True)
    total = torch.zeros(())
    for rows in ([0, 1], [2, 3, 4], [5]):  # uneven micro-batches, each padded to its own longest row
        width = int(mask[rows].sum(-1).max())
        cut = (rows, slice(0, width))
        part, _ = policy_loss(
            mb_logp[cut], old[cut], adv[rows], mask[cut], sample_weight=weight[rows], ref_logp=ref[cut],
            entropy=mb_ent[cut], num_tokens=num_tokens, num_seqs=num_seqs, **loss_kwargs(agg, level),
        )  # fmt: skip
        part.backward()
        total = total + part.detach()
    assert float(total) == pytest.approx(full.item(), abs=1e-6)
    assert full_logp.grad is not None and mb_logp.grad is not None and mb_ent.grad is not None
    torch.testing.assert_close(mb_logp.grad, full_logp.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(mb_ent.grad, full_ent.grad, atol=1e-6, rtol=0)


def test_per_micro_batch_means_would_not_match():
    # The test above can fail: verl-style local token means averaged over micro-batches differ.
    logp, old, _, _, adv, mask, _ = random_batch(1)
    full, _ = policy_loss(logp, old, adv, mask)
    local = sum(policy_loss(logp[r], old[r], adv[r], mask[r])[0] for r in ([0, 1], [2, 3, 4], [5])) / 3
    assert abs(float(local) - full.item()) > 1e-3


# ----------------------------------------------------------------------------------------------
# Helpers and bad input


def test_loss_normalizers_and_merge_stats():
    assert loss_normalizers(T([[True, False], [False, False], [True, True]])) == (3.0, 2.0)
    merged = merge_stats(
        [
            {"pg_loss": 0.5, "kl": 0.1, "clip_frac_low": 0.0, "ratio_min": 0.9, "ratio_max": 1.1, "tokens": 1.0, "seqs": 1.0},
            {"pg_loss": 0.25, "kl": 0.2, "clip_frac_low": 0.5, "ratio_min": 0.7, "ratio_max": 1.0, "tokens": 3.0, "seqs": 2.0},
        ]
    )  # fmt: skip
    # Loss terms add (already globally normalised); means weight by tokens: (0 · 1 + 0.5 · 3) / 4.
    assert merged == pytest.approx(
        {
            "pg_loss": 0.75,
            "kl": 0.3,
            "clip_frac_low": 0.375,
            "ratio_min": 0.7,
            "ratio_max": 1.1,
            "tokens": 4.0,
            "seqs": 3.0,
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agg": "seq-mean-token-sum-norm"}, "needs max_len"),
        ({"agg": "sum"}, "agg must be one of"),
        ({"ratio_level": "chunk"}, "ratio_level must be one of"),
        ({"kl_coef": 0.1}, "needs ref_logp"),
        ({"entropy_coef": 0.1}, "needs entropy"),
        ({"ref_logp": torch.zeros(2, 2)}, "ref_logp must have shape"),
        ({"sample_weight": torch.ones(3)}, "sample_weight must have shape"),
        ({"ref_logp": torch.zeros(2, 3), "kl_coef": 0.1, "kl_kind": "k2"}, "kl_kind must be one of"),
    ],
)
def test_policy_loss_rejects_bad_input(kwargs, message):
    logp, old, adv, mask = two_sequences()
    with pytest.raises(ValueError, match=message):
        policy_loss(logp, old, adv, mask, **kwargs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_cuda_matches_cpu(level):
    # Everything built inside the functions follows the inputs' device (no CPU-only temporaries).
    logp, old, ref, ent, adv, mask, weight = random_batch(2)
    kwargs = dict(sample_weight=weight, ref_logp=ref, entropy=ent, **loss_kwargs("token-mean", level))
    cpu_loss, cpu_stats = policy_loss(logp, old, adv, mask, **kwargs)
    cuda = {k: v.cuda() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    gpu_loss, gpu_stats = policy_loss(logp.cuda(), old.cuda(), adv.cuda(), mask.cuda(), **{**kwargs, **cuda})
    assert gpu_loss.item() == pytest.approx(cpu_loss.item(), abs=1e-5)
    assert gpu_stats == pytest.approx(cpu_stats, abs=1e-5)
    rewards, group, valid = T(TASK_REWARDS), T(TASK_GROUPS), T([True] * 7 + [False])
    on_gpu = group_advantages(rewards.cuda(), group.cuda(), valid.cuda(), normalize_by=T(TASK_IDS).cuda())
    torch.testing.assert_close(
        on_gpu.cpu(), group_advantages(rewards, group, valid, normalize_by=T(TASK_IDS))
    )
    assert advantage_stats(rewards.cuda(), group.cuda(), valid.cuda(), on_gpu) == pytest.approx(
        advantage_stats(rewards, group, valid, on_gpu.cpu())
    )
