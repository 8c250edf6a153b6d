"""Our GRPO loss (`triune_train.grpo.policy_loss`) against TRL's GRPOTrainer on identical tensors.

TRL computes its loss in ``GRPOTrainer._compute_loss(model, inputs)``; the model enters only
through ``self._get_per_token_logps_and_entropies``. This bench builds a real GRPOTrainer per
configuration (a tiny Qwen2 text model and the tiny tokenizer of `triune_train.models.tiny`, saved
to a temporary folder, CPU, no vLLM), replaces that one method on the instance so that it returns
fixed per-token log-probs (a leaf tensor with grad) and entropies, feeds the same old/reference
log-probs, advantages and masks to both, and compares the loss and its gradient w.r.t. the log-probs.

Loss types both have (TRL name → ours):
    grpo    → agg "seq-mean-token-mean"
    bnpo    → agg "token-mean" (this micro-batch's tokens)
    dapo    → agg "token-mean" with the GLOBAL token count (TRL's num_items_in_batch)
    dr_grpo → agg "seq-mean-token-sum-norm", max_len = max_completion_length
each with importance_sampling_level token or sequence (GSPO), with and without the k3 KL (beta;
TRL's ``use_bias_correction_kl``, on by default since 1.x, multiplies the KL by the ratio, which we
do not: it is turned off here), clip-higher 0.2/0.28. TRL's entropy bonus is a token mean whatever the loss type, ours follows
`agg`: they agree for the token-mean types, where the entropy term is compared. Gradient
accumulation: dapo over 4 micro-batches (TRL gradient_accumulation_steps 4) against our global
normalisers. Also times the loss forward+backward of both, interleaved (ratio, not absolute).

    PYTHONPATH=. python bench/grpo_loss_bench.py            # needs the bench extra (trl)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from triune_train.grpo import (
    RATIO_LEVELS,
    Aggregation,
    RatioLevel,
    group_advantages,
    loss_normalizers,
    policy_loss,
)

TOL = 1e-6
AGG: dict[str, Aggregation] = {
    "grpo": "seq-mean-token-mean",
    "bnpo": "token-mean",
    "dapo": "token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
}


def build_tiny_folder(root: Path) -> Path:
    """A tiny random Qwen2 causal LM + the tiny BPE tokenizer, saved as a HF folder (offline)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from triune_train.models.tiny import build_tokenizer

    tok = build_tokenizer(400, default_system=None)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    out = root / "tiny-qwen2"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_trainer(model_dir: Path, work: Path, *, loss_type: str, level: str, beta: float, entropy_coef: float,
                 batch: int, group: int, max_len: int, accumulation: int = 1) -> Any:  # fmt: skip
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(work / f"trl-{loss_type}-{level}-{beta}"),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=batch // accumulation,
        gradient_accumulation_steps=accumulation,
        num_generations=group,
        max_completion_length=max_len,
        loss_type=loss_type,
        importance_sampling_level=level,
        epsilon=0.2,
        epsilon_high=0.28,
        beta=beta,
        entropy_coef=entropy_coef,
        use_bias_correction_kl=False,  # TRL 1.16's default multiplies k3 by the ratio (DeepSeek-V3.2); plain k3 here
        bf16=False,
    )
    data = Dataset.from_dict({"prompt": [f"prompt {i}" for i in range(batch)]})

    def no_reward(completions: list[Any], **_: Any) -> list[float | None]:
        return [0.0] * len(completions)

    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=no_reward, args=args, train_dataset=data)
    assert trainer.model is not None
    trainer.model.train()  # TRL scales by gradient accumulation in train mode only
    trainer.current_gradient_accumulation_steps = accumulation  # set by Trainer's loop when training
    return trainer


