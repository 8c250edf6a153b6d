"""`triune filter` beside its limit, a polars scan with one predicate written back, one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/filter_bench.py [--rows 1000000] [--recipe FILTER.yaml]

Generates `--rows` metadata rows as a triune dataset (images referenced by path, no bytes; shards
written with the sample Arrow schema and a manifest, 8 data_sources over the 8 tasks), then runs,
each in a child process of its own that times itself and reports its peak RSS, alternated
`--repeat` times (the best run of each counts: the machines are shared and noisy):

(a) `filter_dataset` with the stages of `--recipe` (default: V-Triune's answer rules and exact
    dedup as written below, plus the mixing filters; after the rule and dedup filters are merged,
    pass `--recipe` with the registered ones);
(b) the limit: `pl.scan_parquet(the same shards).filter(<one trivial predicate>).sink_parquet`.

Reported: rows/s of each, the ratio (a)/(b) and each one's peak RSS.
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
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triune_data.filters.base import Context, Filter, Verdict
from triune_data.filters.duplicate import Duplicate
from triune_data.filters.recipe import (
    FilterRecipe,
    LoadedFilterRecipe,
    load_filter_recipe,
    recipe_hash,
    resolve,
)
from triune_data.filters.sample_weight import SampleWeight
from triune_data.filters.source_cap import SourceCap
from triune_data.manifest import FileEntry, Manifest, RecipeInfo, SourceCounts, write_manifest
from triune_data.schema import arrow_schema
from triune_data.types import TASK_CATEGORY
from triune_data.writer import write_rejects, write_table

TASKS = list(TASK_CATEGORY)
SHARD_ROWS = 125_000

# ----------------------------------------------------------------------------------------------
# Stand-ins for the rule and dedup filters (what V-Triune's §5.1.1.1 rules do on these columns),
# unregistered, so that this bench runs before those filters are merged.


class _AnswerRules(Filter):
    """Bench stand-in: answers over 20 characters or with = [ ] ( ) ;."""

    name: ClassVar[str] = "answer_rules_standin"
    columns: ClassVar[tuple[str, ...]] = ("answer",)

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        answer = rows["answer"]
        chars = answer.str.len_chars()
        drop = (chars > 20) | answer.str.contains(r"[=\[\]();]")
        return Verdict(drop, detail=chars.cast(pl.Utf8) + " chars")


class _ExactDedupPaths(Filter):
    """Bench stand-in: a later row with the same image path and prompt text as an earlier one."""

    name: ClassVar[str] = "exact_dedup_standin"
    columns: ClassVar[tuple[str, ...]] = ("prompt", "provenance")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        key = rows.select(
            pl.struct(
                pl.col("provenance").struct.field("file"),
                pl.col("prompt").list.first().struct.field("content"),
            ).hash(seed=0)
        ).to_series()
        drop = ~key.is_first_distinct()
        return Verdict(drop, detail=pl.repeat("exact copy", rows.height, eager=True))


def default_recipe(tmp: Path) -> LoadedFilterRecipe:
    filters: tuple[Filter, ...] = (
        _AnswerRules.model_validate({"tasks": ["math", "puzzle", "science", "chart"]}),
        _ExactDedupPaths.model_validate({}),
        SourceCap.model_validate({"max_rows": 10**9}),
        Duplicate.model_validate({}),
        SampleWeight.model_validate({"weight": 1.0}),
    )
    recipe = FilterRecipe.model_validate({"name": "bench", "stages": [{"filter": f.name} for f in filters]})
    resolved = resolve(recipe, filters)
    return LoadedFilterRecipe(recipe, tmp / "bench.yaml", filters, resolved, recipe_hash(resolved))


# ----------------------------------------------------------------------------------------------
# The dataset


def _list_of_structs(offsets: np.ndarray, fields: dict[str, pa.Array], type_: pa.DataType) -> pa.Array:
    child = pa.StructArray.from_arrays(list(fields.values()), fields=list(type_.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), child, type=type_)


def shard(start: int, n: int, source: str, task: str, rng: np.random.Generator) -> pa.Table:
    schema = arrow_schema()
    ids = [f"{source}/{i:08d}" for i in range(start, start + n)]
    ones = np.arange(n + 1, dtype=np.int32)
    k = rng.integers(0, 1000, n)
    dup_of = np.where(rng.random(n) < 0.02, np.maximum(np.arange(n) - 7, 0), np.arange(n))  # 2% exact copies
    files = [f"img/{source}/{start + int(j):08d}.jpg" for j in dup_of]
    answers = [f"{v}" if v % 10 else f"x = {v} + ({v} * 3)" for v in k.tolist()]  # 10% break the rules
    is_box = task in ("detection", "grounding")
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
            ones,
            {
                "width": pa.array(rng.integers(200, 2000, n), pa.int32()),
                "height": pa.array(rng.integers(200, 2000, n), pa.int32()),
            },
            schema.field("image_sizes").type,
        ),
        "prompt": _list_of_structs(
            ones,
            {
                "role": pa.array(["user"] * n),
                "content": pa.array(
                    [f"<image>Question {int(j)} about {source}: what is shown?" for j in dup_of]
                ),
            },
            schema.field("prompt").type,
        ),
        "answer": pa.array(answers),
        "ground_truth": pa.array(answers),
        "boxes": _list_of_structs(
            np.arange(n + 1, dtype=np.int32) * (2 if is_box else 0),
            {
                name: (
                    pa.array(["obj"] * (2 * n if is_box else 0), pa.string())
                    if name == "label"
                    else pa.array(rng.random(2 * n if is_box else 0) * 100, pa.float64())
                )
                for name in ("label", "x1", "y1", "x2", "y2")
            },
            schema.field("boxes").type,
        ),
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


def run_filter(src: str, out: str, recipe: str | None, q: Any) -> None:
    from triune_data.filters.run import filter_dataset

    loaded = load_filter_recipe(recipe) if recipe else default_recipe(Path(out).parent)
    t = time.perf_counter()
    report = filter_dataset(src, loaded, out, overwrite=True)
    seconds = time.perf_counter() - t
    kept = sum(c.kept for c in report.sources.values())
    q.put({"seconds": seconds, "kept": kept, "peak_mb": _peak_mb()})


def run_limit(files: list[str], out: str, q: Any) -> None:
    t = time.perf_counter()
    Path(out).mkdir(parents=True, exist_ok=True)
    pl.scan_parquet(files).filter(pl.col("answer").str.len_chars() <= 20).sink_parquet(
        Path(out) / "all.parquet"
    )
    seconds = time.perf_counter() - t
    kept = pl.scan_parquet(Path(out) / "all.parquet").select(pl.len()).collect().item()
    q.put({"seconds": seconds, "kept": kept, "peak_mb": _peak_mb()})


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
    ap.add_argument("--recipe", help="A filter recipe to run as (a) (default: the stand-in stages above).")
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
        runs: dict[str, list[dict[str, Any]]] = {"filter": [], "limit": []}
        for _ in range(args.repeat):  # alternated, so that a noisy neighbour hits both alike
            runs["filter"].append(child(run_filter, str(tmp / "src"), str(tmp / "a"), args.recipe))
            runs["limit"].append(child(run_limit, [str(f) for f in files], str(tmp / "b")))
        best = {}
        for name, results in runs.items():
            r = min(results, key=lambda x: x["seconds"])
            r["rows_per_s"] = args.rows / r["seconds"]
            r["every_run_s"] = [round(x["seconds"], 2) for x in results]
            r["peak_mb"] = max(x["peak_mb"] for x in results)
            best[name] = r
            print(
                f"{name:>7}: {r['seconds']:6.2f} s (best of {args.repeat}: {r['every_run_s']})  "
                f"{r['rows_per_s']:>10,.0f} rows/s  kept {r['kept']:,}  peak RSS {r['peak_mb']:,.0f} MB"
            )
        ratio = best["filter"]["rows_per_s"] / best["limit"]["rows_per_s"]
        print(f"ratio filter/limit: {ratio:.2f} (target >= 0.5)")
        print(json.dumps(best))
    finally:
        if not args.tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
