"""`triune filter` beside its limit, a polars scan with one predicate written back, one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/filter_bench.py [--rows 1000000] [--recipe FILTER.yaml]

Generates `--rows` metadata rows as a triune dataset (images referenced by path, no bytes; shards
written with the sample Arrow schema and a manifest, 8 data_sources over the 8 tasks), then runs,
each in a child process of its own that times itself and reports its peak RSS and CPU seconds,
alternated `--repeat` times (the best run of each counts: the machines are shared and noisy):

(a)  `filter_dataset` with V-Triune's model-free rule filters and exact dedup (`RULES` below: what
     the issue measures), or with `--recipe`;
(a+) the same plus the mixing filters (a per-source cap, the puzzle duplication, sample weights);
(a0) the floor of the design: one stage that drops nothing, so all that is timed is what every
     run pays: the parent opened and checked, its metadata loaded, each shard read, masked and
     written through the build's writer, rejects, card and manifest;
(b)  the limit: `pl.scan_parquet(the same shards).filter(<one trivial predicate>).sink_parquet`.

Reported: rows/s of each, the ratios to (b) and each one's peak RSS and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triune_data.filters.recipe import LoadedFilterRecipe, load_filter_recipe
from triune_data.manifest import FileEntry, Manifest, RecipeInfo, SourceCounts, write_manifest
from triune_data.schema import arrow_schema
from triune_data.types import TASK_CATEGORY
from triune_data.writer import write_rejects, write_table

TASKS = list(TASK_CATEGORY)
SHARD_ROWS = 125_000

# ----------------------------------------------------------------------------------------------
# The recipe: V-Triune's model-free rule filters, exact dedup, then the mixing filters. Left out:
# `prompt_tokens` (needs a tokenizer, which a bench must not download) and `gold_verifies` (bound
# by math-verify at about 400 rows/s: a separate, model-free but parser-bound stage).

RULES = """\
name: bench
seed: 0
stages:
  - filter: choice_answers
  - filter: answer_symbols
  - filter: answer_chars
  - filter: boxes_per_category
  - filter: box_area
  - filter: single_multi_ratio
  - filter: category_balance
  - filter: phrase_complexity
  - filter: ocr_language
  - filter: ocr_verifiable
  - filter: image_size
  - filter: exact_dedup
"""
MIXING = """\
  - filter: source_cap
    max_rows: 1000000000
  - filter: duplicate
  - filter: sample_weight
    weight: 1.0
"""
FLOOR = """\
name: floor
seed: 0
stages:
  - filter: answer_chars
    max_chars: 1000000
