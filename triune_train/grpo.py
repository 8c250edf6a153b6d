"""GRPO as pure tensor functions: group advantages and the clipped policy loss.

Shapes: N rollouts in a step; a micro-batch holds B of them, padded to T completion tokens.

What follows the paper and what is configurable:

- advantage ``(r − mean_group) / (std_group + eps)`` (unbiased std, eps 1e-6, as V-Triune's verl);
  ``scale="batch"`` divides by the batch std instead, ``scale="none"`` not at all (Dr.GRPO);
- per-task normalisation (`normalize_by`): rewards are standardised within each task id *before*
  grouping, so a binary math reward and a continuous IoU reward reach the loss on the same scale
  (OneThinker's motivation); see docs/decisions.md for why before rather than after;
- rows whose reward could not be computed (status error/timeout, or a non-finite reward) are
  excluded from every statistic and get advantage 0; the caller also drops them from the loss mask;
- a group with fewer than two valid rows has no baseline: its advantage is 0 (verl used mean 0 and
  std 1 there, which turns a lone reward into an advantage);
- PPO-clip with clip-higher (ε_low 0.2, ε_high 0.28 in the paper), ratio per token or per sequence
  (GSPO: ``exp(mean token log-ratio)``, clipped per sequence);
- loss aggregation ``token-mean`` (the paper), ``seq-mean-token-mean`` (GRPO's 1/G Σ 1/|o|) and
  ``seq-mean-token-sum-norm`` (Dr.GRPO: token sums over a constant ``max_len``), each divided by a
  GLOBAL count, so summing the losses of micro-batches gives exactly the full batch's gradient
  (verl's token-mean averages per micro-batch, which is not the global token mean);
- optional KL to a frozen reference (k1, k3 "low-var", mse = ½(log-ratio)²), off by default as in
  the paper; an entropy bonus; per-sequence sample weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, TypeAlias

import torch
from torch import Tensor

Scale: TypeAlias = Literal["group", "batch", "none"]
RatioLevel: TypeAlias = Literal["token", "sequence"]
Aggregation: TypeAlias = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
KLKind: TypeAlias = Literal["k1", "k3", "mse"]

SCALES: tuple[Scale, ...] = ("group", "batch", "none")
RATIO_LEVELS: tuple[RatioLevel, ...] = ("token", "sequence")
AGGREGATIONS: tuple[Aggregation, ...] = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_KINDS: tuple[KLKind, ...] = ("k1", "k3", "mse")

_MAX_LOG_RATIO = 20.0  # exp(20) ≈ 4.9e8: keeps k3 finite when policy and reference drift far apart


# ----------------------------------------------------------------------------------------------
# Advantages


def _segment_stats(values: Tensor, weight: Tensor, seg: Tensor, n_seg: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-segment (count, mean, unbiased std) of `values` over rows with weight 1.

    A segment with fewer than two rows has std 1 (its centred values are 0 anyway).
    """
    count = values.new_zeros(n_seg).index_add_(0, seg, weight)
    total = values.new_zeros(n_seg).index_add_(0, seg, values * weight)
    mean = total / count.clamp(min=1)
    sq = values.new_zeros(n_seg).index_add_(0, seg, (values - mean[seg]) ** 2 * weight)
    std = torch.where(count >= 2, (sq / (count - 1).clamp(min=1)).sqrt(), torch.ones_like(sq))
    return count, mean, std


def _check_1d(name: str, t: Tensor, n: int) -> None:
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape [{n}], got {list(t.shape)}")