def make_tensors(seed: int, *, batch: int, group: int, max_len: int) -> dict[str, torch.Tensor]:
    """Log-probs off-policy enough that both clip sides and the sequence clip are exercised."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch,), generator=g)
    mask = (torch.arange(max_len)[None, :] < lengths[:, None]).long()
    old = -torch.rand(batch, max_len, generator=g, dtype=torch.float64).float() * 4
    drift = torch.randn(batch, 1, generator=g) * 0.2  # per sequence: some sequence ratios leave [0.8, 1.28]
    logp = old + drift + torch.randn(batch, max_len, generator=g) * 0.25
    ref = old + torch.randn(batch, max_len, generator=g) * 0.3
    entropy = torch.rand(batch, max_len, generator=g) * 3
    rewards = torch.rand(batch, generator=g).round()  # binary rewards, as math
    adv = group_advantages(rewards, torch.arange(batch) // group)
    return {"logp": logp, "old": old, "ref": ref, "entropy": entropy, "adv": adv, "mask": mask}


def trl_loss(
    trainer: Any, t: dict[str, torch.Tensor], rows: slice, num_items: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's loss on rows of `t` and its gradient w.r.t. the log-probs of those rows."""
    logp = t["logp"][rows].clone().requires_grad_(True)
    entropy = t["entropy"][rows]
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logp, entropy, None)
    b, width = logp.shape
    inputs = {
        "prompt_ids": torch.zeros(b, 1, dtype=torch.long),
        "prompt_mask": torch.ones(b, 1, dtype=torch.long),
        "completion_ids": torch.zeros(b, width, dtype=torch.long),
        "completion_mask": t["mask"][rows],
        "advantages": t["adv"][rows],
        "old_per_token_logps": t["old"][rows],
        "num_items_in_batch": torch.tensor(num_items),
    }
    if trainer.beta != 0.0:
        inputs["ref_per_token_logps"] = t["ref"][rows]
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    assert logp.grad is not None
    return loss.detach(), logp.grad