"""
RECIPES = {"filter": RULES, "filter+mixing": RULES + MIXING, "floor": FLOOR}


def bench_recipe(tmp: Path, name: str) -> LoadedFilterRecipe:
    path = tmp / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECIPES[name])
    return load_filter_recipe(path)


# ----------------------------------------------------------------------------------------------
# The dataset: rows realistic enough for every filter above to have work, made with numpy

LABELS = np.array([f"category_{i:02d}" for i in range(40)], dtype=object)
PHRASES = np.array(
    [
        "dog",
        "red car",
        "the man on the left",
        "woman holding an umbrella",
        "the smallest cup on the table",
        "the boy who holds a kite and wears a hat",  # two joining words: dropped
        "a tall glass of orange juice next to the plate near the window sill",  # over 10 words
        "bus",
        "the second chair from the right",
        "person in a blue jacket",
    ],
    dtype=object,
)
OCR_WORDS = np.array(
    ["STOP", "Main St", "OPEN 24 HOURS", "exit", "Café", "2019", "привет", "###", "--", "Sale 50% off"],
    dtype=object,
)
REASONING_ANSWERS = np.array(
    [
        "12",
        "3.5",
        "B",
        "yes",
        "x = 4",
        "f(2)",
        "\\frac{1}{2}",
        "a rather long answer text over twenty",
        "7",
        "42",
    ],
    dtype=object,
)
OPTIONS = "\nA. 1\nB. 2\nC. 3\nD. 4"


def _strings(values: np.ndarray) -> pa.Array:
    return pa.array(values.tolist(), pa.string())


def _list_of_structs(offsets: np.ndarray, fields: dict[str, pa.Array], type_: pa.DataType) -> pa.Array:
    child = pa.StructArray.from_arrays(list(fields.values()), fields=list(type_.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), child, type=type_)


def _boxes(
    task: str, n: int, w: np.ndarray, h: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """Offsets and fields of the rows' boxes: detection 1-14 boxes over a long-tailed label set
    (some rows over 10 of one label, single- and multi-box rows), grounding one box labelled with a
    referring phrase; 3% of boxes cover most of the image."""
    if task == "detection":
        counts = np.minimum(rng.geometric(0.3, n), 14)
        labels = LABELS[np.minimum(rng.zipf(1.6, counts.sum()) - 1, len(LABELS) - 1)]
        same = np.repeat(rng.random(n) < 0.08, counts)  # 8% of rows: every box one label
        labels = np.where(same, LABELS[0], labels)
    elif task == "grounding":
        counts = np.ones(n, dtype=np.int64)
        labels = PHRASES[rng.integers(0, len(PHRASES), n)]
    else:
        counts = np.zeros(n, dtype=np.int64)
        labels = np.array([], dtype=object)
    total = int(counts.sum())
    row = np.repeat(np.arange(n), counts)
    bw, bh = w[row].astype(np.float64), h[row].astype(np.float64)
    big = rng.random(total) < 0.03
    frac = np.where(big, rng.uniform(0.75, 0.95, total), rng.uniform(0.05, 0.4, total))
    x1, y1 = rng.random(total) * bw * (1 - frac), rng.random(total) * bh * (1 - frac)
    fields = {
        "label": _strings(labels),
        "x1": pa.array(x1),
        "y1": pa.array(y1),
        "x2": pa.array(x1 + frac * bw),
        "y2": pa.array(y1 + frac * bh),
    }
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32), fields


def shard(start: int, n: int, source: str, task: str, rng: np.random.Generator) -> pa.Table:
    schema = arrow_schema()
    ids = [f"{source}/{i:08d}" for i in range(start, start + n)]
    ones = np.arange(n + 1, dtype=np.int32)
    dup_of = np.where(rng.random(n) < 0.02, np.maximum(np.arange(n) - 7, 0), np.arange(n))  # 2% exact copies
    files = [f"img/{source}/{start + int(j):08d}.jpg" for j in dup_of]
    w = rng.integers(200, 2000, n).astype(np.int32)
    h = rng.integers(200, 2000, n).astype(np.int32)
    w[rng.random(n) < 0.01] = 20  # 1% under the smallest side
    if TASK_CATEGORY[task] == "reasoning":
        answers = np.where(
            rng.random(n) < 0.6,
            rng.integers(0, 1000, n).astype(str),
            REASONING_ANSWERS[rng.integers(0, len(REASONING_ANSWERS), n)],
        )
    elif task == "ocr":
        answers = OCR_WORDS[rng.integers(0, len(OCR_WORDS), n)]
    else:
        answers = rng.integers(0, 50, n).astype(str)
    with_options = rng.random(n) < 0.05
    prompts = [
        f"<image>Question {int(j)} about {source}: what is shown?" + (OPTIONS if o else "")
        for j, o in zip(dup_of, with_options, strict=True)
    ]
    offsets, box_fields = _boxes(task, n, w, h, rng)
    answer = _strings(np.asarray(answers, dtype=object))
    cols: dict[str, pa.Array] = {
        "id": pa.array(ids),
        "data_source": pa.array([source] * n),
        "task": pa.array([task] * n),
        "category": pa.array([TASK_CATEGORY[task]] * n),
        "split": pa.array(["train"] * n),
        "images": _list_of_structs(
            ones, {"bytes": pa.nulls(n, pa.binary()), "path": pa.array(files)}, schema.field("images").type
        ),
        "image_sizes": _list_of_structs(
            ones, {"width": pa.array(w), "height": pa.array(h)}, schema.field("image_sizes").type
        ),
        "prompt": _list_of_structs(
            ones, {"role": pa.array(["user"] * n), "content": pa.array(prompts)}, schema.field("prompt").type
        ),
        "answer": answer,
        "ground_truth": answer,
        "boxes": _list_of_structs(offsets, box_fields, schema.field("boxes").type),
        "reward": pa.StructArray.from_arrays(
            [pa.array(["mathverify"] * n), pa.array(["{}"] * n), pa.array([1.0] * n), pa.array([1.0] * n)],
            fields=list(schema.field("reward").type),
        ),
        "sample_weight": pa.array([1.0] * n),
        "difficulty": pa.nulls(n, schema.field("difficulty").type),
        "provenance": pa.StructArray.from_arrays(
            [
                pa.array(["bench"] * n),
                pa.array(ids),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.string()),
                pa.array(files),
            ],
            fields=list(schema.field("provenance").type),
        ),
    }
    return pa.Table.from_arrays([cols[name] for name in schema.names], schema=schema)


def make_dataset(root: Path, rows: int) -> list[Path]:
    rng = np.random.default_rng(0)
    per_source = rows // len(TASKS)
    files: list[FileEntry] = []
    sources: dict[str, SourceCounts] = {}
    for task in TASKS:
        source = f"bench_{task}"
        done, index = 0, 0
        shards = -(-per_source // SHARD_ROWS)
        while done < per_source:
            n = min(SHARD_ROWS, per_source - done)
            path = f"data/{source}/train-{index:05d}-of-{shards:05d}.parquet"
            write_table(shard(done, n, source, task, rng), root / path)
            files.append(FileEntry.of(root, path, rows=n, data_source=source, split="train"))
            done, index = done + n, index + 1
        sources[source] = SourceCounts(read=per_source, kept=per_source, rows_by_split={"train": per_source})
    manifest = Manifest(
        recipe=RecipeInfo(name="bench", hash="0" * 64, seed=0),
        files=files,
        rejects=write_rejects(root, []),
        sources=sources,
    )
    write_manifest(root, manifest)
    return [root / f.path for f in files]


# ----------------------------------------------------------------------------------------------
# The variants, each in a child process


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_filter(src: str, out: str, name: str, recipe: str | None, q: Any) -> None:
    from triune_data.filters.run import filter_dataset

    loaded = load_filter_recipe(recipe) if recipe else bench_recipe(Path(out).parent, name)
    t, cpu = time.perf_counter(), time.process_time()
    report = filter_dataset(src, loaded, out, overwrite=True)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    kept = sum(c.kept for c in report.sources.values())
    q.put({"seconds": seconds, "cpu_s": cpu, "kept": kept, "peak_mb": _peak_mb()})


def run_limit(files: list[str], out: str, q: Any) -> None:
    t, cpu = time.perf_counter(), time.process_time()
    Path(out).mkdir(parents=True, exist_ok=True)
    pl.scan_parquet(files).filter(pl.col("answer").str.len_chars() <= 20).sink_parquet(
        Path(out) / "all.parquet"
    )
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    kept = pl.scan_parquet(Path(out) / "all.parquet").select(pl.len()).collect().item()
    q.put({"seconds": seconds, "cpu_s": cpu, "kept": kept, "peak_mb": _peak_mb()})


def child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--recipe",
        help="A filter recipe to run as (a) (default: RULES above, with the (a+) and (a0) variants).",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="Runs of each variant, alternated; the best counts."
    )
    ap.add_argument("--tmp", help="Working folder (default: a temporary one, removed after).")
    args = ap.parse_args()
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="filter-bench-"))
    try:
        t = time.perf_counter()
        files = make_dataset(tmp / "src", args.rows)
        size = sum(f.stat().st_size for f in files)
        print(
            f"generated {args.rows:,} rows in {len(files)} shards, {size / 1e6:.0f} MB, {time.perf_counter() - t:.1f} s"
        )
        variants = ["filter"] if args.recipe else ["filter", "filter+mixing", "floor"]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*variants, "limit"]}
        for _ in range(args.repeat):  # alternated, so that a noisy neighbour hits all alike
            for name in variants:
                out = str(tmp / name)
                runs[name].append(child(run_filter, str(tmp / "src"), out, name, args.recipe))
            runs["limit"].append(child(run_limit, [str(f) for f in files], str(tmp / "b")))
        best = {}
        for name, results in runs.items():
            r = min(results, key=lambda x: x["seconds"])
            r["rows_per_s"] = args.rows / r["seconds"]
            r["every_run_s"] = [round(x["seconds"], 2) for x in results]
            r["peak_mb"] = max(x["peak_mb"] for x in results)
            best[name] = r
            print(
                f"{name:>13}: {r['seconds']:6.2f} s (best of {args.repeat}: {r['every_run_s']})  "
                f"{r['rows_per_s']:>10,.0f} rows/s  cpu {r['cpu_s']:5.2f} s  kept {r['kept']:,}  "
                f"peak RSS {r['peak_mb']:,.0f} MB"
            )
        for name in variants:
            ratio = best[name]["rows_per_s"] / best["limit"]["rows_per_s"]
            print(f"ratio {name}/limit: {ratio:.2f}" + (" (target >= 0.5)" if name == "filter" else ""))
        print(json.dumps(best))
    finally:
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
