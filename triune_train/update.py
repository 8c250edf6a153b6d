"""One GRPO update: rewards → advantages (`score_batch`), then the optimizer steps (`grpo_update`).

`grpo_update` runs ``algorithm.epochs × algorithm.mini_batches`` AdamW steps over the rollouts whose
reward is ok. Gradients accumulate over micro-batches of ``optim.micro_batch_size`` completions;
every micro-batch loss is divided by the whole mini-batch's token (or sequence) count
(`grpo.policy_loss` with ``num_tokens``/``num_seqs``), so the accumulated gradient equals the full
batch's whatever the micro-batch size. A step whose gradient norm is not finite is skipped and
counted; the norm is clipped; per-layer gradient norms are measured before clipping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from triune_train.config import OptimSection, TrainConfig
from triune_train.grpo import group_advantages, merge_stats, policy_loss
from triune_train.logprobs import completion_logprobs
from triune_train.models.loading import Policy
from triune_train.rollout.base import PromptInputs, Rollout


@dataclass
class ScoredBatch:
    """One step's rollouts as tensors (N = rollouts, prompt-major).

    rewards [N] float, valid [N] bool (reward status ok), group [N] long (prompt index),
    advantages [N] float (0 on invalid rows), sample_weight [N] float or None.
    """

    rewards: Tensor
    valid: Tensor
    group: Tensor
    advantages: Tensor
    sample_weight: Tensor | None


def score_batch(
    cfg: TrainConfig, prompts: Sequence[PromptInputs], rollouts: Sequence[Rollout], results: Sequence[Any]
) -> ScoredBatch:
    """Rewards → GRPO advantages; rows whose reward is not ok are masked (advantage 0, no loss)."""
    alg = cfg.algorithm
    rewards = torch.tensor([r.reward for r in results], dtype=torch.float32)
    valid = torch.tensor([r.status == "ok" for r in results], dtype=torch.bool)
    group = torch.tensor([r.prompt_index for r in rollouts], dtype=torch.long)
    normalize_by = None
    if alg.normalize_by != "none":
        keys = [getattr(prompts[r.prompt_index].sample, alg.normalize_by) for r in rollouts]
        ids = {k: i for i, k in enumerate(sorted(set(keys)))}
        normalize_by = torch.tensor([ids[k] for k in keys], dtype=torch.long)
    advantages = group_advantages(
        rewards, group, valid, scale=alg.advantage_scale, normalize_by=normalize_by, eps=alg.eps
    )
    weight = None
    if cfg.data.sample_weight == "loss":
        weight = torch.tensor(
            [prompts[r.prompt_index].sample.sample_weight for r in rollouts], dtype=torch.float32
        )
    return ScoredBatch(rewards, valid, group, advantages, weight)


def grpo_update(
    policy: Policy,
    reference: Any,
    prompts: Sequence[PromptInputs],
    rollouts: Sequence[Rollout],
    batch: ScoredBatch,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    *,
    seed: int,
) -> dict[str, float]:
    """``epochs × mini_batches`` optimizer steps over the valid rollouts; returns merged statistics.

    On-policy (1 × 1) the old log-probs are the current ones detached (ratio 1, one forward pass);
    otherwise they are computed once, before the first update, without gradients, and each epoch
    splits the rows into mini-batches by a permutation seeded with (`seed`, epoch).
    """
    alg, opt = cfg.algorithm, cfg.optim
    model = policy.model
    rows = batch.valid.nonzero().flatten().tolist()
    if not rows:
        return {"skipped_updates": 0.0, "no_valid_rows": 1.0}
    logprobs: dict[str, Any] = dict(
        micro_batch_size=opt.micro_batch_size,
        pad_token_id=policy.pad_token_id,
        vision_token_ids=policy.vision_token_ids,
    )
    on_policy = alg.epochs == 1 and alg.mini_batches == 1
    old = ref = None
    if not on_policy:
        old = _per_row_logprobs(model, prompts, rollouts, rows, **logprobs)
    if reference is not None:
        ref = _per_row_logprobs(reference, prompts, rollouts, rows, **logprobs)

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    stats: list[dict[str, float]] = []
    norms: list[float] = []
    layer_norms: dict[str, float] = {}
    skipped = 0
    for epoch in range(alg.epochs):
        order = rows
        if not on_policy:
            g = torch.Generator().manual_seed(seed * 31 + epoch)
            order = [rows[i] for i in torch.randperm(len(rows), generator=g).tolist()]
        for mini in np.array_split(np.array(order), alg.mini_batches):
            mini = mini.tolist()
            num_tokens = float(sum(rollouts[i].num_tokens for i in mini))
            num_seqs = float(sum(1 for i in mini if rollouts[i].num_tokens))
            for start in range(0, len(mini), opt.micro_batch_size):
                micro = mini[start : start + opt.micro_batch_size]
                chunk = [rollouts[i] for i in micro]
                logp, mask, entropy = completion_logprobs(
                    model, prompts, chunk, with_entropy=True, **logprobs
                )
                width = logp.shape[1]
                old_logp = logp.detach() if old is None else _stack(old, micro, width)
                loss, s = policy_loss(
                    logp,
                    old_logp,
                    batch.advantages[micro].to(logp.device),
                    mask,
                    clip_low=alg.clip_low,
                    clip_high=alg.clip_high,
                    ratio_level=alg.ratio_level,
                    agg=alg.loss_agg,
                    num_tokens=num_tokens,
                    num_seqs=num_seqs,
                    max_len=cfg.rollout.max_new_tokens,
                    sample_weight=None
                    if batch.sample_weight is None
                    else batch.sample_weight[micro].to(logp.device),
                    ref_logp=None if ref is None else _stack(ref, micro, width),
                    kl_coef=alg.kl_coef,
                    kl_kind=alg.kl_kind,
                    entropy=entropy,
                    entropy_coef=alg.entropy_coef,
                )
                loss.backward()
                stats.append({**s, "loss": float(loss.detach())})
            if cfg.logging.layer_grad_norms:
                layer_norms = layer_grad_norms(model)
            norm = float(torch.nn.utils.clip_grad_norm_(trainable, opt.grad_clip or math.inf))
            norms.append(norm)
            if math.isfinite(norm):
                optimizer.step()
            else:  # one bad batch must not poison the weights (paper §4.1: grad-norm spikes)
                skipped += 1
            optimizer.zero_grad(set_to_none=True)
    merged = merge_stats(stats)
    merged["loss"] = sum(s["loss"] for s in stats)  # every micro-batch loss is over global counts
    finite = [n for n in norms if math.isfinite(n)]
    return {
        **merged,
        "grad_norm": max(finite) if finite else math.nan,
        "optimizer_steps": float(len(norms) - skipped),
        "skipped_updates": float(skipped),
        **{f"layer_grad_norm/{k}": v for k, v in layer_norms.items()},
    }


def _per_row_logprobs(
    model: Any, prompts: Sequence[PromptInputs], rollouts: Sequence[Rollout], rows: list[int], **kw: Any
) -> dict[int, Tensor]:
    """{rollout index: [C] log-probs} without gradients (old policy or reference)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logp, _, _ = completion_logprobs(
            model, prompts, [rollouts[i] for i in rows], with_entropy=False, **kw
        )
    model.train(was_training)
    return {i: logp[k, : rollouts[i].num_tokens] for k, i in enumerate(rows)}


