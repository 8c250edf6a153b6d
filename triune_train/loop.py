"""GRPO training of a vision-language model, readable top to bottom: `train(cfg, out)`.

One step, each stage timed (``timing/<stage>`` in the metrics):

1. data       the next ``data.prompts_per_step`` samples of the mixed, shuffled stream (`TrainStream`)
2. prompts    the chat template and ONE processor call per sample; prompts over the token budget
              (or with an unreadable image, ...) are skipped and counted per data_source, never
              truncated, and replaced by the next samples of the stream (`draw_prompts`; at most
              ``data.max_replacement_draws`` a step) so that the step keeps its prompts_per_step
3. rollout    ``rollout.n`` completions per prompt from the engine, vision placeholder tokens banned
              while sampling and neutralised afterwards, sampled with a seed derived from (seed, step)
4. reward     every completion scored by its sample's verifier on the reward backend, with step and
              total_steps (the dynamic IoU schedule), the stored image size, the size the model saw
              and the box frame of the model family
5. advantage  (r − group mean) / (group std + eps) over the rows whose reward is ok; rows scored
              error / timeout / not_applicable are masked out of the advantage and the loss, and
              counted, never scored 0
6. update     ``algorithm.epochs`` × ``algorithm.mini_batches`` AdamW steps (1 × 1: on-policy, the
              paper's setting); gradients accumulate over micro-batches whose losses are divided by
              the whole mini-batch's token count; a non-finite grad norm skips the step (counted);
              the grad norm is clipped; per-layer grad norms are logged
7. log        per-source metrics (`metrics.completion_metrics`) and global ones to RUN/metrics.jsonl
              and TensorBoard, completions per source every ``logging.samples_every`` steps
8. eval / checkpoint every N steps

Deliberate differences from V-Triune's released trainer (docs/training.md):
the token-mean is over the whole mini-batch, not per micro-batch; failed rewards are masked, not
0; a group with fewer than two scored rows has advantage 0; a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import math
import random
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from triune_data.errors import DatasetError, TriuneError, UnknownVerifierError
from triune_data.schema import row_to_sample
from triune_data.verifiers import score_item_for
from triune_train.checkpoint import POLICY, latest_checkpoint, load_checkpoint, prepare_run, save_checkpoint
from triune_train.config import TrainConfig
from triune_train.data import TrainStream, read_split
from triune_train.eval import build_prompts, evaluate, score_rollouts, skip_metrics, write_eval
from triune_train.grpo import advantage_stats
from triune_train.metrics import MetricsLogger, completion_metrics, sample_completions
from triune_train.models.freeze import freeze, param_groups
from triune_train.models.loading import Policy, load_policy
from triune_train.prompts import PROMPT_TOO_LONG, build_prompt
from triune_train.rewards.client import RewardBackend, make_backend
from triune_train.rewards.protocol import RewardServiceError
from triune_train.rollout.base import Engine, PromptInputs, Rollout, SamplingParams, Skip
from triune_train.update import ScoredBatch, grpo_update, lr_schedule, score_batch

FAILED = ("error", "timeout")
PROMPT_CHECK_PER_SOURCE = 4  # prompts per data_source built before training to check the budget


class RewardFailure(TriuneError):
    """Too many rewards of a step failed (a reward service that went away, a broken verifier)."""


@dataclass
class TrainResult:
    run: Path
    step: int  # the last completed step
    stopped_early: bool
    metrics: dict[str, float]  # the last step's
    checkpoint: Path | None


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    stop: Callable[[int, dict[str, float]], bool] | None = None,
    echo: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train `cfg` into the run directory `out` (or continue it with `resume`).

    `stop(step, metrics)`, if given, is asked after every step; True ends training there (a final
    checkpoint is written). `echo` receives one line per step (None: silent).
    """
    say = echo or (lambda _: None)

    # ---- Setup. Everything a user can get wrong fails here, in one line, before any rollout.
    resume_from = prepare_run(out, cfg, resume=resume)  # refuses a changed recipe or total_steps
    run = Path(out)
    _seed_everything(cfg)
    stream = TrainStream(
        cfg.data.path,
        split=cfg.data.split,
        seed=cfg.seed,
        mix_by=cfg.data.mix.by,
        weights=cfg.data.mix.weights,
        shuffle=cfg.data.shuffle,
    )
    eval_samples = _eval_samples(cfg)  # a missing test split fails now, not at the first eval
    backend = _reward_backend(cfg)
    logger: MetricsLogger | None = None
    try:
        _check_verifiers(stream, backend)  # every verifier of the data is known to the backend
        policy = load_policy(  # a model without a vision tower fails here, before its weights load
            str(resume_from / POLICY) if resume_from else cfg.model.path,
            tiny_dir=run / "base_model",
            seed=cfg.model.seed,
            tiny_overrides=cfg.model.tiny,
            dtype=getattr(torch, cfg.model.dtype),
            device=_device(cfg.device),
        )
        params = freeze(
            policy.model,
            policy.family,
            vision="vision" in cfg.model.freeze,
            connector="connector" in cfg.model.freeze,
        )
        say(f"parameters: {params.total_trainable:,} trainable, {params.total_frozen:,} frozen")
        if cfg.model.gradient_checkpointing:
            policy.model.gradient_checkpointing_enable()
        reference = _reference_model(cfg, run) if cfg.algorithm.kl_coef > 0 else None
        _check_prompts(stream, policy, cfg.data.max_prompt_tokens)  # a source whose prompts never fit
        engine = _engine(cfg, policy)
        optimizer, scheduler = _optimizer(cfg, policy)

        start, counters = 0, Counter[str]()
        if resume_from is not None:
            state = load_checkpoint(resume_from, optimizer=optimizer, scheduler=scheduler)  # and RNG states
            stream.load_state_dict(state["data"])
            start, counters = int(state["step"]), Counter(state["counters"])
            say(f"resuming {run} from {resume_from.name}")
        logger = MetricsLogger(
            run,
            tensorboard=cfg.logging.tensorboard,
            wandb=cfg.logging.wandb,
            resume_step=(start + 1 if start else 0) if resume else None,  # drops the lines redone now
        )
        sampling = SamplingParams(
            n=cfg.rollout.n,
            max_new_tokens=cfg.rollout.max_new_tokens,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=cfg.rollout.top_k,
        )

        def evaluate_and_log(step: int) -> None:
            t0 = time.perf_counter()
            result = evaluate(
                policy,
                engine,
                eval_samples,
                backend,
                split=cfg.eval.split,
                max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
                batch_size=cfg.eval.batch_size,
                max_prompt_tokens=cfg.data.max_prompt_tokens,
                seed=cfg.seed,
            )
            write_eval(run / "eval" / f"step-{step:06d}", result)
            logger.log(step, {**result.metrics, "timing/eval": time.perf_counter() - t0})
            mean = result.metrics.get(f"{cfg.eval.split}/all/reward", math.nan)
            say(
                f"eval  step {step}: {cfg.eval.split} reward {mean:.3f} over {len(result.records)} completions"
            )

        def checkpoint(step: int) -> None:
            t0 = time.perf_counter()
            state = {"total_steps": cfg.total_steps, "config_hash": cfg.hash, "data": stream.state_dict(),
                     "counters": dict(counters)}  # fmt: skip
            path = save_checkpoint(run, step, model=policy.model, processor=policy.processor, optimizer=optimizer,
                                   scheduler=scheduler, state=state, keep=cfg.checkpoint.keep)  # fmt: skip
            logger.log(step, {"timing/checkpoint": time.perf_counter() - t0})
            say(f"saved {path}")

        if start == 0 and eval_samples and cfg.eval.before_train:
            evaluate_and_log(0)

        # ---- The loop: data → prompts → rollouts → rewards → advantages → update → log.
        metrics: dict[str, float] = {}
        step, stopped = start, False
        for step in range(start + 1, cfg.total_steps + 1):
            timer = StageTimer()
            prompts, skipped, replacements = draw_prompts(stream, policy, cfg, timer)  # skips replaced
            with timer("rollout"):
                seeded = dataclasses.replace(sampling, seed=step_seed(cfg.seed, step))  # resumable sampling
                rollouts = engine.generate(prompts, seeded) if prompts else []
            with timer("reward"):
                results, records = score_rollouts(
                    backend,
                    prompts,
                    rollouts,
                    step=step,
                    total_steps=cfg.total_steps,
                    model_frame=policy.family.box_frame,
                )
                _stop_if_rewards_failed(results, step, cfg, run)  # e.g. the reward service went away
            with timer("advantage"):
                batch = score_batch(cfg, prompts, rollouts, results)
            with timer("update"):
                update = grpo_update(
                    policy,
                    reference,
                    prompts,
                    rollouts,
                    batch,
                    optimizer,
                    cfg,
                    seed=step_seed(cfg.seed, step),
                )
                scheduler.step()
            with timer("sync"):
                engine.sync_weights(policy.model)

            counters["skipped_updates"] += int(update.pop("skipped_updates"))
            counters["masked_rewards"] += int((~batch.valid).sum())
            counters["skipped_prompts"] += sum(skipped.values())
            counters["replacement_draws"] += replacements
            counters["completion_tokens"] += sum(r.num_tokens for r in rollouts)
            metrics = {
                **completion_metrics(records, split="train"),  # per data_source
                **skip_metrics(skipped, split="train"),
                **{k if "/" in k else f"actor/{k}": v for k, v in update.items()},  # layer_grad_norm/* as is
                **{f"advantage/{k}": v for k, v in advantage_stats(batch.rewards, batch.group, batch.valid, batch.advantages).items()},
                **{f"timing/{k}": v for k, v in timer.times.items()},
                **_throughput(timer, prompts, rollouts, batch, cfg),
                **{f"counters/{k}": float(v) for k, v in counters.items()},
                **params.as_metrics(),
                "actor/lr": float(scheduler.get_last_lr()[0]),
                "data/epoch": stream.epoch,
                "data/replacement_draws": float(replacements),
            }  # fmt: skip
            logger.log(step, metrics)
            if cfg.logging.samples_every and step % cfg.logging.samples_every == 0:
                picked = sample_completions(
                    records, per_source=cfg.logging.samples_per_source, seed=cfg.seed, step=step
                )
                logger.log_samples(step, picked)
            if cfg.logging.console:
                say(_console_line(step, cfg.total_steps, metrics, timer))

            stopped = stop is not None and bool(stop(step, metrics))
            last = stopped or step == cfg.total_steps
            if eval_samples and ((cfg.eval.every and step % cfg.eval.every == 0) or last):
                evaluate_and_log(step)
            if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or last:
                checkpoint(step)
            if stopped:
                break
        return TrainResult(run, step, stopped, metrics, latest_checkpoint(run))
    finally:
        if logger is not None:
            logger.close()
        backend.close()


