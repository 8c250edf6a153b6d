"""The train recipe: typed sections, YAML with file:line:field errors, `--set` overrides, a hash.

A recipe is sparse YAML over the defaults below, in sections::

    name: demo
    seed: 0
    total_steps: 20
    model:     {path: "tiny:qwen2_5_vl"}
    data:      {path: out/demo, prompts_per_step: 4}
    rollout:   {n: 4, max_new_tokens: 32}
    reward:    {workers: 0}
    algorithm: {clip_low: 0.2, clip_high: 0.28}
    optim:     {lr: 1.0e-4}
    checkpoint: {every: 10}
    eval:      {every: 10}
    logging:   {samples_every: 5}

Every field is documented in `schemas/train_recipe.schema.json` (generated from these models).
Paths in a train recipe (`data.path`, `eval.path`, `model.path`) are relative to the current
directory: datasets and models are outputs of earlier commands, not files shipped with the recipe.

`load_train_config(path, overrides)` reads, overrides, validates and resolves; an unknown key, a
wrong type or a value out of range is a `RecipeError` naming the file, line and field (or the
`--set` option that caused it). The resolved config and its sha256 go into ``RUN/config.json``;
`--resume` refuses a run whose hash or `total_steps` differ.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from triune_data.errors import RecipeError
from triune_data.recipe import dotted_path, read_yaml, yaml_line

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Module = Literal["vision", "connector"]  # the language model always trains


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(_Section):
    path: str = Field(
        description="A local HF folder, a Hub id, or `tiny:qwen2_5_vl` / `tiny:qwen3_vl` (a tiny random "
        "model built offline into RUN/base_model, for tests and the demo)."
    )
    revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of a Hub id."
    )
    seed: int = Field(default=0, description="Initialisation seed of a `tiny:` model.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="Parameter dtype of the policy (float32 on CPU)."
    )
    freeze: list[Module] = Field(
        default=["vision", "connector"],
        description="Module groups frozen by module type (paper §4.1: vision tower and connector).",
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in backward.")
    tiny: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of a `tiny:` model's build (hidden_size, num_layers, vocab_size, max_image_side, ...).",
    )


class MixSection(_Section):
    by: Literal["data_source", "task"] = Field(
        default="data_source", description="What the sampling weights are keyed by."
    )
    weights: dict[str, NonNegative] | None = Field(
        default=None,
        description="Relative sampling weight per data_source (or task); groups left out are not sampled. "
        "None: every row equally likely (the paper's uniform mix).",
    )


class DataSection(_Section):
    path: str = Field(description="A dataset directory written by `triune build-dataset`.")
    split: str = Field(default="train", description="Split trained on.")
    mix: MixSection = MixSection()
    shuffle: bool = Field(default=True, description="Shuffle rows (by `seed`, reshuffled every epoch).")
    sample_weight: Literal["loss", "ignore"] = Field(
        default="loss", description="loss: each sample's `sample_weight` scales its completions' loss."
    )
    prompts_per_step: int = Field(
        default=8, ge=1, description="Prompts per rollout batch (× rollout.n completions)."
    )
    max_prompt_tokens: int = Field(
        default=1024,
        ge=1,
        description="Prompt budget in tokens, image tokens included; longer prompts are skipped and counted "
        "(never truncated mid-image).",
    )
    max_replacement_draws: int | None = Field(
        default=None,
        ge=0,
        description="Per step, at most this many extra samples are drawn to replace skipped prompts (over "
        "the budget, unreadable image, ...), so that the step keeps prompts_per_step prompts; past it the "
        "step runs with fewer. None: as many as prompts_per_step.",
    )


class RolloutSection(_Section):
    engine: Literal["hf", "vllm"] = Field(
        default="hf", description="hf: transformers generate; vllm: GPU only."
    )
    n: int = Field(default=8, ge=1, description="Completions per prompt (the GRPO group size).")
    max_new_tokens: int = Field(
        default=256, ge=1, description="Longest completion; longer ones are truncated."
    )
    temperature: Positive = 1.0
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, description="0: no top-k cut.")
    batch_size: int = Field(default=64, ge=1, description="Prompts per engine call (HF engine).")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the engine (vLLM: gpu_memory_utilization, ...)."
    )


class RewardSection(_Section):
    servers: list[str] = Field(
        default_factory=list, description="Reward service URLs; empty: score in this process."
    )
    workers: int = Field(default=0, ge=0, description="In-process verifier processes (0: score inline).")
    timeout_s: Positive = Field(
        default=10.0, description="Per-item limit in-process; per-request on servers."
    )
    retries: int = Field(default=6, ge=0, description="Attempts per batch after the first (reward services).")
    max_error_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Stop the run when more than this share of a step's rewards are error/timeout "
        "(a reward service that went away); the last checkpoint stays as it was.",
    )
    preload: list[str] = Field(
        default_factory=list, description="Modules that register extra verifiers (in-process)."
    )


class AlgorithmSection(_Section):
    advantage_scale: Literal["group", "batch", "none"] = Field(
        default="group",
        description="Divide (r - group mean) by the group std, the batch std, or nothing (Dr.GRPO).",
    )
    normalize_by: Literal["none", "task", "data_source"] = Field(
        default="none", description="Standardise advantages separately per task or data_source."
    )
    eps: Positive = Field(default=1e-6, description="Added to the std before dividing.")
    clip_low: NonNegative = Field(default=0.2, description="PPO clip ε_low.")
    clip_high: NonNegative = Field(default=0.28, description="PPO clip ε_high (clip-higher, DAPO).")
    ratio_level: Literal["token", "sequence"] = Field(
        default="token", description="Importance ratio per token (GRPO) or per sequence (GSPO)."
    )
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        default="token-mean", description="Loss aggregation, normalised over the whole mini-batch."
    )
    kl_coef: NonNegative = Field(
        default=0.0, description="KL to the frozen initial policy (0: none, as the paper)."
    )
    kl_kind: Literal["k1", "k3", "mse"] = "k3"
    entropy_coef: NonNegative = Field(default=0.0, description="Entropy bonus coefficient.")
    epochs: int = Field(default=1, ge=1, description="Passes over each rollout batch.")
    mini_batches: int = Field(
        default=1, ge=1, description="Optimizer steps per epoch (1 with epochs 1: on-policy, as the paper)."
    )


class OptimSection(_Section):
    lr: Positive = Field(
        default=1e-6, description="Learning rate (AdamW) of the language model, and the default."
    )
    module_lr: dict[Module, Positive] = Field(
        default_factory=dict, description="Per-module learning rates for trainable vision/connector/llm."
    )
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: NonNegative = 0.01
    eps: Positive = 1e-8
    schedule: Literal["constant", "linear", "cosine"] = Field(
        default="constant", description="After warmup: constant, or linear/cosine decay to `min_lr_ratio`."
    )
    warmup_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Share of total_steps warming up linearly."
    )
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    grad_clip: Positive | None = Field(
        default=1.0, description="Clip the global grad norm to this (None: no clip)."
    )
    micro_batch_size: int = Field(default=8, ge=1, description="Completions per forward/backward.")


class CheckpointSection(_Section):
    every: int = Field(
        default=50, ge=0, description="Save every N steps and at the end (0: only at the end)."
    )
    keep: int = Field(default=2, ge=1, description="Most recent checkpoints kept.")


class EvalSection(_Section):
    every: int = Field(default=0, ge=0, description="Evaluate every N steps and at the end (0: never).")
    before_train: bool = Field(default=False, description="Also evaluate the initial policy.")
    path: str | None = Field(default=None, description="Dataset directory (default: data.path).")
    split: str = "test"
    max_samples_per_source: int | None = Field(default=None, ge=1)
    max_new_tokens: int | None = Field(default=None, ge=1, description="Default: rollout.max_new_tokens.")
    batch_size: int = Field(default=32, ge=1, description="Prompts per engine call.")


class LoggingSection(_Section):
    tensorboard: bool = True
    wandb: dict[str, Any] | None = Field(default=None, description="wandb.init kwargs (project, name, ...).")
    samples_every: int = Field(default=10, ge=0, description="Log completions every N steps (0: never).")
    samples_per_source: int = Field(default=2, ge=0)
    layer_grad_norms: bool = Field(default=True, description="Log the grad norm of every layer.")
    console: bool = Field(default=True, description="Print one line per step.")


class TrainConfig(_Section):
    name: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = ""
    seed: int = Field(default=0, description="Seeds data order, sampling and initialisation.")
    total_steps: int = Field(ge=1, description="Rollout-and-update steps.")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads (None: torch's default).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: ModelSection
    data: DataSection
    rollout: RolloutSection = RolloutSection()
    reward: RewardSection = RewardSection()
    algorithm: AlgorithmSection = AlgorithmSection()
    optim: OptimSection = OptimSection()
    checkpoint: CheckpointSection = CheckpointSection()
    eval: EvalSection = EvalSection()
    logging: LoggingSection = LoggingSection()

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        frozen = set(self.model.freeze)
        lr_frozen = sorted(frozen & set(self.optim.module_lr))
        if lr_frozen:
            raise ValueError(f"optim.module_lr: a learning rate for frozen modules {lr_frozen}")
        completions = self.data.prompts_per_step * self.rollout.n
        if completions % self.algorithm.mini_batches:
            raise ValueError(
                f"algorithm.mini_batches: {self.algorithm.mini_batches} does not divide "
                f"data.prompts_per_step × rollout.n ({completions})"
            )
        return self

    @property
    def hash(self) -> str:
        """sha256 of the resolved config (every default included)."""
        return config_hash(self)


def config_hash(cfg: TrainConfig) -> str:
    text = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def train_recipe_json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://triune.dev/schemas/train_recipe.schema.json",
        **TrainConfig.model_json_schema(ref_template="#/$defs/{model}"),
        "title": "triune train recipe",
    }


# ----------------------------------------------------------------------------------------------
# Loading: YAML → overrides → validation with locations


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"KEY.PATH=VALUE"`` → (key parts, value); the value is read as YAML.

    >>> parse_override("rollout.n=4")
    (['rollout', 'n'], 4)
    >>> parse_override("optim.lr=3e-4")
    (['optim', 'lr'], 0.0003)
    >>> parse_override("model.freeze=[vision]")
    (['model', 'freeze'], ['vision'])
    """
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise RecipeError(f"--set {text}: expected KEY=VALUE with a dotted key, e.g. optim.lr=3e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set {text}: value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if isinstance(value, str) and _FLOAT.match(value):  # YAML 1.1 reads 3e-4 (no dot) as a string
        value = float(value)
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], dict]:
    """A copy of `data` with every override applied; also {key path: override text}."""
    data = copy.deepcopy(data)
    origins: dict[tuple[str, ...], str] = {}
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, key in enumerate(parts[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise RecipeError(f"--set {text}: {where} is not a section")
            node = child
        node[parts[-1]] = value
        origins[tuple(parts)] = text
    return data, origins


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a train recipe; RecipeError names file:line:field (or the --set)."""
    path = Path(path)
    data, node = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}:1: a train recipe is a mapping with sections model, data, ...")
    data, origins = apply_overrides(data, list(overrides or []))
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise _recipe_error(exc, path, node, origins) from None


_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+): (.*)$", re.DOTALL)


def _recipe_error(exc: ValidationError, path: Path, node: yaml.Node | None, origins: dict) -> RecipeError:
    errors = exc.errors(include_url=False)
    err = max(errors, key=lambda e: len(e["loc"]))  # the deepest error is the most specific
    loc: list[Any] = list(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key (allowed: {', '.join(_allowed_keys(loc[:-1]))})"
    if not loc and (m := _FIELD_PREFIX.match(msg)):  # cross-field checks name their field first
        loc, msg = m.group(1).split("."), m.group(2)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    for keys, text in origins.items():
        if tuple(loc[: len(keys)]) == keys or (loc and tuple(keys[: len(loc)]) == tuple(loc)):
            return RecipeError(f"--set {text}: {dotted_path(loc)}: {msg}{more}")
    line = yaml_line(node, loc) if node is not None else 1
    return RecipeError(f"{path}:{line}: {dotted_path(loc)}: {msg}{more}")


def _allowed_keys(loc: list[Any]) -> list[str]:
    """The field names of the section at `loc` (for "unknown key" messages)."""
    model: Any = TrainConfig
    for key in loc:
        field = getattr(model, "model_fields", {}).get(key)
        model = field.annotation if field is not None else None
    return list(getattr(model, "model_fields", {}))


def resolved(cfg: TrainConfig) -> dict[str, Any]:
    """What goes into RUN/config.json: the full config, its hash and the triune version."""
    return {"config": cfg.model_dump(mode="json"), "hash": cfg.hash}


__all__ = [
    "AlgorithmSection",
    "CheckpointSection",
    "DataSection",
    "EvalSection",
    "LoggingSection",
    "MixSection",
    "ModelSection",
    "OptimSection",
    "RewardSection",
    "RolloutSection",
    "TrainConfig",
    "apply_overrides",
    "config_hash",
    "load_train_config",
    "parse_override",
    "resolved",
    "train_recipe_json_schema",
]