def _stack(per_row: dict[int, Tensor], rows: list[int], width: int) -> Tensor:
    """[len(rows), width] right-padded with 0, from per-row 1-D tensors."""
    out = torch.zeros(len(rows), width, device=next(iter(per_row.values())).device)
    for k, i in enumerate(rows):
        out[k, : per_row[i].shape[0]] = per_row[i]
    return out


_LAYER = r"^(.*?\.(?:layers|blocks)\.\d+)\."


def layer_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 grad norm per layer: parameters grouped by the prefix up to ``layers.N`` / ``blocks.N``
    (other parameters by their module path), as V-Triune's ``layer_grad_norm/<layer>`` (Fig. 7c).

    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False))
    >>> m[0].weight.grad = torch.tensor([[3.0, 4.0]])
    >>> layer_grad_norms(m)
    {'0': 5.0}
    """
    sums: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        m = re.match(_LAYER, name)
        key = m.group(1) if m else name.rsplit(".", 1)[0] if "." in name else name
        sums[key] = sums.get(key, 0.0) + float(p.grad.detach().float().pow(2).sum())
    return {k: math.sqrt(v) for k, v in sums.items()}


def lr_schedule(optim: OptimSection, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate after `s` steps: linear warmup, then constant/linear/cosine.

    >>> f = lr_schedule(OptimSection(warmup_ratio=0.5, schedule="linear"), 4)
    >>> [f(s) for s in range(5)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    warmup = math.ceil(optim.warmup_ratio * total_steps)
    decay = max(1, total_steps - warmup)

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        if optim.schedule == "constant":
            return 1.0
        progress = min(1.0, (s - warmup) / decay)
        shape = 1 - progress if optim.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * shape

    return factor


__all__ = ["ScoredBatch", "grpo_update", "layer_grad_norms", "lr_schedule", "score_batch"]
