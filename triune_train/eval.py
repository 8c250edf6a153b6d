"""Evaluation, and the reward plumbing it shares with the training loop.

`score_rollouts` turns rollouts into reward items (the sample's verifier, params and ground truth;
the training step; the stored image size and the size the model saw; for box verifiers the frame
the model family answers in), scores them on a reward backend and returns one `CompletionRecord`
per rollout. The loop and `evaluate` both use it, so a completion is scored the same way in both.

`evaluate` samples completions for a list of samples — greedy with one sample (the paper's
validation), or K samples at a temperature for difficulty statistics — and scores
them at the end-of-training IoU threshold (``total_steps = 0``, as `triune score` does), so eval
curves are comparable across steps. `write_eval` writes:

- ``completions.jsonl``: ``{"id", "completions": [...], "model_input_size"}`` per sample, the file
  `triune filter` and `triune score --completions` read;
- ``results.jsonl``: one scored completion per line (id, index, data_source, reward, status, ...);
- ``summary.json``: the per-source metrics, skipped prompts and counts.

`eval_model` is `triune eval MODEL --data DIR --out OUT`: load, read the split, evaluate, write.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triune_data import atomic
from triune_data.coords import Frame
from triune_data.types import Sample
from triune_data.verifiers import RewardResult, ScoreItem, score_item_for
from triune_train.metrics import CompletionRecord, completion_metrics, source_key
from triune_train.prompts import build_prompt
from triune_train.rewards.client import RewardBackend
from triune_train.rollout.base import Engine, PromptInputs, Rollout, SamplingParams, Skip

# ----------------------------------------------------------------------------------------------
# Rewards


def reward_item(
    prompt: PromptInputs, completion: str, *, step: int, total_steps: int, model_frame: Frame
) -> ScoreItem:
    """The reward item for one completion of `prompt` (the one place the trainer builds items).

    `score_item_for` with the size of the first image as the model saw it (the processor's result)
    and the frame the model family writes boxes in, so box verifiers read the completion's boxes in
    that frame and compare them with the stored-pixel gold boxes.
    """
    size = prompt.model_input_sizes[0] if prompt.model_input_sizes else None
    return score_item_for(
        prompt.sample,
        completion,
        step=step,
        total_steps=total_steps,
        model_input_size=None if size is None else (float(size[0]), float(size[1])),
        model_frame=model_frame,
    )


def score_rollouts(
    backend: RewardBackend,
    prompts: Sequence[PromptInputs],
    rollouts: Sequence[Rollout],
    *,
    step: int,
    total_steps: int,
    model_frame: Frame,
) -> tuple[list[RewardResult], list[CompletionRecord]]:
    """Score every rollout with its sample's verifier; one result and one record per rollout."""
    items = [
        reward_item(
            prompts[r.prompt_index], r.text, step=step, total_steps=total_steps, model_frame=model_frame
        )
        for r in rollouts
    ]
    results = backend.score(items) if items else []
    records = [
        CompletionRecord(
            data_source=prompts[r.prompt_index].sample.data_source,
            task=prompts[r.prompt_index].sample.task,
            verifier=prompts[r.prompt_index].sample.reward.verifier,
            status=res.status,
            reward=res.reward,
            accuracy=res.accuracy,
            format=res.format,
            components=dict(res.components),
            response_tokens=r.num_tokens,
            truncated=r.truncated,
            text=r.text,
            group=r.prompt_index,
            neutralized=r.neutralized,
            sample_id=prompts[r.prompt_index].sample.id,
            prediction=res.prediction,
        )
        for r, res in zip(rollouts, results, strict=True)
    ]
    return results, records


def build_prompts(
    samples: Sequence[Sample], policy: Any, *, max_prompt_tokens: int
) -> tuple[list[PromptInputs], Counter[tuple[str, str]]]:
    """Prompts for the samples that fit, and skip counts by (data_source, reason)."""
    prompts: list[PromptInputs] = []
    skipped: Counter[tuple[str, str]] = Counter()
    for s in samples:
        p = build_prompt(s, policy, max_prompt_tokens=max_prompt_tokens)
        if isinstance(p, Skip):
            skipped[(s.data_source, p.reason)] += 1
        else:
            prompts.append(p)
    return prompts, skipped


def skip_metrics(skipped: Counter[tuple[str, str]], *, split: str) -> dict[str, float]:
    """``{split}/{source}/skipped_{reason}`` counts."""
    return {
        f"{split}/{source_key(s)}/skipped_{reason}": float(n) for (s, reason), n in sorted(skipped.items())
    }


# ----------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class EvalOutput:
    """What one evaluation produced: records (prompt-major), metrics and the rows written to files."""

    split: str
    prompts: list[PromptInputs]
    rollouts: list[Rollout]
    records: list[CompletionRecord]
    metrics: dict[str, float]
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)


