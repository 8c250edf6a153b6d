"""GRPO training of a vision-language model, readable top to bottom: `train(cfg, out)`.

One step, each stage timed (``timing/<stage>`` in the metrics):

1. data       the next ``data.prompts_per_step`` samples of the mixed, shuffled stream (`TrainStream`)
2. prompts    the chat template and ONE processor call per sample; prompts over the token budget
              are skipped and counted per data_source, never truncated
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

Deliberate differences from V-Triune's released trainer (vtriune.md §5; docs/training.md):
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
from torch import Tensor

from triune_data.errors import DatasetError, TriuneError, UnknownVerifierError
from triune_data.schema import row_to_sample
from triune_train.checkpoint import POLICY, latest_checkpoint, load_checkpoint, prepare_run, save_checkpoint
from triune_train.config import OptimSection, TrainConfig
from triune_train.data import TrainStream, read_split
from triune_train.eval import build_prompts, evaluate, reward_item, score_rollouts, skip_metrics, write_eval
from triune_train.grpo import advantage_stats, group_advantages, merge_stats, policy_loss
from triune_train.logprobs import completion_logprobs
from triune_train.metrics import MetricsLogger, completion_metrics, sample_completions
from triune_train.models.freeze import freeze, param_groups
from triune_train.models.loading import Policy, load_policy
from triune_train.prompts import PROMPT_TOO_LONG, build_prompt
from triune_train.rewards.client import RewardBackend, make_backend
from triune_train.rewards.protocol import RewardServiceError
from triune_train.rollout.base import Engine, PromptInputs, Rollout, SamplingParams, Skip

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
    resume_from = prepare_run(out, cfg, resume=resume)
    run = Path(out)
    _seed_everything(cfg)
    device = _device(cfg.device)
    stream = TrainStream(
        cfg.data.path,
        split=cfg.data.split,
        seed=cfg.seed,
        mix_by=cfg.data.mix.by,
        weights=cfg.data.mix.weights,
        shuffle=cfg.data.shuffle,
    )
    eval_samples = _eval_samples(cfg)
    backend = make_backend(
        cfg.reward.servers,
        cfg.reward.workers,
        **(
            {"timeout_s": cfg.reward.timeout_s, "retries": cfg.reward.retries}
            if cfg.reward.servers
            else {"timeout_s": cfg.reward.timeout_s, "preload": cfg.reward.preload}
        ),
    )
    logger: MetricsLogger | None = None
    try:
        _check_verifiers(stream, backend)

        policy = load_policy(
            str(resume_from / POLICY) if resume_from else cfg.model.path,
            tiny_dir=run / "base_model",
            seed=cfg.model.seed,
            tiny_overrides=cfg.model.tiny,
            dtype=getattr(torch, cfg.model.dtype),
            device=device,
        )
        frozen = freeze(
            policy.model,
            policy.family,
            vision="vision" in cfg.model.freeze,
            connector="connector" in cfg.model.freeze,
        )
        if cfg.model.gradient_checkpointing:
            policy.model.gradient_checkpointing_enable()
        reference = _reference_model(cfg, run, device) if cfg.algorithm.kl_coef > 0 else None
        _check_prompts(stream, policy, cfg.data.max_prompt_tokens)
        engine = _engine(cfg, policy)
        optimizer = torch.optim.AdamW(
            param_groups(
                policy.model,
                policy.family,
                lr=cfg.optim.lr,
                vision_lr=cfg.optim.module_lr.get("vision"),
                connector_lr=cfg.optim.module_lr.get("connector"),
                weight_decay=cfg.optim.weight_decay,
            ),
            lr=cfg.optim.lr,
            betas=cfg.optim.betas,
            eps=cfg.optim.eps,
            weight_decay=cfg.optim.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(cfg.optim, cfg.total_steps))

        start, counters = 0, Counter[str]()
        if resume_from is not None:
            state = load_checkpoint(resume_from, optimizer=optimizer, scheduler=scheduler)
            stream.load_state_dict(state["data"])
            start, counters = int(state["step"]), Counter(state.get("counters", {}))
            say(f"resuming {run} from {resume_from.name}")
        logger = MetricsLogger(
            run,
            tensorboard=cfg.logging.tensorboard,
            wandb=cfg.logging.wandb,
            resume_step=(start + 1 if start else 0) if resume else None,
        )
        static = frozen.as_metrics()
        say(
            f"parameters: {frozen.total_trainable:,} trainable, {frozen.total_frozen:,} frozen ({', '.join(cfg.model.freeze) or 'nothing'})"
        )
        sampling = SamplingParams(
            n=cfg.rollout.n,
            max_new_tokens=cfg.rollout.max_new_tokens,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=cfg.rollout.top_k,
        )

        def run_eval(step: int) -> None:
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
            assert logger is not None
            logger.log(step, {**result.metrics, "timing/eval": time.perf_counter() - t0})
            mean = result.metrics.get(f"{cfg.eval.split}/all/reward", float("nan"))
            say(
                f"eval  step {step}: {cfg.eval.split} reward {mean:.3f} over {len(result.records)} completions"
            )

        def save(step: int) -> Path:
            return save_checkpoint(
                run,
                step,
                model=policy.model,
                processor=policy.processor,
                optimizer=optimizer,
                scheduler=scheduler,
                state={
                    "total_steps": cfg.total_steps,
                    "config_hash": cfg.hash,
                    "data": stream.state_dict(),
                    "counters": dict(counters),
                },
                keep=cfg.checkpoint.keep,
            )

        if start == 0 and eval_samples and cfg.eval.before_train:
            run_eval(0)

        # ---- The loop.
        metrics: dict[str, float] = {}
        step, stopped = start, False
        for step in range(start + 1, cfg.total_steps + 1):
            timer = StageTimer()
            with timer("data"):
                samples = stream.next_batch(cfg.data.prompts_per_step)
            with timer("prompts"):
                prompts, skipped = build_prompts(
                    samples, policy, max_prompt_tokens=cfg.data.max_prompt_tokens
                )
            with timer("rollout"):
                policy.model.eval()
                params = dataclasses.replace(sampling, seed=step_seed(cfg.seed, step))
                rollouts = engine.generate(prompts, params) if prompts else []
            with timer("reward"):
                results, records = score_rollouts(
                    backend,
                    prompts,
                    rollouts,
                    step=step,
                    total_steps=cfg.total_steps,
                    model_frame=policy.family.box_frame,
                )
                _stop_if_rewards_failed(
                    [r.status for r in results], [r.message for r in results], step, cfg, run
                )
            with timer("advantage"):
                batch = score_batch(cfg, prompts, rollouts, results)
            with timer("update"):
                update = grpo_update(policy, reference, prompts, rollouts, batch, optimizer, cfg, step=step)
            scheduler.step()
            with timer("sync"):
                engine.sync_weights(policy.model)

            counters["skipped_updates"] += int(update.pop("skipped_updates", 0))
            counters["masked_rewards"] += int((~batch.valid).sum())
            counters["skipped_prompts"] += sum(skipped.values())
            completion_tokens = sum(r.num_tokens for r in rollouts)
            counters["completion_tokens"] += completion_tokens
            metrics = {
                **completion_metrics(records, split="train"),
                **skip_metrics(skipped, split="train"),
                **{k if "/" in k else f"actor/{k}": v for k, v in update.items()},  # layer_grad_norm/* as is
                **{f"advantage/{k}": v for k, v in advantage_stats(batch.rewards, batch.group, batch.valid, batch.advantages).items()},
                **{f"timing/{k}": v for k, v in timer.times.items()},
                **_throughput(timer, prompts, rollouts, batch, completion_tokens, cfg),
                **{f"counters/{k}": float(v) for k, v in counters.items()},
                **static,
                "actor/lr": float(scheduler.get_last_lr()[0]),
                "data/epoch": stream.epoch,
            }  # fmt: skip
            logger.log(step, metrics)
            if cfg.logging.samples_every and step % cfg.logging.samples_every == 0:
                logger.log_samples(
                    step,
                    sample_completions(
                        records, per_source=cfg.logging.samples_per_source, seed=cfg.seed, step=step
                    ),
                )
            if cfg.logging.console:
                say(_console_line(step, cfg.total_steps, metrics, timer))

            stopped = stop is not None and bool(stop(step, metrics))
            last = stopped or step == cfg.total_steps
            if eval_samples and ((cfg.eval.every and step % cfg.eval.every == 0) or last):
                run_eval(step)
            if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or last:
                t0 = time.perf_counter()
                path = save(step)
                logger.log(step, {"timing/checkpoint": time.perf_counter() - t0})
                say(f"saved {path}")
            if stopped:
                break
        return TrainResult(run, step, stopped, metrics, latest_checkpoint(run))
    finally:
        if logger is not None:
            logger.close()
        backend.close()


# ----------------------------------------------------------------------------------------------
# Scoring → advantages


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


# ----------------------------------------------------------------------------------------------
# The update


def grpo_update(
    policy: Policy,
    reference: Any,
    prompts: Sequence[PromptInputs],
    rollouts: Sequence[Rollout],
    batch: ScoredBatch,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    *,
    step: int,
) -> dict[str, float]:
    """``epochs × mini_batches`` optimizer steps over the valid rollouts; returns merged statistics.

    On-policy (1 × 1) the old log-probs are the current ones detached (ratio 1, one forward pass);
    otherwise they are computed once, before the first update, without gradients.
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
        if not on_policy:  # a fresh mini-batch split every epoch, seeded by (seed, step, epoch)
            g = torch.Generator().manual_seed(step_seed(cfg.seed, step) * 31 + epoch)
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
    import re

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