# ----------------------------------------------------------------------------------------------
# Setup helpers and checks


def draw_prompts(
    stream: TrainStream, policy: Policy, cfg: TrainConfig, timer: StageTimer
) -> tuple[list[PromptInputs], Counter[tuple[str, str]], int]:
    """A step's prompts: `data.prompts_per_step` samples of the stream, each one that cannot become
    a prompt counted by (data_source, reason) and replaced by the next sample of the stream, at most
    `data.max_replacement_draws` times (past that the step runs with fewer prompts).

    Returns the prompts (first draws in stream order, then the replacements), the skip counts and
    the number of replacement draws. Every draw advances the stream, so resume stays exact.
    """
    n = cfg.data.prompts_per_step
    budget = n if cfg.data.max_replacement_draws is None else cfg.data.max_replacement_draws
    prompts: list[PromptInputs] = []
    skipped: Counter[tuple[str, str]] = Counter()
    want, replacements = n, 0
    while want:
        with timer("data"):
            samples = stream.next_batch(want)
        with timer("prompts"):
            built, skips = build_prompts(samples, policy, max_prompt_tokens=cfg.data.max_prompt_tokens)
        prompts += built
        skipped += skips
        want = min(n - len(prompts), budget - replacements)
        replacements += want
    return prompts, skipped, replacements


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of `step`: rollouts depend on (seed, step) only, so a resumed run is exact."""
    return (seed * 1_000_003 + step) % (2**63)


def _seed_everything(cfg: TrainConfig) -> None:
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TriuneError("device: cuda, but no CUDA device is available (use device: auto or cpu)")
    return torch.device(name)


def _eval_samples(cfg: TrainConfig) -> list[Any]:
    """The evaluation samples (checked now: a missing test split fails before training)."""
    if not (cfg.eval.every or cfg.eval.before_train):
        return []
    return read_split(
        cfg.eval.path or cfg.data.path, cfg.eval.split, max_per_source=cfg.eval.max_samples_per_source
    )


def _check_verifiers(stream: TrainStream, backend: RewardBackend) -> None:
    """Score an empty completion for one sample of every verifier in the training data: a verifier
    the backend does not know, or a backend that cannot be reached, fails now in one line."""
    first: dict[str, int] = {}
    rows = [i for rows in stream.groups.values() for i in rows]
    specs = stream.reader.column("reward")
    for i in sorted(rows):
        first.setdefault(specs[i]["verifier"], i)
    samples = [row_to_sample(r) for r in stream.reader.rows(list(first.values()))]
    results = backend.score([score_item_for(s, "") for s in samples])
    for s, r in zip(samples, results, strict=True):
        if r.status == "error" and "unknown verifier" in r.message:
            raise UnknownVerifierError(
                f"data_source {s.data_source!r}: the reward backend does not know its verifier: {r.message}"
            )
    if results and all(r.status in FAILED for r in results):
        raise RewardServiceError(f"the reward backend cannot score: {results[0].message}")


def _check_prompts(stream: TrainStream, policy: Policy, max_prompt_tokens: int) -> None:
    """Build the first prompts of every data_source: a source none of whose prompts fits the
    budget fails now, in one line (single over-long prompts are skipped and counted in training)."""
    sources = stream.reader.column("data_source")
    picks: dict[str, list[int]] = {}
    for i in sorted(i for rows in stream.groups.values() for i in rows):
        if len(picks.setdefault(sources[i], [])) < PROMPT_CHECK_PER_SOURCE:
            picks[sources[i]].append(i)
    for source, rows in picks.items():
        built = [
            build_prompt(row_to_sample(r), policy, max_prompt_tokens=max_prompt_tokens)
            for r in stream.reader.rows(rows)
        ]
        too_long = [p for p in built if isinstance(p, Skip) and p.reason == PROMPT_TOO_LONG]
        if len(too_long) == len(built):
            raise DatasetError(
                f"data_source {source!r}: prompts exceed data.max_prompt_tokens ({too_long[0].detail}); "
                "raise the budget or lower the image resolution"
            )


def _reference_model(cfg: TrainConfig, run: Path) -> Any:
    """The frozen initial policy, for the KL term."""
    ref = load_policy(
        cfg.model.path,
        tiny_dir=run / "base_model",
        seed=cfg.model.seed,
        tiny_overrides=cfg.model.tiny,
        dtype=getattr(torch, cfg.model.dtype),
        device=_device(cfg.device),
    ).model
    ref.eval()
    ref.requires_grad_(False)
    return ref


def _reward_backend(cfg: TrainConfig) -> RewardBackend:
    r = cfg.reward
    if r.servers:
        return make_backend(r.servers, timeout_s=r.timeout_s, retries=r.retries)
    return make_backend(None, r.workers, timeout_s=r.timeout_s, preload=r.preload)


def _optimizer(cfg: TrainConfig, policy: Policy) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the trainable parts, one group each with its learning rate; the lr schedule."""
    o = cfg.optim
    groups = param_groups(
        policy.model,
        policy.family,
        lr=o.lr,
        vision_lr=o.module_lr.get("vision"),
        connector_lr=o.module_lr.get("connector"),
        weight_decay=o.weight_decay,
    )
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(o, cfg.total_steps))


