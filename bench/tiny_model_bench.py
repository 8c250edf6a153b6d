"""Rollout and update cost of the tiny models: our path against plain transformers, one torch thread.

For each tiny family (Qwen2.5-VL, Qwen3-VL; `triune_train.models.tiny`), batch 8 prompts of one
image each, 64 new tokens, interleaved repetitions in one process:

    prompts   ours: `build_prompt` per sample (one processor call each)
              base: one batched processor call over the 8 rendered texts (padding=True)
    generate  ours: `HFEngine.generate` (neutral generation config, vision ban, EOS cut, decode)
              base: `model.generate(**batched, do_sample=True, suppress_tokens=...)`
    fwd+bwd   ours: `completion_logprobs` over the 8 rollouts (+ `.sum().backward()`)
              base: full forward, log_softmax over the completion slice, gather, backward

Both generate calls get the same seed and inputs, so they sample the same tokens, and both updates
give the same loss (checked: the bench fails otherwise). A row may end early at EOS; generation
runs until every row is done, the step count is printed. Reported: median seconds, ours/plain
ratio, and tokens/s = 8 × steps / seconds.

    PYTHONPATH=. python bench/tiny_model_bench.py [--reps 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from triune_train.logprobs import completion_logprobs
from triune_train.models.loading import Policy, load_policy
from triune_train.prompts import PromptInputs, build_prompt, decode_images
from triune_train.rollout.base import Rollout, SamplingParams
from triune_train.rollout.hf import HFEngine

BATCH, NEW_TOKENS = 8, 64
STAGES = ("prompts_ours", "prompts_base", "gen_ours", "gen_base", "upd_ours", "upd_base")
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")


def samples() -> list[Any]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.triune_train._model_testkit import make_sample

    return [
        make_sample(
            f"s{i}",
            text=f"<image>\nWhat colour is shape {i}? Answer with one word.",
            images=[(c, (320, 240))],
        )
        for i, c in enumerate(COLOURS)
    ]


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


class Case:
    """One tiny policy, 8 samples, and both ways of running each stage."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.samples = samples()
        self.engine = HFEngine(policy)
        self.params = SamplingParams(n=1, max_new_tokens=NEW_TOKENS, seed=0)

    def ours_prompts(self) -> list[PromptInputs]:
        out = [build_prompt(s, self.policy, max_prompt_tokens=4096) for s in self.samples]
        assert all(isinstance(p, PromptInputs) for p in out)
        return out  # type: ignore[return-value]

    def base_prompts(self, texts: list[str]) -> dict[str, torch.Tensor]:
        images = [decode_images(s)[0] for s in self.samples]
        return dict(self.policy.processor(images=images, text=texts, return_tensors="pt", padding=True))

    def base_generate(self, batched: dict[str, torch.Tensor]) -> torch.Tensor:
        """Plain ``generate`` with the same settings (a neutral generation config, the same bans)."""
        from transformers import GenerationConfig

        model, policy = self.policy.model, self.policy
        saved, model.generation_config = model.generation_config, GenerationConfig()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.params.seed or 0)
                out = model.generate(
                    **batched,
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=NEW_TOKENS,
                    suppress_tokens=list(policy.vision_token_ids),
                    eos_token_id=list(policy.eos_token_ids),
                    pad_token_id=policy.pad_token_id,
                )
        finally:
            model.generation_config = saved
        return out[:, batched["input_ids"].shape[1] :]

    def ours_update(self, prompts: list[PromptInputs], rollouts: list[Rollout]) -> float:
        self.policy.model.zero_grad(set_to_none=True)
        logp, mask, _ = completion_logprobs(
            self.policy.model, prompts, rollouts, micro_batch_size=BATCH, with_entropy=False
        )
        loss = -(logp * mask).sum() / mask.sum()
        loss.backward()
        return float(loss.detach())

    def base_update(
        self, batched: dict[str, torch.Tensor], completions: torch.Tensor, mask: torch.Tensor
    ) -> float:
        """The textbook way: concatenate, extend the masks, full logits, log_softmax, gather."""
        model = self.policy.model
        model.zero_grad(set_to_none=True)
        full = dict(batched)
        full["input_ids"] = torch.cat([batched["input_ids"], completions], 1)
        full["attention_mask"] = torch.cat([batched["attention_mask"], torch.ones_like(completions)], 1)
        full["mm_token_type_ids"] = torch.cat(
            [batched["mm_token_type_ids"], torch.zeros_like(completions)], 1
        )
        width = batched["input_ids"].shape[1]
        logits = model(**full).logits[:, width - 1 : -1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, completions.unsqueeze(-1)).squeeze(-1)
        loss = -(logp * mask).sum() / mask.sum()
        loss.backward()
        return float(loss.detach())


def run(family: str, root: Path, reps: int) -> tuple[dict[str, float], int]:
    case = Case(load_policy(f"tiny:{family}", tiny_dir=root / family))
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    steps = 0
    for rep in range(reps + 1):  # the first repetition warms up and is dropped
        t_po, prompts = timed(case.ours_prompts)
        t_pb, batched = timed(case.base_prompts, [p.text for p in prompts])
        t_go, rollouts = timed(case.engine.generate, prompts, case.params)
        t_gb, completions = timed(case.base_generate, batched)
        steps = completions.shape[1]
        lengths = torch.tensor([r.num_tokens for r in rollouts])
        mask = (torch.arange(steps)[None, :] < lengths[:, None]).float()
        for r, row in zip(rollouts, completions, strict=True):  # same seed and inputs: same tokens
            if not torch.equal(r.completion_ids, row[: r.num_tokens]):
                raise SystemExit(f"{family}: our engine and plain generate sampled different tokens")
        t_uo, loss_o = timed(case.ours_update, prompts, rollouts)
        t_ub, loss_b = timed(case.base_update, batched, completions, mask)
        if abs(loss_o - loss_b) > 1e-5:
            raise SystemExit(f"{family}: losses differ ({loss_o} vs {loss_b})")
        if rep:
            for key, t in zip(STAGES, (t_po, t_pb, t_go, t_gb, t_uo, t_ub), strict=True):
                times[key].append(t)
    return {k: statistics.median(v) for k, v in times.items()}, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch threads {torch.get_num_threads()}, batch {BATCH}, up to {NEW_TOKENS} new tokens, median of {args.reps}"
    )
    print("| model | stage | ours s | plain transformers s | ours/plain | ours tokens/s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("qwen2_5_vl", "qwen3_vl"):
            m, steps = run(family, Path(tmp), args.reps)
            rows = (
                ("prompts (8)", "prompts"),
                (f"generate ({steps} steps)", "gen"),
                ("forward+backward", "upd"),
            )
            for stage, key in rows:
                ours, base = m[f"{key}_ours"], m[f"{key}_base"]
                rate = f"{BATCH * steps / ours:.0f}" if key != "prompts" else "—"
                print(f"| {family} | {stage} | {ours:.3f} | {base:.3f} | {ours / base:.2f} | {rate} |")


if __name__ == "__main__":
    main()