def our_loss(t: dict[str, torch.Tensor], rows: slice, *, loss_type: str, level: RatioLevel, beta: float,
             entropy_coef: float, max_len: int, global_counts: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    logp = t["logp"][rows].clone().requires_grad_(True)
    num_tokens, num_seqs = loss_normalizers(t["mask"]) if global_counts else (None, None)
    loss, _ = policy_loss(
        logp, t["old"][rows], t["adv"][rows], t["mask"][rows], clip_low=0.2, clip_high=0.28, ratio_level=level,
        agg=AGG[loss_type], num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len,
        ref_logp=t["ref"][rows] if beta else None, kl_coef=beta, kl_kind="k3",
        entropy=t["entropy"][rows] if entropy_coef else None, entropy_coef=entropy_coef,
    )  # fmt: skip
    loss.backward()
    assert logp.grad is not None
    return loss.detach(), logp.grad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-len", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-repeats", type=int, default=200)
    a = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import transformers
    import trl

    transformers.utils.logging.disable_progress_bar()

    print(f"trl {trl.__version__}, torch {torch.__version__}; batch {a.batch}, group {a.group}, "
          f"max_len {a.max_len}, seeds {a.seeds}, tolerance {TOL:g}")  # fmt: skip
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_tiny_folder(work)
        header = f"{'TRL loss_type':<9} {'level':<9} {'beta':>5} {'ent':>5} {'ours agg':<24} {'|Δloss|':>9} {'max|Δgrad|':>10} {'clip lo/hi':>11}"
        print(header)
        print("-" * len(header))
        full = slice(None)
        for loss_type in ("grpo", "bnpo", "dapo", "dr_grpo"):
            for level in RATIO_LEVELS:
                for beta in (0.0, 0.04):
                    ent = 0.01 if AGG[loss_type] == "token-mean" else 0.0
                    trainer = make_trainer(model_dir, work, loss_type=loss_type, level=level, beta=beta, entropy_coef=ent,
                                           batch=a.batch, group=a.group, max_len=a.max_len)  # fmt: skip
                    d_loss = d_grad = 0.0
                    clip = [0.0, 0.0]  # mean over seeds
                    for seed in range(a.seeds):
                        t = make_tensors(seed, batch=a.batch, group=a.group, max_len=a.max_len)
                        tl, tg = trl_loss(trainer, t, full, float(t["mask"].sum()))
                        ol, og = our_loss(t, full, loss_type=loss_type, level=level, beta=beta, entropy_coef=ent,
                                          max_len=a.max_len, global_counts=loss_type == "dapo")  # fmt: skip
                        d_loss = max(d_loss, abs(float(tl) - float(ol)))
                        d_grad = max(d_grad, float((tg - og).abs().max()))
                        _, stats = policy_loss(t["logp"], t["old"], t["adv"], t["mask"], ratio_level=level)
                        clip[0] += stats["clip_frac_low"] / a.seeds
                        clip[1] += stats["clip_frac_high"] / a.seeds
                    worst = max(worst, d_loss, d_grad)
                    print(f"{loss_type:<9} {level:<9} {beta:>5} {ent:>5} {AGG[loss_type]:<24} {d_loss:>9.1e} "
                          f"{d_grad:>10.1e} {clip[0]:>5.3f}/{clip[1]:.3f}")  # fmt: skip

        # Gradient accumulation: 4 equal micro-batches, TRL dapo with gradient_accumulation_steps 4
        # (its normaliser: the generation batch's token count) against our global normalisers.
        acc = 4
        trainer = make_trainer(model_dir, work, loss_type="dapo", level="token", beta=0.04, entropy_coef=0.0,
                               batch=a.batch, group=a.group, max_len=a.max_len, accumulation=acc)  # fmt: skip
        t = make_tensors(99, batch=a.batch, group=a.group, max_len=a.max_len)
        step = a.batch // acc
        parts = [slice(i * step, (i + 1) * step) for i in range(acc)]
        trl_parts = [trl_loss(trainer, t, p, float(t["mask"].sum())) for p in parts]
        our_parts = [our_loss(t, p, loss_type="dapo", level="token", beta=0.04, entropy_coef=0.0, max_len=a.max_len,
                              global_counts=True) for p in parts]  # fmt: skip
        our_full = our_loss(t, full, loss_type="dapo", level="token", beta=0.04, entropy_coef=0.0, max_len=a.max_len,
                            global_counts=False)  # fmt: skip
        trl_sum = sum(float(x[0]) for x in trl_parts)
        our_sum = sum(float(x[0]) for x in our_parts)
        trl_grad = torch.cat([x[1] for x in trl_parts])
        our_grad = torch.cat([x[1] for x in our_parts])
        d_acc = max(abs(trl_sum - our_sum), abs(our_sum - float(our_full[0])),
                    float((trl_grad - our_grad).abs().max()), float((our_grad - our_full[1]).abs().max()))  # fmt: skip
        worst = max(worst, d_acc)
        print(f"accumulation: dapo/token/beta 0.04 over {acc} micro-batches: Σ TRL {trl_sum:.8f}, Σ ours "
              f"{our_sum:.8f}, ours full batch {float(our_full[0]):.8f}; max |Δ| (loss and grad) {d_acc:.1e}")  # fmt: skip

        # Time: loss forward + backward on the same tensors, interleaved, median of repeats.
        big = make_tensors(7, batch=64, group=8, max_len=256)
        trainer = make_trainer(model_dir, work, loss_type="dapo", level="token", beta=0.0, entropy_coef=0.0,
                               batch=64, group=8, max_len=256)  # fmt: skip
        times: dict[str, list[float]] = {"trl": [], "ours": []}
        for _ in range(a.time_repeats):
            t0 = time.perf_counter()
            trl_loss(trainer, big, full, float(big["mask"].sum()))
            t1 = time.perf_counter()
            our_loss(big, full, loss_type="dapo", level="token", beta=0.0, entropy_coef=0.0, max_len=256,
                     global_counts=True)  # fmt: skip
            t2 = time.perf_counter()
            times["trl"].append(t1 - t0)
            times["ours"].append(t2 - t1)
        trl_ms, our_ms = (statistics.median(times[k]) * 1e3 for k in ("trl", "ours"))
        print(f"time (dapo/token-mean, 64 × 256, forward+backward, median of {a.time_repeats}): TRL {trl_ms:.2f} ms, "
              f"ours {our_ms:.2f} ms, ours/TRL {our_ms / trl_ms:.2f}")  # fmt: skip
    print(f"worst difference {worst:.1e} ({'PASS' if worst <= TOL else 'FAIL'} at {TOL:g})")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