def group_advantages(
    rewards: Tensor,
    group: Tensor,
    valid: Tensor | None = None,
    *,
    scale: Scale = "group",
    normalize_by: Tensor | None = None,
    eps: float = 1e-6,
) -> Tensor:
    """GRPO advantages of N rollouts.

    Args:
        rewards: [N] float.
        group: [N] long, any ids; rollouts of the same prompt share one.
        valid: [N] bool, False for rows whose reward status is error/timeout (default: all valid).
            Invalid rows and rows with a non-finite reward are left out of every mean and std and
            get advantage 0.
        scale: "group" divides by the group's std, "batch" by the std of all valid rewards,
            "none" does not divide (Dr.GRPO).
        normalize_by: [N] long task (or data-source) ids. Rewards are first standardised within
            each id, ``(r − mean_task) / (std_task + eps)``; then advantages are formed as above.
        eps: added to every std before dividing.

    Returns:
        [N] advantages, in the dtype of `rewards` (statistics are computed in float64).

    >>> group_advantages(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0, 0, 1, 1]), scale="none")
    tensor([ 0.5000, -0.5000,  0.5000, -0.5000])
    """
    n = rewards.shape[0]
    _check_1d("rewards", rewards, n)
    _check_1d("group", group, n)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    ok = torch.isfinite(rewards)
    if valid is not None:
        _check_1d("valid", valid, n)
        ok &= valid.bool()
    w = ok.double()
    r = torch.where(ok, rewards.double(), 0.0)

    if normalize_by is not None:
        _check_1d("normalize_by", normalize_by, n)
        tasks, t_inv = torch.unique(normalize_by, return_inverse=True)
        _, t_mean, t_std = _segment_stats(r, w, t_inv, len(tasks))
        r = (r - t_mean[t_inv]) / (t_std[t_inv] + eps) * w

    groups, g_inv = torch.unique(group, return_inverse=True)
    _, g_mean, g_std = _segment_stats(r, w, g_inv, len(groups))
    centred = (r - g_mean[g_inv]) * w
    if scale == "group":
        adv = centred / (g_std[g_inv] + eps)
    elif scale == "batch":
        _, _, b_std = _segment_stats(r, w, torch.zeros_like(g_inv), 1)
        adv = centred / (b_std[0] + eps)
    else:
        adv = centred
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def advantage_stats(rewards: Tensor, group: Tensor, valid: Tensor, advantages: Tensor) -> dict[str, float]:
    """Counts and moments of one step's advantages (global metrics; per-source ones are in metrics.py).

    `masked` counts rows left out of the advantage (invalid or non-finite reward); a group is
    zero-variance when its valid rewards are all equal (no learning signal), singleton when it has
    fewer than two valid rows.

    >>> s = advantage_stats(torch.tensor([1.0, 1.0, 0.0, 5.0]), torch.tensor([0, 0, 1, 1]),
    ...                     torch.tensor([True, True, True, False]), torch.zeros(4))
    >>> s["masked"], s["groups"], s["zero_variance_groups"], s["singleton_groups"]
    (1.0, 2.0, 2.0, 1.0)
    """
    ok = valid.bool() & torch.isfinite(rewards)
    w = ok.double()
    r = torch.where(ok, rewards.double(), 0.0)
    groups, inv = torch.unique(group, return_inverse=True)
    count = w.new_zeros(len(groups)).index_add_(0, inv, w)
    # Exact equality of the valid rewards: max == min over the group (a mean would round).
    high = w.new_full((len(groups),), -torch.inf)
    high = high.scatter_reduce(0, inv, torch.where(ok, r, -torch.inf), "amax")
    low = w.new_full((len(groups),), torch.inf)
    low = low.scatter_reduce(0, inv, torch.where(ok, r, torch.inf), "amin")
    a = advantages[ok].double()
    return {
        "masked": float((~ok).sum()),
        "groups": float(len(groups)),
        "zero_variance_groups": float(((high == low) & (count >= 1)).sum()),
        "singleton_groups": float((count < 2).sum()),
        "adv_mean": float(a.mean()) if a.numel() else 0.0,
        "adv_abs_mean": float(a.abs().mean()) if a.numel() else 0.0,
        "adv_max": float(a.max()) if a.numel() else 0.0,
        "adv_min": float(a.min()) if a.numel() else 0.0,
    }


# ----------------------------------------------------------------------------------------------
# Loss


def loss_normalizers(mask: Tensor) -> tuple[float, float]:
    """(tokens, sequences) of a whole mini-batch's loss mask [B, T]: pass them to every micro-batch.

    A sequence counts when it has at least one loss token (rows masked out for an error/timeout
    reward do not).

    >>> loss_normalizers(torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]]))
    (3.0, 2.0)
    """
    m = mask.bool()
    return float(m.sum()), float(m.any(dim=-1).sum())


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: KLKind) -> Tensor:
    """Per-token KL estimate of π from π_ref on samples of π, [B, T] → [B, T].

    With x = log π − log π_ref: k1 = x; k3 = exp(−x) − 1 + x (unbiased, low variance, ≥ 0);
    mse = ½·x² (verl's "mse"/k2, the estimator of V-Triune's released script).

    >>> x = kl_penalty(torch.tensor([[0.0]]), torch.tensor([[-1.0]]), "k3")
    >>> round(float(x), 6)  # exp(-1) - 1 + 1
    0.367879
    """
    x = logp - ref_logp
    if kind == "k1":
        return x
    if kind == "k3":
        x = x.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
        return torch.exp(-x) - 1 + x
    if kind == "mse":
        return 0.5 * x * x
    raise ValueError(f"kl_kind must be one of {KL_KINDS}, got {kind!r}")