def evaluate(
    policy: Any,
    engine: Engine,
    samples: Sequence[Sample],
    backend: RewardBackend,
    *,
    split: str = "test",
    num_samples: int = 1,
    max_new_tokens: int,
    temperature: float = 1.0,
    batch_size: int = 32,
    max_prompt_tokens: int,
    seed: int = 0,
) -> EvalOutput:
    """Complete and score `samples`: greedy with one sample, else `num_samples` at `temperature`."""
    prompts, skipped = build_prompts(samples, policy, max_prompt_tokens=max_prompt_tokens)
    params = SamplingParams(
        n=num_samples,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        greedy=num_samples == 1,
        seed=seed,
    )
    rollouts: list[Rollout] = []
    for start in range(0, len(prompts), batch_size):
        batch = engine.generate(prompts[start : start + batch_size], params)
        rollouts += [_shift(r, start) for r in batch]
    _, records = score_rollouts(
        backend, prompts, rollouts, step=0, total_steps=0, model_frame=policy.family.box_frame
    )
    metrics = completion_metrics(records, split=split) | skip_metrics(skipped, split=split)
    return EvalOutput(split, prompts, rollouts, records, metrics, skipped)


def _shift(r: Rollout, offset: int) -> Rollout:
    """A rollout of a batch that starts at prompt `offset`, re-indexed into the whole prompt list."""
    return dataclasses.replace(r, prompt_index=r.prompt_index + offset)


def write_eval(out: str | Path, result: EvalOutput) -> dict[str, Any]:
    """Write completions.jsonl, results.jsonl and summary.json under `out`; return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_prompt: dict[int, list[Rollout]] = {}
    for r in result.rollouts:
        by_prompt.setdefault(r.prompt_index, []).append(r)
    lines = []
    for i, p in enumerate(result.prompts):
        row: dict[str, Any] = {"id": p.sample.id, "completions": [r.text for r in by_prompt.get(i, [])]}
        row["data_source"] = p.sample.data_source
        if p.model_input_sizes:
            row["model_input_size"] = list(p.model_input_sizes[0])
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic.write_bytes(out / "completions.jsonl", "".join(f"{line}\n" for line in lines).encode())
    index: Counter[int] = Counter()
    results = []
    for rec in result.records:
        results.append(
            {
                "id": rec.sample_id,
                "index": index[rec.group],
                "data_source": rec.data_source,
                "verifier": rec.verifier,
                "status": rec.status,
                "reward": rec.reward,
                "accuracy": rec.accuracy,
                "format": rec.format,
                "components": rec.components,
                "prediction": rec.prediction,
                "response_tokens": rec.response_tokens,
                "truncated": rec.truncated,
            }
        )
        index[rec.group] += 1
    atomic.write_bytes(
        out / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results).encode()
    )
    summary = {
        "split": result.split,
        "prompts": len(result.prompts),
        "completions": len(result.records),
        "skipped": {f"{s}/{reason}": n for (s, reason), n in sorted(result.skipped.items())},
        "by_source": per_source_table(result.metrics, split=result.split),
        "metrics": result.metrics,
    }
    atomic.write_json(out / "summary.json", summary)
    return summary


TABLE_METRICS = ("count", "reward", "accuracy", "format", "truncation_ratio", "error_rate", "timeout_rate")


def per_source_table(metrics: dict[str, float], *, split: str) -> dict[str, dict[str, float]]:
    """``{source: {metric: value}}`` for the table metrics, sources sorted, "all" last."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == split and parts[2] in TABLE_METRICS:
            table.setdefault(parts[1], {})[parts[2]] = value
    return {k: table[k] for k in sorted(table, key=lambda s: (s == "all", s))}


def eval_model(
    model: str,
    data: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    num_samples: int = 1,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    max_prompt_tokens: int = 4096,
    max_per_source: int | None = None,
    batch_size: int = 32,
    server_urls: Sequence[str] = (),
    workers: int = 0,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """`triune eval`: evaluate a model folder, Hub id or ``tiny:<family>`` on a split; write under `out`."""
    import torch

    from triune_train.data import read_split
    from triune_train.models.loading import load_policy
    from triune_train.rewards.client import make_backend
    from triune_train.rollout.hf import HFEngine

    samples = read_split(data, split, max_per_source=max_per_source)  # a missing dataset fails before loading
    dev = (
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    policy = load_policy(model, tiny_dir=Path(out) / "base_model", seed=seed, device=dev)
    backend = make_backend(list(server_urls), workers)
    try:
        result = evaluate(
            policy,
            HFEngine(policy),
            samples,
            backend,
            split=split,
            num_samples=num_samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
            max_prompt_tokens=max_prompt_tokens,
            seed=seed,
        )
    finally:
        backend.close()
    return write_eval(out, result)


__all__ = [
    "EvalOutput",
    "build_prompts",
    "eval_model",
    "evaluate",
    "per_source_table",
    "reward_item",
    "score_rollouts",
    "skip_metrics",
    "write_eval",
]
