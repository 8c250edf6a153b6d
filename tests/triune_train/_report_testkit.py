"""A realistic synthetic training run for report tests and the docs screenshot.

Synthetic *completions* (not metric values) go through the real path: `CompletionRecord`s →
`completion_metrics` → `MetricsLogger` → RUN/metrics.jsonl. Three sources behave as in the
paper's curves: binary math accuracy rising with longer responses and more
reflection; detection under the dynamic IoU threshold (0.85 → 0.95 → 0.99 at 10 % / 25 % of the
steps), whose accuracy drops at each tightening; OCR in between. Eval (split "test", one greedy
answer per prompt) every 10 steps.

    python tests/triune_train/_report_testkit.py OUT_DIR [STEPS]   # writes OUT_DIR/metrics.jsonl
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from triune_data.verifiers import Prediction
from triune_train.metrics import CompletionRecord, MetricsLogger, completion_metrics, sample_completions

SOURCES = ("mmk12_math", "v3det_detection", "estvqa_ocr")
MAX_TOKENS = 512


def _tau(step: int, total: int) -> float:
    p = step / total
    return 0.85 if p <= 0.10 else 0.95 if p <= 0.25 else 0.99


def _record(
    rng: random.Random, source: str, step: int, total: int, group: int, skill: float
) -> CompletionRecord:
    p = step / total
    status = "ok"
    if source == "mmk12_math":
        status = "timeout" if rng.random() < 0.01 else "error" if rng.random() < 0.003 else "ok"
        reflect = rng.random() < 0.06 + 0.08 * p
        acc = float(rng.random() < min(0.95, skill + (0.08 if reflect else 0.0)))
        length = int(rng.gauss(320 + 120 * p + (60 if reflect else 0), 70))
        comps = {"predicted": float(rng.random() < 0.97)}
        text = ("Wait, let me re-check. " if reflect else "") + f"Step by step... \\boxed{{{int(acc)}}}"
        prediction: Prediction = str(int(acc))
        verifier = "math"
    elif source == "v3det_detection":
        tau = _tau(step, total)
        n_gt = rng.randint(1, 4)
        quality = min(0.995, 0.80 + 0.17 * p + rng.gauss(0, 0.03) + (skill - 0.5) * 0.05)
        ious = [min(1.0, max(0.0, rng.gauss(quality, 0.04))) for _ in range(n_gt)]
        n_pred = max(0, n_gt + rng.choice((-1, 0, 0, 0, 1)))
        matched = [v for v in ious[:n_pred] if v >= tau]
        mean_iou = sum(matched) / n_gt
        completeness = (
            1 - ((n_gt - len(matched)) / n_gt + ((n_pred - len(matched)) / n_pred if n_pred else 1)) / 2
        )
        penalty = 0.6 ** abs(n_pred - n_gt)
        acc = penalty * (0.7 * mean_iou + 0.3 * completeness)
        comps = {
            "tau": tau,
            "iou": acc,
            "mean_iou": mean_iou,
            "map": max(0.0, acc - 0.1),
            "size_penalty": penalty,
        }
        for t in (50, 75, 95, 99):
            hits = sum(1 for v in ious[:n_pred] if v >= t / 100)
            comps[f"precision{t}"] = hits / n_pred if n_pred else 0.0
            comps[f"recall{t}"] = hits / n_gt
        length = int(rng.gauss(380 - 80 * p, 40))
        text = '<answer>[{"bbox_2d": [10, 20, 110, 140], "label": "cup"}]</answer>'
        prediction = [{"label": "cup", "bbox": [10.0, 20.0, 110.0, 140.0]}]
        verifier = "detection"
    else:
        acc = float(rng.random() < skill * 0.9)
        comps = {"exact": acc, "anls": max(acc, min(1.0, rng.random() * 0.8))}
        length = int(rng.gauss(220 + 50 * p, 40))
        reflect = rng.random() < 0.02 + 0.06 * p
        text = ("Let me verify the letters. " if reflect else "") + "<answer>STOP</answer>"
        prediction = "<stop>"  # as a hostile normaliser might leave it: data, not markup
        verifier = "ocr"
    length = max(8, length)
    truncated = length >= MAX_TOKENS
    fmt = float(rng.random() < 0.6 + 0.38 * p)
    reward = acc if status == "ok" else 0.0
    return CompletionRecord(
        data_source=source,
        task="perception" if source == "v3det_detection" else "reasoning",
        verifier=verifier,
        status=status,
        reward=(0.9 * reward + 0.1 * fmt) if source == "v3det_detection" else reward,
        accuracy=acc if status == "ok" else 0.0,
        format=fmt,
        components=comps if status == "ok" else {},
        response_tokens=min(length, MAX_TOKENS),
        truncated=truncated,
        text=text,
        group=group,
        neutralized=1 if rng.random() < 0.002 else 0,
        sample_id=f"{source}-{group:05d}",
        prediction=prediction,
    )


def make_synthetic_run(
    run_dir: str | Path, *, steps: int = 60, seed: int = 0, groups: int = 8, n: int = 8
) -> Path:
    """Write RUN/metrics.jsonl and RUN/samples.jsonl of a `steps`-step synthetic run; return RUN."""
    run = Path(run_dir)
    rng = random.Random(seed)
    with MetricsLogger(run, tensorboard=False) as log:
        for step in range(1, steps + 1):
            p = step / steps
            records = []
            for s_idx, source in enumerate(SOURCES):
                base = (0.30, 0.55, 0.45)[s_idx] + (0.35, 0.1, 0.25)[s_idx] * (1 - math.exp(-3 * p))
                for g in range(groups):
                    skill = min(0.97, max(0.02, base + rng.gauss(0, 0.2)))
                    gid = step * 1000 + s_idx * 100 + g
                    records += [_record(rng, source, step, steps, gid, skill) for _ in range(n)]
            metrics = completion_metrics(records, split="train")
            metrics.update(
                {
                    "actor/pg_loss": rng.gauss(0, 0.02),
                    "actor/clip_frac_low": abs(rng.gauss(0.002, 0.001)),
                    "actor/clip_frac_high": abs(rng.gauss(0.004, 0.002)),
                    "actor/entropy": 1.2 - 0.5 * p + rng.gauss(0, 0.03),
                    "actor/grad_norm": abs(rng.gauss(0.22, 0.04)),
                    "timing_s/rollout": abs(rng.gauss(41, 3)),
                    "timing_s/reward": abs(rng.gauss(2.5, 0.4)),
                    "timing_s/update": abs(rng.gauss(18, 1.5)),
                    "perf/rollout_tokens_s": abs(rng.gauss(5200, 300)),
                    **{f"layer_grad_norm/model.layers.{i}": abs(rng.gauss(0.04, 0.01)) for i in range(14)},
                }
            )
            log.log(step, metrics)
            if step % 10 == 0 or step == 1:
                log.log_samples(step, sample_completions(records, per_source=2, seed=seed, step=step))
            if step % 10 == 0 or step == 1:
                evals = []
                for s_idx, source in enumerate(SOURCES):
                    base = (0.35, 0.6, 0.5)[s_idx] + (0.3, 0.08, 0.2)[s_idx] * (1 - math.exp(-3 * p))
                    evals += [_record(rng, source, step, steps, -(i + 1), base) for i in range(32)]
                log.log(step, completion_metrics(evals, split="test"))
    return run


if __name__ == "__main__":
    out = make_synthetic_run(sys.argv[1], steps=int(sys.argv[2]) if len(sys.argv) > 2 else 60)
    print(out / "metrics.jsonl")