def _engine(cfg: TrainConfig, policy: Policy) -> Engine:
    if cfg.rollout.engine == "vllm":
        from triune_train.rollout.vllm import VLLMEngine  # GPU only; imported when asked for

        return VLLMEngine(policy, **cfg.rollout.engine_options)
    from triune_train.rollout.hf import HFEngine

    return HFEngine(policy, max_batch_size=cfg.rollout.batch_size, **cfg.rollout.engine_options)


def _stop_if_rewards_failed(results: Sequence[Any], step: int, cfg: TrainConfig, run: Path) -> None:
    """Raise `RewardFailure` when more than `reward.max_error_fraction` of a step's rewards failed:
    the client has already retried; the update is not made, so the last checkpoint stays the truth."""
    failed = [r.message for r in results if r.status in FAILED]
    if results and len(failed) / len(results) > cfg.reward.max_error_fraction:
        last = latest_checkpoint(run)
        raise RewardFailure(
            f"step {step}: {len(failed)} of {len(results)} rewards failed ({failed[0]}); stopped before the "
            f"update. Last checkpoint: {last.name if last else 'none'}, intact; fix the reward backend and "
            "continue with --resume"
        )


# ----------------------------------------------------------------------------------------------
# Timing and throughput


@dataclass
class StageTimer:
    times: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t0
            self.times["step"] = time.perf_counter() - self.start