def _aggregate(
    per_token: Tensor,
    mask: Tensor,
    agg: Aggregation,
    *,
    num_tokens: float,
    num_seqs: float,
    max_len: int | None,
) -> Tensor:
    """Masked [B, T] → scalar, divided by the global count of `agg`."""
    tok_sum = (per_token * mask).sum(dim=-1)  # [B]
    if agg == "token-mean":
        return tok_sum.sum() / max(num_tokens, 1.0)
    if agg == "seq-mean-token-mean":
        return (tok_sum / mask.sum(dim=-1).clamp(min=1)).sum() / max(num_seqs, 1.0)
    assert max_len is not None
    return tok_sum.sum() / (max(num_seqs, 1.0) * max_len)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    ratio_level: RatioLevel = "token",
    agg: Aggregation = "token-mean",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: int | None = None,
    sample_weight: Tensor | None = None,
    ref_logp: Tensor | None = None,
    kl_coef: float = 0.0,
    kl_kind: KLKind = "k3",
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped GRPO loss of one micro-batch (to minimise), and its statistics.

    Args:
        logp: [B, T] log-probs of the completion tokens under the policy (grads flow).
        old_logp: [B, T] the same under the policy that sampled them (no grad). On-policy with one
            update per rollout batch it equals ``logp.detach()`` and the ratio is 1.
        advantages: [B], one per sequence (0 for masked rows).
        mask: [B, T] bool or 0/1, the loss tokens (completion, not padding). Rows masked out of the
            advantage must be all 0 here too: then they carry no loss and count in no normaliser.
        clip_low, clip_high: the ratio is clipped to [1 − clip_low, 1 + clip_high] (clip-higher).
        ratio_level: "token", or "sequence" (GSPO: one ratio ``exp(mean_t log-ratio)`` per sequence,
            clipped per sequence; GSPO's paper uses clip ranges near 3e-4/4e-4 for it).
        agg: "token-mean": Σ loss / tokens; "seq-mean-token-mean": Σ_seq (Σ_tok loss / |seq|) / seqs;
            "seq-mean-token-sum-norm": Σ loss / (seqs · max_len) (Dr.GRPO).
        num_tokens, num_seqs: the GLOBAL counts over all micro-batches of this optimizer step (see
            `loss_normalizers`); default: this micro-batch's own, i.e. the full-batch loss.
        max_len: the constant of "seq-mean-token-sum-norm" (the rollout's max new tokens); required there.
        sample_weight: [B] per-sequence weights multiplying every loss term (absolute, not renormalised).
        ref_logp: [B, T] log-probs under the frozen reference; with `kl_coef` > 0 the loss adds
            ``kl_coef · KL`` per token (`kl_penalty` with `kl_kind`).
        entropy: [B, T] per-token entropy of the policy; with `entropy_coef` > 0 the loss subtracts
            ``entropy_coef · entropy`` per token. Both are aggregated like the policy term.

    Returns:
        (loss, stats): the scalar loss; stats are floats over this micro-batch's loss tokens
        (sequences for a sequence-level ratio): ``pg_loss``, ``kl`` and ``entropy`` (aggregated
        like the loss), ``clip_frac_low`` (ratio < 1 − clip_low with A < 0), ``clip_frac_high``
        (ratio > 1 + clip_high with A > 0), ``ratio_mean``/``ratio_min``/``ratio_max``, and
        ``tokens``/``seqs`` (local counts, to weight stats across micro-batches: `merge_stats`).

    >>> lp = torch.zeros(1, 2, requires_grad=True)
    >>> loss, stats = policy_loss(lp, torch.zeros(1, 2), torch.tensor([2.0]), torch.ones(1, 2))
    >>> float(loss.detach()), stats["ratio_mean"]  # ratio 1: loss = −A
    (-2.0, 1.0)
    """
    b, t = logp.shape
    for name, x in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp), ("entropy", entropy)):
        if x is not None and x.shape != logp.shape:
            raise ValueError(f"{name} must have shape {list(logp.shape)} like logp, got {list(x.shape)}")
    _check_1d("advantages", advantages, b)
    if sample_weight is not None:
        _check_1d("sample_weight", sample_weight, b)
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"ratio_level must be one of {RATIO_LEVELS}, got {ratio_level!r}")
    if agg not in AGGREGATIONS:
        raise ValueError(f"agg must be one of {AGGREGATIONS}, got {agg!r}")
    if agg == "seq-mean-token-sum-norm" and (max_len is None or max_len <= 0):
        raise ValueError("agg='seq-mean-token-sum-norm' needs max_len > 0 (the rollout's max new tokens)")
    if kl_coef > 0 and ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp")
    if entropy_coef != 0 and entropy is None:
        raise ValueError("entropy_coef != 0 needs entropy")

    m = mask.bool()
    mf = m.to(torch.float32)
    local_tokens, local_seqs = loss_normalizers(m)
    n_tok = local_tokens if num_tokens is None else float(num_tokens)
    n_seq = local_seqs if num_seqs is None else float(num_seqs)

    def agg_(per_token: Tensor) -> Tensor:
        return _aggregate(per_token, mf, agg, num_tokens=n_tok, num_seqs=n_seq, max_len=max_len)

    # Padding may hold anything (even NaN): take log-ratios only where the mask is set.
    log_ratio = torch.where(m, logp.float() - old_logp.float(), 0.0)
    if ratio_level == "sequence":
        log_ratio = (log_ratio.sum(dim=-1) / mf.sum(dim=-1).clamp(min=1)).unsqueeze(-1)  # [B, 1]
    ratio = torch.exp(log_ratio)
    adv = advantages.float().unsqueeze(-1)  # [B, 1]
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = torch.maximum(-adv * ratio, -adv * clipped).expand(b, t)
    weight = None if sample_weight is None else sample_weight.float().unsqueeze(-1)
    if weight is not None:
        per_token = per_token * weight
    pg = agg_(per_token)
    loss = pg
    stats: dict[str, float] = {"pg_loss": float(pg.detach())}

    if ref_logp is not None:
        kl_tok = torch.where(m, kl_penalty(logp.float(), ref_logp.float(), kl_kind), 0.0)
        kl = agg_(kl_tok if weight is None else kl_tok * weight)
        if kl_coef > 0:
            loss = loss + kl_coef * kl
        stats["kl"] = float(kl.detach())
    if entropy is not None:
        ent_tok = torch.where(m, entropy.float(), 0.0)
        ent = agg_(ent_tok if weight is None else ent_tok * weight)
        if entropy_coef != 0:
            loss = loss - entropy_coef * ent
        stats["entropy"] = float(ent.detach())

    with torch.no_grad():
        # Clip and ratio statistics over loss tokens, or over sequences for a sequence-level ratio.
        sel = m if ratio_level == "token" else m.any(dim=-1, keepdim=True)
        r = ratio[sel]
        a = adv.expand_as(ratio)[sel]
        count = max(r.numel(), 1)
        stats.update(
            clip_frac_low=float(((r < 1 - clip_low) & (a < 0)).sum()) / count,
            clip_frac_high=float(((r > 1 + clip_high) & (a > 0)).sum()) / count,
            ratio_mean=float(r.mean()) if r.numel() else 1.0,
            ratio_min=float(r.min()) if r.numel() else 1.0,
            ratio_max=float(r.max()) if r.numel() else 1.0,
            tokens=local_tokens,
            seqs=local_seqs,
        )
    return loss, stats


def merge_stats(stats: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Combine the stats of one step's micro-batches.

    Loss terms (``pg_loss``, ``kl``, ``entropy``) are already divided by global counts, so they
    add up; ``ratio_min``/``ratio_max`` take the min/max; other means are weighted by ``tokens``;
    ``tokens``/``seqs`` add up.

    >>> merge_stats([{"pg_loss": 1.0, "ratio_mean": 1.0, "tokens": 1.0},
    ...              {"pg_loss": 2.0, "ratio_mean": 4.0, "tokens": 3.0}])
    {'pg_loss': 3.0, 'ratio_mean': 3.25, 'tokens': 4.0}
    """
    items = list(stats)
    out: dict[str, float] = {}
    total = sum(s.get("tokens", 0.0) for s in items)
    for key in dict.fromkeys(k for s in items for k in s):
        values = [(s[key], s.get("tokens", 0.0)) for s in items if key in s]
        if key in ("pg_loss", "kl", "entropy", "tokens", "seqs"):
            out[key] = sum(v for v, _ in values)
        elif key == "ratio_min":
            out[key] = min(v for v, _ in values)
        elif key == "ratio_max":
            out[key] = max(v for v, _ in values)
        else:
            out[key] = sum(v * n for v, n in values) / total if total else values[0][0]
    return out
