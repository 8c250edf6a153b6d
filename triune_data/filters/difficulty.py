"""Difficulty curation, phase one: `difficulty_stats` scores k completions per sample (V-Triune §5.1.1.2).

For every row in scope, the completions a model wrote for it (a completions file, see
`triune_data.filters.completions`) are scored by the row's own verifier through the one scoring
path (`score_item_for`, then `score`), and the row gets the `difficulty` struct:

- `mean_reward`: the mean accuracy reward of its scored completions (format left out: the paper
  filters on the IoU reward and on correctness, not on tags);
- `pass_rate`: the share whose accuracy is at least `success` (1.0: exactly right);
- `num_rollouts`: how many completions were scored (status ok; errors and timeouts are counted in
  the facts, never averaged in as zeros);
- `model`, and `metric`: `iou@0.5` for box verifiers, which are scored at that FIXED IoU threshold
  (the paper's difficulty filter, not the training schedule), else `pass@k`.

Phase two (`difficulty_band`) keeps rows by these numbers. With no band after it, this stage is the
analyse-only mode: it writes the statistics and drops nothing (unless `on_missing: drop`).

Scoring k × N completions is the expensive part, so it is resumable per shard: the statistics of
each parent shard's rows are cached under `Context.work` in a file named by the shard, its size,
the completions file's sha256 and the parameters, written atomically; a rerun reuses it and scores
only rows it lacks.

Scoring runs in `workers` local processes by default. `use_scorer` swaps in another backend: the
CLI passes the reward pool's (a hard per-item timeout), tests a counting one. `triune_data` never
imports the training side, so the swap is done from outside.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from triune_data import atomic, safe_json
from triune_data.coords import Frame
from triune_data.errors import UnknownVerifierError
from triune_data.filters.base import (
    BOX_TASKS,
    FILE,
    POS,
    REASONING_TASKS,
    Context,
    Filter,
    Verdict,
    register_filter,
)
from triune_data.filters.completions import CompletionsIndex, index_completions, read_lines
from triune_data.types import TASK_CATEGORY, Box, ImageSize, Provenance, RewardSpec, Sample, Task
from triune_data.verifiers import RewardResult, ScoreItem, get_verifier, score, score_item_for
from triune_data.writer import read_shard

log = logging.getLogger("triune.filter.difficulty")

Scorer = Callable[[Sequence[ScoreItem]], list[RewardResult]]
ScorerFactory = Callable[[int], AbstractContextManager[Scorer]]

ROWS_PER_BLOCK = 1024  # rows whose completions are read and scored together (k=16: ~16k completions)
BLOCK = 20_000  # completions per scorer call
CACHE_VERSION = 1  # bump when the cached columns or their meaning change
DIFFICULTY = pl.Struct(
    {
        "pass_rate": pl.Float64,
        "mean_reward": pl.Float64,
        "num_rollouts": pl.Int32,
        "model": pl.Utf8,
        "metric": pl.Utf8,
    }
)
_CACHE_SCHEMA = pa.schema(
    [
        ("pos", pa.int64()),
        ("id", pa.string()),
        ("pass_rate", pa.float64()),
        ("mean_reward", pa.float64()),
        ("num_rollouts", pa.int32()),
        ("metric", pa.string()),
        ("given", pa.int32()),  # completions on the line (before the `num_samples` cut)
        ("failed", pa.int32()),  # scored completions whose status was not ok
    ]
)


# ----------------------------------------------------------------------------------------------
# Scoring backends.


@contextmanager
def local_scorer(workers: int) -> Iterator[Scorer]:
    """Score in this process (`workers=0`) or in `workers` local processes. No hard per-item
    deadline (math-verify's own alarm still works: tasks run on a worker's main thread); a verifier
    stuck in C code stalls its process, which the reward pool (`use_scorer`) would kill."""
    if workers == 0:
        yield lambda items: [score(i) for i in items]
        return
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
        yield lambda items: list(pool.map(score, items, chunksize=64))


_scorer_factory: ScorerFactory = local_scorer


def use_scorer(factory: ScorerFactory | None) -> ScorerFactory:
    """Score completions with `factory(workers)` from now on (None: the local default); returns
    the factory in use before, so a caller can put it back."""
    global _scorer_factory
    previous = _scorer_factory
    _scorer_factory = factory or local_scorer
    return previous


# ----------------------------------------------------------------------------------------------
# The filter.


@dataclass(frozen=True, slots=True)
class RowStats:
    """One row's statistics (None numbers: nothing scored)."""

    pass_rate: float | None
    mean_reward: float | None
    num_rollouts: int
    metric: str | None
    given: int
    failed: int