def _throughput(
    timer: StageTimer,
    prompts: Sequence[PromptInputs],
    rollouts: Sequence[Rollout],
    batch: ScoredBatch,
    cfg: TrainConfig,
) -> dict[str, float]:
    """Rollout tokens/s (completion tokens per second of generation), update tokens/s (prompt and
    completion tokens of the trained rows, times epochs, per second of update), peak memory."""
    t = timer.times
    completion_tokens = sum(r.num_tokens for r in rollouts)
    trained = batch.valid.nonzero().flatten().tolist()
    update_tokens = cfg.algorithm.epochs * sum(
        prompts[rollouts[i].prompt_index].num_tokens + rollouts[i].num_tokens for i in trained
    )
    out = {
        "perf/rollout_tokens_per_s": completion_tokens / t["rollout"] if t.get("rollout") else 0.0,
        "perf/update_tokens_per_s": update_tokens / t["update"] if t.get("update") else 0.0,
        "perf/completion_tokens": float(completion_tokens),
        "perf/prompts": float(len(prompts)),
        "perf/peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if torch.cuda.is_available():
        out["perf/peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _console_line(step: int, total: int, m: dict[str, float], timer: StageTimer) -> str:
    t = timer.times
    stages = ", ".join(f"{k} {t[k]:.2f}" for k in ("rollout", "reward", "update") if k in t)
    return (
        f"step {step}/{total}  reward {m.get('train/all/reward', math.nan):.3f}  "
        f"acc {m.get('train/all/accuracy', math.nan):.3f}  loss {m.get('actor/loss', math.nan):+.4f}  "
        f"gnorm {m.get('actor/grad_norm', math.nan):.3f}  {t.get('step', 0):.2f}s ({stages})"
    )


__all__ = ["RewardFailure", "TrainResult", "step_seed", "train"]
