"""Step time of `triune train` against TRL's `GRPOTrainer`, side by side, on the tiny model (CPU).

    .venv/bin/python bench/train_bench.py --steps 10 --repeat 3

Both trainers get the same tiny random Qwen2.5-VL (built offline), the same prompts (the colour
task of the learning test: a solid-colour image and "Colour?"), the same reward (the `mcq` verifier,
scored in-process), and the same shape of step: 8 prompts × 4 completions, 64 new tokens at
temperature 1, one on-policy optimizer step over all 32 completions in one micro-batch, loss
token-mean (TRL's "dapo"), clip 0.2/0.28, no KL, no vLLM, one torch thread. Each variant runs in
its own child process; runs alternate (ours, TRL, ours, ...). A run does `--warmup` steps, then
times `--steps` more.

Reported per variant: median seconds per step (wall time between step ends), the stage breakdown
(ours: from the loop's timers; TRL: generation timed around `_generate_single_turn`, rewards around
`_calculate_rewards`, the rest is scoring glue + update), rollout tokens/s (completion tokens per
second of generation) and update tokens/s (prompt + completion tokens per second of the rest), and
the child's peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(work: Path) -> tuple[Path, Path]:
    """The colour dataset and the tiny model folder, built once for every child."""
    from tests.triune_train._loop_testkit import build_colours
    from triune_train.models.tiny import TinySpec, build_tiny

    data = build_colours(work / "colours", train=32, test=4)
    model = build_tiny(TinySpec(family="qwen2_5_vl", seed=0), work / "model")
    return data, model


# ----------------------------------------------------------------------------------------------
# Children


def run_ours(args: argparse.Namespace, data: Path, model: Path, out: Path) -> dict[str, Any]:
    from tests.triune_train._loop_testkit import train_config
    from triune_train.loop import train

    total = args.warmup + args.steps
    cfg = train_config(
        data,
        total_steps=total,
        threads=args.threads,
        model={"path": str(model)},
        data={"prompts_per_step": args.prompts, "max_prompt_tokens": 512},
        rollout={"n": args.n, "max_new_tokens": args.new_tokens, "batch_size": args.prompts * args.n},
        algorithm={"loss_agg": "token-mean", "clip_low": 0.2, "clip_high": 0.28},
        optim={"lr": 1e-6, "weight_decay": 0.0, "micro_batch_size": args.prompts * args.n, "grad_clip": 1.0},
        logging={"samples_every": 0, "layer_grad_norms": False},
    )
    ends: list[float] = []
    rows: list[dict[str, float]] = []

    def tick(step: int, metrics: dict[str, float]) -> bool:
        ends.append(time.perf_counter())
        rows.append(metrics)
        return step == total  # stop there: no final eval; the final checkpoint is written after the last tick

    start = time.perf_counter()
    train(cfg, out / "run", stop=tick, echo=None)
    timed = rows[args.warmup :]
    stages = {
        k.removeprefix("timing/"): statistics.median(r[k] for r in timed)
        for k in timed[0]
        if k.startswith("timing/")
    }
    rollout_s = sum(r["timing/rollout"] for r in timed)
    rest_s = sum(r["timing/step"] - r["timing/rollout"] for r in timed)
    completion_tokens = sum(r["perf/completion_tokens"] for r in timed)
    prompt_tokens = args.prompts * args.n * prompt_length(data, model) * len(timed)
    return {
        "step_s": step_times([start, *ends], args.warmup),
        "stages_s": stages,
        "rollout_tokens_per_s": completion_tokens / rollout_s,
        "update_tokens_per_s": (prompt_tokens + completion_tokens) / rest_s,
        "completion_tokens_per_step": completion_tokens / len(timed),
    }


def prompt_length(data: Path, model: Path) -> int:
    from triune_train.data import TrainStream
    from triune_train.models.loading import load_policy
    from triune_train.prompts import build_prompt

    sample = TrainStream(data).next_batch(1)[0]
    prompt = build_prompt(sample, load_policy(str(model)), max_prompt_tokens=512)
    return prompt.num_tokens  # type: ignore[union-attr]


def run_trl(args: argparse.Namespace, data: Path, model_dir: Path, out: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from triune_data.verifiers import score_item_for
    from triune_train.data import TrainStream
    from triune_train.models.loading import load_policy
    from triune_train.prompts import decode_images
    from triune_train.rewards.client import InProcessBackend

    policy = load_policy(str(model_dir))
    samples = TrainStream(data, shuffle=False).next_batch(TrainStream(data).num_rows)
    by_id = {s.id: s for s in samples}
    rows = [
        {
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s.prompt[-1].content.replace("<image>", "")}]}],
            "image": decode_images(s)[0],
            "sample_id": s.id,
        }
        for s in samples
    ]  # fmt: skip
    dataset = Dataset.from_list(rows)
    backend = InProcessBackend()

    def mcq_reward(prompts: list, completions: list, sample_id: list[str], **_: Any) -> list[float]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        items = [score_item_for(by_id[i], t) for i, t in zip(sample_id, texts, strict=True)]
        return [r.reward for r in backend.score(items)]

    total = args.warmup + args.steps
    config = GRPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=args.prompts * args.n,
        gradient_accumulation_steps=1,
        num_generations=args.n,
        max_completion_length=args.new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=1e-6,
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        scale_rewards="group",
        num_iterations=1,
        max_steps=total,
        use_vllm=False,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=policy.model, reward_funcs=[mcq_reward], args=config, train_dataset=dataset,  # type: ignore[list-item]
        processing_class=policy.processor,
    )  # fmt: skip
    stages: dict[str, list[float]] = {"rollout": [], "reward": []}
    tokens: list[int] = []

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            result = fn(*a, **k)
            stages[name].append(time.perf_counter() - t0)
            if name == "rollout":
                completion_ids = result[0] if isinstance(result, tuple) else result
                tokens.append(sum(len(c) for c in completion_ids))
            return result

        return wrapper

    trainer._generate_single_turn = timed("rollout", trainer._generate_single_turn)  # type: ignore[method-assign]
    trainer._calculate_rewards = timed("reward", trainer._calculate_rewards)  # type: ignore[method-assign]
    ends: list[float] = []

    class Tick(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            ends.append(time.perf_counter())

    trainer.add_callback(Tick())
    start = time.perf_counter()
    trainer.train()
    steps = step_times([start, *ends], args.warmup)
    rollout = stages["rollout"][args.warmup :]
    reward = stages["reward"][args.warmup :]
    plen = prompt_length(data, model_dir)
    completion_tokens = sum(tokens[args.warmup :])
    rest = sum(steps) - sum(rollout)
    torch.set_num_threads(args.threads)
    return {
        "step_s": steps,
        "stages_s": {
            "rollout": statistics.median(rollout),
            "reward": statistics.median(reward),
            "rest (scoring glue, update)": statistics.median(steps)
            - statistics.median(rollout)
            - statistics.median(reward),
        },
        "rollout_tokens_per_s": completion_tokens / sum(rollout),
        "update_tokens_per_s": (args.prompts * args.n * plen * len(rollout) + completion_tokens) / rest,
        "completion_tokens_per_step": completion_tokens / len(rollout),
    }


def step_times(stamps: list[float], warmup: int) -> list[float]:
    return [b - a for a, b in itertools.pairwise(stamps)][warmup:]


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{args.child}-"))
    fn = run_ours if args.child == "ours" else run_trl
    result = fn(args, Path(args.data), Path(args.model), out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------------------------
# Parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--repeat", type=int, default=3, help="runs per variant, alternating")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--n", type=int, default=4, help="completions per prompt")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    data, model = setup(work)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
    for _ in range(args.repeat):
        for variant in ("ours", "trl"):
            cmd = [sys.executable, __file__, "--child", variant, "--data", str(data), "--model", str(model)]
            for flag in ("steps", "warmup", "prompts", "n", "new_tokens", "threads"):
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads),
                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{variant} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
            runs[variant].append(json.loads(line[7:]))
            r = runs[variant][-1]
            print(
                f"{variant:5s} median step {statistics.median(r['step_s']):.3f} s  peak {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\n{args.prompts} prompts × {args.n} completions, {args.new_tokens} new tokens, {args.threads} thread(s), "
          f"{args.steps} timed steps × {args.repeat} runs\n")  # fmt: skip
    print(
        "| trainer | s / step (median of runs) | every run | rollout tok/s | update tok/s | completion tok/step | peak RSS MB |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    med = {}
    for name, label in (("ours", "triune `train`"), ("trl", "TRL `GRPOTrainer`")):
        per_run = [statistics.median(r["step_s"]) for r in runs[name]]
        med[name] = statistics.median(per_run)
        last = runs[name]
        print(
            f"| {label} | {med[name]:.3f} | {', '.join(f'{x:.3f}' for x in per_run)} | "
            f"{statistics.median(r['rollout_tokens_per_s'] for r in last):.0f} | "
            f"{statistics.median(r['update_tokens_per_s'] for r in last):.0f} | "
            f"{statistics.median(r['completion_tokens_per_step'] for r in last):.0f} | "
            f"{max(r['peak_rss_mb'] for r in last):.0f} |"
        )
    print(f"\nratio ours / TRL: {med['ours'] / med['trl']:.2f}\n")
    for name in ("ours", "trl"):
        stages = runs[name][len(runs[name]) // 2]["stages_s"]
        print(
            f"{name} stages (s, median step of the middle run): "
            + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
        )


if __name__ == "__main__":
    main()
