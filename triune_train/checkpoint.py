"""The run directory and its checkpoints: atomic, loadable, and resumed exactly.

Layout of a run::

    RUN/config.json                        the resolved recipe, its hash, total_steps
    RUN/base_model/                        the tiny model built for a `tiny:` recipe
    RUN/checkpoints/step-000010/
        policy/                            Hugging Face folder: config, safetensors, processor, tokenizer
        trainer_state.pt                   optimizer, scheduler and RNG states (torch.save)
        state.json                         step, total_steps, config hash, data position, counters
    RUN/metrics.jsonl, RUN/samples.jsonl, RUN/eval/, RUN/tensorboard/

A checkpoint is written into a hidden temporary directory beside ``step-N``, every file fsync'd,
then renamed to ``step-N`` (`triune_data.atomic.swap_dir`): a directory named ``step-N`` is always
complete, so Ctrl-C or a crash at any moment leaves the previous checkpoint loadable. Old checkpoints are renamed away before they are deleted
for the same reason.

Resuming continues exactly: weights, AdamW moments, the scheduler, the data position and the RNG
states are restored, and rollouts are sampled with a seed derived from (seed, step), so the next
step's loss equals the uninterrupted run's on CPU. `prepare_run` refuses to resume a run whose
recipe hash or total_steps differ.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from triune_data import atomic
from triune_data.errors import TriuneError
from triune_train.config import TrainConfig, resolved

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
POLICY = "policy"
TRAINER_STATE = "trainer_state.pt"
STATE = "state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class RunError(TriuneError):
    """A run directory cannot be used as asked (resume mismatch, existing run, broken checkpoint)."""


# ----------------------------------------------------------------------------------------------
# The run directory


def prepare_run(out: str | Path, cfg: TrainConfig, *, resume: bool) -> Path | None:
    """Create or check RUN; return the checkpoint to resume from (None: start at step 0).

    A fresh run needs an empty or missing RUN. `resume` needs RUN/config.json with the same hash and
    total_steps; it removes leftovers of an interrupted save.
    """
    run = Path(out)
    config_path = run / CONFIG
    if not resume:
        if run.exists() and any(run.iterdir()):
            raise RunError(f"{run} is not empty: pass --resume to continue that run, or another --out")
        run.mkdir(parents=True, exist_ok=True)
        atomic.write_json(config_path, resolved(cfg))
        return None
    if not config_path.exists():
        raise RunError(f"{run}: nothing to resume (no {CONFIG})")
    try:
        saved = json.loads(config_path.read_text())
        saved_steps, saved_hash = saved["config"]["total_steps"], saved["hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{config_path}: unreadable ({exc})") from None
    if saved_steps != cfg.total_steps:
        raise RunError(
            f"{run}: total_steps changed ({saved_steps} in the run, {cfg.total_steps} now); "
            "the schedule and the IoU curriculum depend on it, so the run cannot continue"
        )
    if saved_hash != cfg.hash:
        changed = _changed_keys(saved.get("config", {}), resolved(cfg)["config"])
        raise RunError(
            f"{run}: the recipe changed since the run started ({', '.join(changed[:5]) or 'hash'}); "
            "resume with the same recipe and --set options, or start a new --out"
        )
    for leftover in (run / CHECKPOINTS).glob(".*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return latest_checkpoint(run)


def _changed_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _changed_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def checkpoints(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run) / CHECKPOINTS
    found = [(int(m.group(1)), p) for p in root.glob("step-*") if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found) if (p / STATE).exists()]


def latest_checkpoint(run: str | Path) -> Path | None:
    found = checkpoints(run)
    return found[-1] if found else None


# ----------------------------------------------------------------------------------------------
# RNG states


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, in a form torch.load(weights_only) reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": _listify(random.getstate()),
        "numpy": [kind, torch.from_numpy(np.asarray(keys).copy()), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _listify(x: Any) -> Any:
    return [_listify(v) for v in x] if isinstance(x, tuple | list) else x


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x


# ----------------------------------------------------------------------------------------------
# Save and load


def save_checkpoint(
    run: str | Path,
    step: int,
    *,
    model: Any,
    processor: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``RUN/checkpoints/step-{step}`` atomically and keep the newest `keep` checkpoints.

    `state` (JSON) must hold at least ``step``; the trainer adds the data position and counters.
    """
    final = Path(run) / CHECKPOINTS / f"step-{step:06d}"

    def write(tmp: Path) -> None:
        with _no_progress_bars():
            model.save_pretrained(tmp / POLICY)
            processor.save_pretrained(tmp / POLICY)
        trainer_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
        }
        torch.save(trainer_state, tmp / TRAINER_STATE)
        (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=2, sort_keys=True) + "\n")

    # The same step saved again (a resumed run that ends where it resumed) replaces the old one.
    atomic.swap_dir(final, write)
    for old in checkpoints(run)[:-keep]:
        _remove(old)
    return final


def load_checkpoint(
    path: str | Path, *, optimizer: torch.optim.Optimizer, scheduler: Any, restore_rng: bool = True
) -> dict[str, Any]:
    """Restore optimizer, scheduler (and RNG) from a checkpoint; return its state.json.

    The weights are loaded separately, from ``path / "policy"`` like any model folder.
    """
    path = Path(path)
    try:
        state = json.loads((path / STATE).read_text())
        trainer_state = torch.load(path / TRAINER_STATE, weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise RunError(f"{path}: unreadable checkpoint ({exc})") from None
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    if restore_rng:
        set_rng_state(trainer_state["rng"])
    return state


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers draws a "Writing model shards" bar on every save; a log line per step is enough."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _remove(path: Path) -> None:
    """Delete a checkpoint so that no half-deleted `step-N` is ever visible: rename, then delete."""
    trash = path.with_name(f".trash-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


__all__ = [
    "RunError",
    "checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "prepare_run",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