@register_filter
class DifficultyStats(Filter):
    """No completion of the row could be scored (only with `on_missing: drop`); writes `difficulty`."""

    name: ClassVar[str] = "difficulty_stats"
    columns: ClassVar[tuple[str, ...]] = (
        "id",
        "data_source",
        "task",
        "ground_truth",
        "boxes",
        "image_sizes",
        "reward",
    )

    tasks: list[Task] | None = Field(
        default=list(REASONING_TASKS + BOX_TASKS),
        description="Only rows of these tasks (default: the paper's, reasoning and detection/grounding).",
    )
    completions: str = Field(description="Completions JSONL (relative to the filter recipe).")
    model: str = Field(
        min_length=1, max_length=300, description="Model that wrote them, recorded in each row."
    )
    num_samples: int | None = Field(
        default=None,
        ge=1,
        description="Expected k: rows with fewer are scored and counted, extra ones are cut.",
    )
    box_iou: float = Field(
        default=0.5, gt=0, le=1, description="Fixed IoU threshold for box verifiers (paper: 0.5)."
    )
    model_frame: Frame | None = Field(
        default=None,
        description="Frame the model writes boxes in (Qwen2/3-VL: norm1000; Qwen2.5-VL: pixel of the image it saw, "
        "from each line's model_input_size); default: the verifier params' `coords`.",
    )
    success: float = Field(
        default=1.0, ge=0, le=1, description="Accuracy reward at or above which a completion passes."
    )
    workers: int = Field(default=2, ge=0, le=256, description="Scoring processes (0: in this process).")
    on_missing: Literal["keep", "drop"] = Field(
        default="keep",
        description="Rows with no scored completion: keep them (null difficulty) or drop them.",
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        path = ctx.resolve(self.completions)
        index = index_completions(path, wanted=rows["id"].to_list(), known=_dataset_ids(ctx))
        stats: dict[int, RowStats] = {}  # position in `rows` -> its statistics
        cached = 0
        with _Lazy(self.workers) as scorer:
            for (file_index,), part in rows.with_row_index("_i").group_by(FILE, maintain_order=True):
                got, reused = self._shard(ctx, int(file_index), part, index, path, scorer)
                stats.update(got)
                cached += reused
        # Logged, not in the facts: a resumed run must write the same manifest as a fresh one.
        log.info("difficulty_stats: %d of %d rows from the cache in %s", cached, rows.height, ctx.work)
        return self._verdict(rows, stats, index)

    # -- one shard: cached statistics, then the rows the cache lacks --------------------------

    def _shard(
        self,
        ctx: Context,
        file_index: int,
        part: pl.DataFrame,
        index: CompletionsIndex,
        path: Path,
        scorer: _Lazy,
    ) -> tuple[dict[int, RowStats], int]:
        cache_path = (
            ctx.work / f"{file_index:05d}-{self._cache_key(ctx.files[file_index], index.sha256)}.parquet"
        )
        cache = _read_cache(cache_path)
        out: dict[int, RowStats] = {}
        todo: list[dict[str, Any]] = []
        for row in part.iter_rows(named=True):
            hit = cache.get(row[POS])
            if hit is not None and hit[0] == row["id"]:
                out[row["_i"]] = hit[1]
            elif row["id"] in index.found:
                todo.append(row)
        reused = len(out)
        for start in range(0, len(todo), ROWS_PER_BLOCK):  # a block's completions at a time in memory
            block = todo[start : start + ROWS_PER_BLOCK]
            lines = read_lines(path, [index.found[r["id"]] for r in block])
            for row, row_stats in zip(block, self._score_rows(block, index, lines, scorer), strict=True):
                out[row["_i"]] = row_stats
                cache[row[POS]] = (row["id"], row_stats)
        if todo:
            _write_cache(cache_path, cache)
        return out, reused

    def _score_rows(
        self, todo: list[dict[str, Any]], index: CompletionsIndex, lines: dict[int, Any], scorer: _Lazy
    ) -> list[RowStats]:
        items: list[ScoreItem] = []
        spans: list[tuple[int, int, int, bool]] = []  # per row: first item, item count, given, box
        for row in todo:
            line = lines[index.found[row["id"]].line]
            texts = line.completions if self.num_samples is None else line.completions[: self.num_samples]
            sample, box = self._sample(row)
            start = len(items)
            items += [
                score_item_for(
                    sample, t, model_input_size=line.model_input_size, model_frame=self.model_frame
                )
                for t in texts
                if t is not None
            ]
            spans.append((start, len(items) - start, len(line.completions), box))
        results: list[RewardResult] = []
        for a in range(0, len(items), BLOCK):
            results += scorer(items[a : a + BLOCK])
        return [self._row_stats(results[s : s + n], given, box) for s, n, given, box in spans]

    def _row_stats(self, results: list[RewardResult], given: int, box: bool) -> RowStats:
        ok = [r.accuracy for r in results if r.status == "ok" and math.isfinite(r.accuracy)]
        failed = len(results) - len(ok)
        if not ok:
            return RowStats(None, None, 0, None, given, failed)
        passed = sum(a >= self.success for a in ok)
        metric = f"iou@{self.box_iou:g}" if box else f"pass@{len(ok)}"
        return RowStats(passed / len(ok), math.fsum(ok) / len(ok), len(ok), metric, given, failed)

    def _sample(self, row: dict[str, Any]) -> tuple[Sample, bool]:
        """The stored sample as `score_item_for` reads it (reward, ground truth, boxes, first image
        size, id, data_source; the rest is not read), box verifiers at the fixed IoU threshold."""
        reward = row["reward"]
        params = reward["verifier_params"]
        try:
            box = get_verifier(reward["verifier"]).boxes
        except UnknownVerifierError:
            box = False  # `score` reports the unknown verifier on every completion
        if box:
            try:
                parsed = safe_json.loads(params or "{}")
            except ValueError:
                parsed = None  # broken params: `score` reports them
            if type(parsed) is dict:
                params = json.dumps({**parsed, "iou_threshold": self.box_iou}, sort_keys=True)
        sample = Sample(
            id=row["id"],
            data_source=row["data_source"],
            task=row["task"],
            category=TASK_CATEGORY[row["task"]],
            split="",
            images=[],
            image_sizes=[ImageSize(**z) for z in row["image_sizes"] or []],
            prompt=[],
            answer="",
            ground_truth=row["ground_truth"],
            boxes=[Box(**b) for b in row["boxes"] or []],
            reward=RewardSpec(reward["verifier"], params, reward["accuracy_weight"], reward["format_weight"]),
            sample_weight=1.0,
            difficulty=None,
            provenance=Provenance(source="", original_id=""),
        )
        return sample, box

    def _cache_key(self, shard: Path, completions_sha256: str) -> str:
        """Short hash of what the cached statistics depend on: the shard (name, size), the
        completions (content) and the parameters that change a number (not workers or scope)."""
        params = self.model_dump(include={"model", "num_samples", "box_iou", "model_frame", "success"})
        text = json.dumps(
            [CACHE_VERSION, shard.name, shard.stat().st_size, completions_sha256, params], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- the verdict ----------------------------------------------------------------------------

    def _verdict(self, rows: pl.DataFrame, stats: dict[int, RowStats], index: CompletionsIndex) -> Verdict:
        n = rows.height
        structs: list[dict[str, Any] | None] = [None] * n
        drop = [False] * n
        detail: list[str | None] = [None] * n
        by_source: dict[str, Counter[str]] = {}
        for i, source in enumerate(rows["data_source"].to_list()):
            counts = by_source.setdefault(source, Counter())
            s = stats.get(i)
            if s is None:
                counts["missing"] += 1
                why = "no completions line"
            else:
                counts["with_line"] += 1
                counts["failed_completions"] += s.failed
                if self.num_samples is not None and s.given != self.num_samples:
                    counts["fewer_than_k" if s.given < self.num_samples else "more_than_k"] += 1
                if s.num_rollouts:
                    counts["scored"] += 1
                    structs[i] = {
                        "pass_rate": s.pass_rate,
                        "mean_reward": s.mean_reward,
                        "num_rollouts": s.num_rollouts,
                        "model": self.model,
                        "metric": s.metric,
                    }
                    continue
                counts["unscorable"] += 1
                why = f"none of {s.given} completions scored ({s.failed} failed)"
            counts["unscored"] += 1
            if self.on_missing == "drop":
                drop[i], detail[i] = True, why
        keys = (
            "scored",
            "unscored",
            "missing",
            "unscorable",
            "failed_completions",
            "fewer_than_k",
            "more_than_k",
        )
        facts = {
            "completions": {**index.facts(), "file": self.completions},  # as the recipe names it
            "model": self.model,
            "box_metric": f"iou@{self.box_iou:g}",
            "success": self.success,
            "by_source": {src: {k: c[k] for k in keys} for src, c in sorted(by_source.items())},
        }
        return Verdict(
            pl.Series("drop", drop, dtype=pl.Boolean),
            detail=pl.Series("detail", detail, dtype=pl.Utf8),
            updates={"difficulty": pl.Series("difficulty", structs, dtype=DIFFICULTY)},
            facts=facts,
        )


class _Lazy:
    """The scorer, started on first use only: a rerun served from the cache starts no processes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._cm: AbstractContextManager[Scorer] | None = None
        self._scorer: Scorer | None = None

    def __call__(self, items: Sequence[ScoreItem]) -> list[RewardResult]:
        if self._scorer is None:
            self._cm = _scorer_factory(self.workers)
            self._scorer = self._cm.__enter__()
        results = self._scorer(items)
        if len(results) != len(items):
            raise RuntimeError(f"the scorer returned {len(results)} results for {len(items)} items")
        return results

    def __enter__(self) -> _Lazy:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)


def _dataset_ids(ctx: Context) -> list[str]:
    """Every sample id of the dataset (to tell a line for an out-of-scope row from an unknown id)."""
    ids: list[str] = []
    for f in ctx.files:
        ids += read_shard(f, columns=["id"]).column("id").to_pylist()
    return ids


def _read_cache(path: Path) -> dict[int, tuple[str, RowStats]]:
    """pos -> (id, statistics) from a cache file; empty when there is none or it is unreadable
    (a cache is only ever a shortcut: a broken one is recomputed, never trusted)."""
    if not path.exists():
        return {}
    try:
        table = pq.read_table(path, schema=_CACHE_SCHEMA)
    except (OSError, pa.ArrowException):
        return {}
    out: dict[int, tuple[str, RowStats]] = {}
    for r in table.to_pylist():
        out[r["pos"]] = (
            r["id"],
            RowStats(
                r["pass_rate"], r["mean_reward"], r["num_rollouts"], r["metric"], r["given"], r["failed"]
            ),
        )
    return out


def _write_cache(path: Path, cache: dict[int, tuple[str, RowStats]]) -> None:
    entries = sorted(cache.items())
    columns: dict[str, list[Any]] = {name: [] for name in _CACHE_SCHEMA.names}
    for pos, (sample_id, s) in entries:
        columns["pos"].append(pos)
        columns["id"].append(sample_id)
        for name in ("pass_rate", "mean_reward", "num_rollouts", "metric", "given", "failed"):
            columns[name].append(getattr(s, name))
    table = pa.table(columns, schema=_CACHE_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_file(path, lambda tmp: pq.write_table(table, tmp))


__all__ = ["DIFFICULTY", "DifficultyStats", "Scorer", "ScorerFactory", "local_scorer", "use_scorer"]