# ----------------------------------------------------------------------------------------------
# Setup helpers and checks


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
    items = [
        reward_item(s, "", step=0, total_steps=0, model_input_size=None, model_frame="pixel") for s in samples
    ]
    results = backend.score(items)
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


def _reference_model(cfg: TrainConfig, run: Path, device: torch.device) -> Any:
    """The frozen initial policy, for the KL term."""
    ref = load_policy(
        cfg.model.path,
        tiny_dir=run / "base_model",
        seed=cfg.model.seed,
        tiny_overrides=cfg.model.tiny,
        dtype=getattr(torch, cfg.model.dtype),
        device=device,
    ).model
    ref.eval()
    ref.requires_grad_(False)
    return ref


def _engine(cfg: TrainConfig, policy: Policy) -> Engine:
    if cfg.rollout.engine == "vllm":
        from triune_train.rollout.vllm import VLLMEngine  # GPU only; imported when asked for

        return VLLMEngine(policy, **cfg.rollout.engine_options)
    from triune_train.rollout.hf import HFEngine

    return HFEngine(policy, max_batch_size=cfg.rollout.batch_size, **cfg.rollout.engine_options)


def _stop_if_rewards_failed(
    statuses: list[str], messages: list[str], step: int, cfg: TrainConfig, run: Path
) -> None:
    failed = [m for s, m in zip(statuses, messages, strict=True) if s in FAILED]
    if statuses and len(failed) / len(statuses) > cfg.reward.max_error_fraction:
        last = latest_checkpoint(run)
        raise RewardFailure(
            f"step {step}: {len(failed)} of {len(statuses)} rewards failed ({failed[0]}); stopped before the "
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
    completion_tokens: int,
    cfg: TrainConfig,
) -> dict[str, float]:
    t = timer.times
    trained = [i for i in batch.valid.nonzero().flatten().tolist()]
    update_tokens = sum(
        prompts[rollouts[i].prompt_index].num_tokens + rollouts[i].num_tokens for i in trained
    )
    update_tokens *= cfg.algorithm.epochs
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


__all__ = [
    "RewardFailure",
    "ScoredBatch",
    "TrainResult",
    "grpo_update",
    "layer_grad_norms",
    "lr_schedule",
    "score_batch",
    "step_seed",
    "train",
]
