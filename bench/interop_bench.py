"""What the framework reward functions cost beside the verifiers they call, one run.

    .venv/bin/python bench/interop_bench.py [--repeat 8] [--blocks 5]

The demo dataset (all eight tasks), exported for verl and EasyR1, with the demo's stand-in
completions (`scripts/demo_completions.py`: about 60% right, boxes jittered), each row scored
`--repeat` times per block. Variants, interleaved block by block on the same rows:

(a) `score(item)` on items built beforehand: the verifiers alone (the baseline);
(b) verl's `compute_score`, one call per row as verl's naive manager makes it (spec parsed from
    `extra_info`, settings, step clock, model input size, status counting);
(b') the same, counting steps in a `step_file` (a locked file read and write per row);
(c) verl's `compute_score_batch`, one call per block;
(d) EasyR1's `compute_score`, one call per block (the spec parsed from the ground-truth string);
(e) the TRL function, one call per block on the stored rows' columns.

Reported: microseconds per row (median over blocks) and the ratio to (a). The machine is shared,
so the integration's own work is also timed alone, without the verifiers: reading the spec from
the row, validating it into an item with the model input size, resolving the settings, and one
step of a `step_file` clock.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from demo_completions import completion  # noqa: E402

from triune_data.build import build_dataset  # noqa: E402
from triune_data.export import export_dataset  # noqa: E402
from triune_data.schema import row_to_sample  # noqa: E402
from triune_data.verifiers import score, score_item_for  # noqa: E402
from triune_data.verifiers.common.wire import item_from_reward_spec  # noqa: E402
from triune_train.integrations import easyr1, trl, verl  # noqa: E402
from triune_train.integrations.common import Settings, StepClock, parse_spec  # noqa: E402

KWARGS = {"model_family": "qwen2_5_vl", "total_steps": 100, "rows_per_step": 512}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="interop-bench-"))
    build_dataset(ROOT / "recipes" / "demo.yaml", work / "demo")
    export_dataset(work / "demo", work / "verl", fmt="verl")
    export_dataset(work / "demo", work / "easyr1", fmt="easyr1")
    verl_rows = [
        r for s in ("train", "test") for r in pq.read_table(work / "verl" / f"{s}.parquet").to_pylist()
    ]
    easy_rows = [
        r for s in ("train", "test") for r in pq.read_table(work / "easyr1" / f"{s}.parquet").to_pylist()
    ]
    stored = {}
    for p in sorted((work / "demo" / "data").glob("*/*.parquet")):
        for r in pq.read_table(p).to_pylist():
            stored[r["id"]] = r
    rng = random.Random(0)
    ids = [r["extra_info"]["id"] for r in verl_rows]
    comps = [completion(stored[i], rng) for i in ids]
    rows = [stored[i] for i in ids]
    settings = Settings.from_kwargs("trl", {"model_family": "qwen2_5_vl"})
    items = [
        score_item_for(
            row_to_sample(r),
            c,
            step=5,
            total_steps=100,
            model_input_size=settings.model_input_size(
                [r["image_sizes"][0]["width"], r["image_sizes"][0]["height"]]
            ),
            model_frame="pixel",
        )
        for r, c in zip(rows, comps, strict=True)
    ]
    trl_fn = trl.make_reward_function(model_family="qwen2_5_vl")
    columns = {
        k: [r[k] for r in rows]
        for k in ("reward", "ground_truth", "boxes", "image_sizes", "data_source", "id")
    }
    state = type("State", (), {"global_step": 4, "max_steps": 100})()
    n = len(rows) * args.repeat

    variants = {
        "(a) score(item), items prebuilt": lambda: [score(i) for i in items],
        "(b) verl compute_score, per row": lambda: [
            verl.compute_score(
                data_source=r["data_source"],
                solution_str=c,
                ground_truth=r["reward_model"]["ground_truth"],
                extra_info=r["extra_info"],
                **KWARGS,
            )
            for r, c in zip(verl_rows, comps, strict=True)
        ],
        "(b') verl compute_score, per row, step_file": lambda: [
            verl.compute_score(
                data_source=r["data_source"],
                solution_str=c,
                ground_truth=r["reward_model"]["ground_truth"],
                extra_info=r["extra_info"],
                step_file=str(work / "bench.step"),
                **KWARGS,
            )
            for r, c in zip(verl_rows, comps, strict=True)
        ],
        "(c) verl compute_score_batch": lambda: verl.compute_score_batch(
            [r["data_source"] for r in verl_rows],
            comps,
            [r["reward_model"]["ground_truth"] for r in verl_rows],
            [r["extra_info"] for r in verl_rows],
            **KWARGS,
        ),
        "(d) EasyR1 compute_score": lambda: easyr1.compute_score(
            [
                {"response": c, "response_length": 1, "ground_truth": r["triune_reward"]}
                for r, c in zip(easy_rows, comps, strict=True)
            ],
            **KWARGS,
        ),
        "(e) TRL reward function": lambda: trl_fn(
            prompts=[None] * len(rows), completions=comps, trainer_state=state, **columns
        ),
    }
    for fn in variants.values():  # warm-up: caches, imports
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                fn()
            times[name].append((time.perf_counter() - t0) / n * 1e6)
    base = statistics.median(times["(a) score(item), items prebuilt"])
    print(f"{len(rows)} rows × {args.repeat} repeats × {args.blocks} blocks; µs per row (median, all blocks)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.0f} | {med / base:.2f} | {', '.join(f'{t:.0f}' for t in ts)} |")
    print(json.dumps({name: statistics.median(ts) for name, ts in times.items()}))

    verl_settings = Settings.from_kwargs("verl", KWARGS)
    specs = [parse_spec(r["extra_info"]["triune_reward"]) for r in verl_rows]
    clock = StepClock(512, str(work / "micro.step"))
    parts = {
        "spec JSON -> dict": lambda: [parse_spec(r["extra_info"]["triune_reward"]) for r in verl_rows],
        "spec -> validated item (with model input size)": lambda: [
            item_from_reward_spec(
                s,
                c,
                step=1,
                total_steps=100,
                model_input_size=verl_settings.model_input_size(s.get("image_size")),
            )
            for s, c in zip(specs, comps, strict=True)
        ],
        "settings from kwargs": lambda: [Settings.from_kwargs("verl", KWARGS) for _ in verl_rows],
        "step_file clock, one row": lambda: [clock.take(1) for _ in verl_rows],
    }
    print("integration work alone, µs per row (median of 5)")
    for name, fn in parts.items():
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - t0) / len(verl_rows) * 1e6)
        print(f"| {name} | {statistics.median(runs):.1f} |")


if __name__ == "__main__":
    main()
