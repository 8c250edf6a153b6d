"""The learnable colour task of the loop, eval and learning tests, built from real source files.

Solid red or blue PNGs (each colour jittered a little per image) with the question "Colour?" and
the options red/blue, written as a JSONL table plus image files and converted by `build-dataset`
with the `vqa` adapter (``mcq: keep``): the samples are scored by the `mcq` verifier, which gives
1 to an answer that names the right colour (or its letter) and nothing else. A policy that ignores
the image can reach 0.5 at most.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from PIL import Image

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def write_colour_sources(
    root: Path,
    *,
    train: int = 32,
    test: int = 8,
    size: int = 56,
    seed: int = 0,
    large_every: int = 0,
    large_size: int = 112,
) -> Path:
    """Source files and a data recipe under `root`; returns the recipe path.

    With `large_every` = k, every k-th training image (ids ending k-1, 2k-1, ...) is `large_size`
    pixels wide: more image tokens, for prompt-budget tests.
    """
    rng = random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        rows = []
        for i in range(count):
            name = "red" if i % 2 == 0 else "blue"
            rgb = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[name])
            image = f"img/{split}-{i:03d}.png"
            large = split == "train" and large_every > 0 and i % large_every == large_every - 1
            side = large_size if large else size
            Image.new("RGB", (side, side), rgb).save(root / image)
            rows.append({"id": f"{split}-{i:03d}", "image": image, "question": "Colour?", "answer": name,
                         "options": ["red", "blue"]})  # fmt: skip
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = root / "colours.yaml"
    recipe.write_text(
        "name: colours\nseed: 0\n"
        "prompts: {mcq: {templates: ['{question}']}}\n"
        "sources:\n"
        "  - {adapter: vqa, data_source: colours, options: {path: train.jsonl, task: puzzle, mcq: keep}}\n"
        "  - {adapter: vqa, data_source: colours, split: test, options: {path: test.jsonl, task: puzzle, mcq: keep}}\n"
    )
    return recipe


def build_colours(root: Path, **kwargs: Any) -> Path:
    """The colour dataset under `root / "data"` (sources under `root / "src"`)."""
    from triune_data.build import build_dataset

    recipe = write_colour_sources(root / "src", **kwargs)
    build_dataset(recipe, root / "data")
    return root / "data"


def metrics_by_step(run: Path) -> dict[int, dict[str, Any]]:
    """RUN/metrics.jsonl merged by step (train, eval and checkpoint lines of a step together)."""
    rows: dict[int, dict[str, Any]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows.setdefault(row["step"], {}).update(row)
    return rows


def train_config(data_dir: Path, **sections: Any) -> Any:
    """A fast `TrainConfig` on `data_dir`: tiny Qwen2.5-VL, 4 prompts × 4 samples, 4 new tokens.

    ``sections`` update the sections (``optim={"lr": 1e-3}``) or top-level keys (``total_steps=3``).
    """
    from triune_train.config import TrainConfig

    base: dict[str, Any] = {
        "name": "test",
        "seed": 0,
        "total_steps": 2,
        "device": "cpu",
        "model": {"path": "tiny:qwen2_5_vl"},
        "data": {"path": str(data_dir), "prompts_per_step": 4, "max_prompt_tokens": 256},
        "rollout": {"n": 4, "max_new_tokens": 4},
        "optim": {"lr": 3e-3, "weight_decay": 0.0, "micro_batch_size": 16},
        "checkpoint": {"every": 0},
        "eval": {"every": 0},
        "logging": {"tensorboard": False, "samples_every": 1, "console": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)
