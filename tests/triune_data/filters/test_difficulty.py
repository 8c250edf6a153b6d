"""Difficulty phase one: the completions file's every problem counted, statistics per verifier, the
per-shard cache, on a tiny real dataset (built with `build_dataset`) and hand-written completions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from triune_data.build import build_dataset
from triune_data.coords import Frame
from triune_data.errors import FileAccessError
from triune_data.filters import difficulty, get_filter
from triune_data.filters.base import FILE, POS, ROW, Context
from triune_data.filters.completions import index_completions, read_lines
from triune_data.filters.difficulty import DifficultyStats, use_scorer
from triune_data.verifiers import RewardResult, ScoreItem, score
from triune_data.writer import read_shard

PROMPTS = Path(__file__).resolve().parents[3] / "recipes" / "prompts" / "vtriune.yaml"
RECIPE = """\
name: difficulty-test
seed: 3
prompts: {prompts}
sources:
  - adapter: synthetic
    data_source: s_det
    options: {{task: detection, count: 3, image_size: [64, 48]}}
  - adapter: synthetic
    data_source: s_gr
    options: {{task: grounding, count: 3, image_size: [64, 48]}}
  - adapter: synthetic
    data_source: s_math
    options: {{task: math, count: 4, image_size: [64, 48]}}
"""
# Ground truth the synthetic source draws with seed 3 (asserted in `test_the_fixture_is_what_the_tests_assume`).
MATH_GT = {"s_math/train-000000": "17", "s_math/train-000002": "253"}
GR_BOX = [11, 28, 27, 44]  # s_gr/train-000000: one 16 × 16 box
DET_BOXES = {"orange hexagon": [34, 8, 49, 23], "red star": [13, 31, 27, 45]}  # s_det/train-000001


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("difficulty")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE.format(prompts=PROMPTS))
    build_dataset(recipe, root / "data")
    return root / "data"


def shard_files(root: Path) -> tuple[Path, ...]:
    manifest = json.loads((root / "manifest.json").read_text())
    return tuple(root / f["path"] for f in manifest["files"])


def load_rows(root: Path, columns: Sequence[str] = DifficultyStats.columns) -> pl.DataFrame:
    """The rows as the runner passes them: the filter's columns plus ROW, FILE and POS."""
    frames, start = [], 0
    for i, path in enumerate(shard_files(root)):
        df = pl.from_arrow(read_shard(path, columns=list(columns)))
        assert isinstance(df, pl.DataFrame)
        frames.append(
            df.with_columns(
                pl.int_range(start, start + df.height, dtype=pl.UInt64).alias(ROW),
                pl.lit(i, dtype=pl.UInt32).alias(FILE),
                pl.int_range(df.height, dtype=pl.UInt32).alias(POS),
            )
        )
        start += df.height
    return pl.concat(frames)


def context(root: Path, tmp_path: Path) -> Context:
    return Context(root=root, files=shard_files(root), recipe_dir=tmp_path, seed=0, work=tmp_path / "work")


def write_lines(path: Path, lines: Sequence[Any]) -> Path:
    """One line per entry: dicts and lists as JSON, strings as they are (to plant broken lines)."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def boxes_answer(*boxes: tuple[str, list[int] | list[float]]) -> str:
    return "<answer>" + json.dumps([{"bbox_2d": b, "label": lab} for lab, b in boxes]) + "</answer>"


def stats_by_id(rows: pl.DataFrame, verdict: Any) -> dict[str, dict[str, Any] | None]:
    return dict(zip(rows["id"].to_list(), verdict.updates["difficulty"].to_list(), strict=True))


def test_the_fixture_is_what_the_tests_assume(dataset: Path) -> None:
    rows = load_rows(dataset).to_dicts()
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == 10
    assert {k: by_id[k]["ground_truth"] for k in MATH_GT} == MATH_GT
    assert [[b["x1"], b["y1"], b["x2"], b["y2"]] for b in by_id["s_gr/train-000000"]["boxes"]] == [GR_BOX]
    det = {b["label"]: [b["x1"], b["y1"], b["x2"], b["y2"]] for b in by_id["s_det/train-000001"]["boxes"]}
    assert det == DET_BOXES


# ----------------------------------------------------------------------------------------------
# The completions file: every problem counted, with its line number.


def test_a_completions_file_with_planted_problems_gives_exact_counts(dataset: Path, tmp_path: Path) -> None:
    write_lines(
        tmp_path / "c.jsonl",
        [
            {"id": "s_math/train-000000", "completions": ["\\boxed{17}", 5, "\\boxed{3}"]},  # 1
            "",  # 2: blank, not a line
            "not json",  # 3
            {"id": "ghost/1", "completions": ["x"]},  # 4: unknown
            {"id": "s_math/train-000000", "completions": ["\\boxed{17}"]},  # 5: duplicate
            [1, 2],  # 6
            {"id": "s_math/train-000001", "completions": []},  # 7
            {"id": "s_gr/train-000000", "completions": ["x"]},  # 8: out of scope (tasks: math)
            {"id": "s_math/train-000002", "completion": "\\boxed{253}"},  # 9: the one-completion form
            {"id": "ghost/2", "completions": [None], "model_input_size": [10, 10]},  # 10: unknown
            {"id": "s_math/train-000003", "completions": ["x"], "model_input_size": "big"},  # 11
        ],
    )
    rows = load_rows(dataset).filter(pl.col("task") == "math")
    verdict = DifficultyStats(completions="c.jsonl", model="m", tasks=["math"], workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    facts = verdict.facts["completions"]
    assert facts["file"] == "c.jsonl"  # as the recipe names it: the manifest does not depend on the folder
    assert {k: v for k, v in facts.items() if k not in ("file", "sha256", "examples")} == {
        "lines": 10,
        "matched": 2,
        "out_of_scope": 1,
        "unknown_ids": 2,
        "duplicate_ids": 1,
        "malformed": 4,
        "non_string_completions": 2,
    }
    assert facts["examples"] == {
        "duplicate_ids": ["line 5: 's_math/train-000000' (first on line 1)"],
        "malformed": [
            "line 3: not JSON (Expecting value: line 1 column 1 (char 0))",
            "line 6: a JSON list, not an object",
            'line 7: "completions" is not a non-empty list',
            'line 11: "model_input_size" is not [width, height]',
        ],
        "non_string_completions": ["line 1: 1 of 3", "line 10: 1 of 1"],
        "unknown_ids": ["line 4: 'ghost/1'", "line 10: 'ghost/2'"],
    }
    assert facts["sha256"] == hashlib.sha256((tmp_path / "c.jsonl").read_bytes()).hexdigest()
    # Two math samples have a usable line; the other two (lines 7 and 11 are malformed) are missing.
    assert verdict.facts["by_source"] == {
        "s_math": {
            "scored": 2,
            "unscored": 2,
            "missing": 2,
            "unscorable": 0,
            "failed_completions": 0,
            "fewer_than_k": 0,
            "more_than_k": 0,
        }
    }
    got = stats_by_id(rows, verdict)
    # The non-string completion is not scored: 1 right of 2.
    assert got["s_math/train-000000"] == {
        "pass_rate": 0.5,
        "mean_reward": 0.5,
        "num_rollouts": 2,
        "model": "m",
        "metric": "pass@2",
    }
    assert got["s_math/train-000002"] == {
        "pass_rate": 1.0,
        "mean_reward": 1.0,
        "num_rollouts": 1,
        "model": "m",
        "metric": "pass@1",
    }
    assert got["s_math/train-000001"] is None and got["s_math/train-000003"] is None
    assert verdict.drop.to_list() == [False] * 4  # on_missing: keep


def test_overlong_lines_are_counted_and_skipped_without_losing_the_next(tmp_path: Path) -> None:
    long_line = json.dumps({"id": "a", "completions": ["x" * 500]})
    path = write_lines(tmp_path / "c.jsonl", [long_line, {"id": "b", "completions": ["y"]}, long_line[:90]])
    index = index_completions(path, wanted=["a", "b"], known=["a", "b"], max_line_bytes=100)
    assert (index.lines, index.malformed, index.matched) == (3, 2, 1)
    assert index.examples["malformed"][0] == "line 1: longer than 100 bytes"
    assert index.examples["malformed"][1].startswith("line 3: not JSON")
    assert index.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (line,) = read_lines(path, [index.found["b"]]).values()
    assert (line.line, line.id, line.completions) == (2, "b", ("y",))


def test_an_unreadable_completions_file_is_a_one_line_error(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match=r"nope\.jsonl: cannot read the completions file"):
        DifficultyStats(completions="nope.jsonl", model="m", workers=0).apply(
            load_rows(dataset), context(dataset, tmp_path)
        )


# ----------------------------------------------------------------------------------------------
# Statistics per verifier.


def test_math_right_and_wrong_give_pass_rate_one_half(dataset: Path, tmp_path: Path) -> None:
    write_lines(
        tmp_path / "c.jsonl",
        [
            {
                "id": "s_math/train-000000",
                "completions": ["\\boxed{17}", "\\boxed{18}", "so 17", "\\boxed{17}"],
            }
        ],
    )
    rows = load_rows(dataset)
    verdict = DifficultyStats(completions="c.jsonl", model="qwen", workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    assert stats_by_id(rows, verdict)["s_math/train-000000"] == {
        "pass_rate": 0.5,
        "mean_reward": 0.5,
        "num_rollouts": 4,
        "model": "qwen",
        "metric": "pass@4",
    }


def grounding_lines() -> list[dict[str, Any]]:
    # Shifts of the 16 px box by 0, 4 and 8 px: IoU 1, 12/20 = 0.6 and 8/24 = 1/3; then no answer.
    x1, y1, x2, y2 = GR_BOX
    shifted = [boxes_answer(("x", [x1 + d, y1, x2 + d, y2])) for d in (0, 4, 8)]
    return [{"id": "s_gr/train-000000", "completions": [*shifted, "I cannot see it"]}]


@pytest.mark.parametrize(
    ("box_iou", "mean_reward", "metric"),
    [
        # accuracy = 0.7 × mean IoU + 0.3 × completeness over matches at IoU >= τ:
        # τ 0.5: 1, 0.7 × 0.6 + 0.3 = 0.72, 0 (no match: nothing complete), 0 -> mean 0.43
        (0.5, (1 + 0.72) / 4, "iou@0.5"),
        # τ 0.7: the 0.6 box no longer matches
        (0.7, 1 / 4, "iou@0.7"),
    ],
)
def test_boxes_are_scored_at_the_fixed_iou_threshold(
    dataset: Path, tmp_path: Path, box_iou: float, mean_reward: float, metric: str
) -> None:
    write_lines(tmp_path / "c.jsonl", grounding_lines())
    rows = load_rows(dataset)
    verdict = DifficultyStats(completions="c.jsonl", model="m", box_iou=box_iou, workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    got = stats_by_id(rows, verdict)["s_gr/train-000000"]
    assert got is not None
    assert got["mean_reward"] == pytest.approx(mean_reward, abs=1e-12)
    assert (got["pass_rate"], got["num_rollouts"], got["metric"]) == (0.25, 4, metric)


@pytest.mark.parametrize(("model_frame", "mean_reward"), [("norm1000", 1.0), (None, 0.0)])
def test_boxes_are_read_in_the_models_frame(
    dataset: Path, tmp_path: Path, model_frame: Frame | None, mean_reward: float
) -> None:
    x1, y1, x2, y2 = GR_BOX  # of a 64 × 48 image, written as a Qwen2-VL model would: 0-1000
    norm = [x1 * 1000 / 64, y1 * 1000 / 48, x2 * 1000 / 64, y2 * 1000 / 48]
    write_lines(
        tmp_path / "c.jsonl", [{"id": "s_gr/train-000000", "completions": [boxes_answer(("x", norm))]}]
    )
    rows = load_rows(dataset)
    verdict = DifficultyStats(completions="c.jsonl", model="m", model_frame=model_frame, workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    got = stats_by_id(rows, verdict)["s_gr/train-000000"]
    assert got is not None and got["mean_reward"] == pytest.approx(mean_reward, abs=1e-9)


def test_detection_with_labels_and_a_missing_box(dataset: Path, tmp_path: Path) -> None:
    both = boxes_answer(*DET_BOXES.items())
    one = boxes_answer(("orange hexagon", DET_BOXES["orange hexagon"]))
    wrong_label = boxes_answer(("red star", DET_BOXES["orange hexagon"]))
    write_lines(tmp_path / "c.jsonl", [{"id": "s_det/train-000001", "completions": [both, one, wrong_label]}])
    rows = load_rows(dataset)
    verdict = DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    got = stats_by_id(rows, verdict)["s_det/train-000001"]
    assert got is not None
    # one of two boxes: (0.7 × 1/2 + 0.3 × (1 - (1/2 + 0)/2)) × 0.6 (one box too few) = 0.345;
    # a box under the wrong label matches nothing: 0 IoU, completeness 1 - (1 + 1)/2 = 0, × 0.6.
    assert got["mean_reward"] == pytest.approx((1 + 0.345 + 0) / 3, abs=1e-12)
    assert (got["pass_rate"], got["num_rollouts"], got["metric"]) == (pytest.approx(1 / 3), 3, "iou@0.5")


def test_num_samples_cuts_extra_completions_and_counts_short_rows(dataset: Path, tmp_path: Path) -> None:
    right, wrong = "\\boxed{17}", "\\boxed{1}"
    write_lines(
        tmp_path / "c.jsonl",
        [
            {"id": "s_math/train-000000", "completions": [right, wrong, right, wrong, right, right]},
            {"id": "s_math/train-000002", "completions": ["\\boxed{253}"]},
        ],
    )
    rows = load_rows(dataset).filter(pl.col("task") == "math")
    verdict = DifficultyStats(completions="c.jsonl", model="m", num_samples=4, workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    got = stats_by_id(rows, verdict)
    assert got["s_math/train-000000"] is not None and got["s_math/train-000002"] is not None
    assert (got["s_math/train-000000"]["pass_rate"], got["s_math/train-000000"]["num_rollouts"]) == (0.5, 4)
    assert (got["s_math/train-000002"]["pass_rate"], got["s_math/train-000002"]["num_rollouts"]) == (1.0, 1)
    by_source = verdict.facts["by_source"]["s_math"]
    assert (by_source["fewer_than_k"], by_source["more_than_k"], by_source["missing"]) == (1, 1, 2)


def test_on_missing_drop_drops_rows_without_statistics_with_the_reason(dataset: Path, tmp_path: Path) -> None:
    write_lines(
        tmp_path / "c.jsonl",
        [
            {"id": "s_math/train-000000", "completions": ["\\boxed{17}"]},
            {"id": "s_math/train-000001", "completions": [1, 2]},  # nothing to score
            {"id": "s_math/train-000002", "completions": ["\\boxed{253}", "\\boxed{1}"]},  # unknown verifier
        ],
    )
    rows = load_rows(dataset).filter(pl.col("task") == "math")
    broken = pl.when(pl.col("id") == "s_math/train-000002")
    rows = rows.with_columns(
        reward=pl.col("reward").struct.with_fields(
            broken.then(pl.lit("no_such_verifier")).otherwise(pl.field("verifier")).alias("verifier")
        )
    )
    verdict = DifficultyStats(completions="c.jsonl", model="m", on_missing="drop", workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    assert dict(zip(rows["id"], zip(verdict.drop, verdict.detail, strict=True), strict=True)) == {  # type: ignore[arg-type]
        "s_math/train-000000": (False, None),
        "s_math/train-000001": (True, "none of 2 completions scored (0 failed)"),
        "s_math/train-000002": (True, "none of 2 completions scored (2 failed)"),
        "s_math/train-000003": (True, "no completions line"),
    }
    counts = verdict.facts["by_source"]["s_math"]
    assert (counts["scored"], counts["unscorable"], counts["missing"], counts["failed_completions"]) == (
        1,
        2,
        1,
        2,
    )


def test_the_process_pool_gives_the_inline_numbers(dataset: Path, tmp_path: Path) -> None:
    write_lines(tmp_path / "c.jsonl", grounding_lines())
    rows = load_rows(dataset)
    inline = DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(
        rows, context(dataset, tmp_path)
    )
    pooled = DifficultyStats(completions="c.jsonl", model="m", workers=1).apply(
        rows, dataclasses.replace(context(dataset, tmp_path), work=tmp_path / "other")
    )
    assert pooled.updates["difficulty"].to_list() == inline.updates["difficulty"].to_list()


# ----------------------------------------------------------------------------------------------
# Resumable per shard.


@contextmanager
def counting_scorer(calls: list[int]) -> Iterator[None]:
    """Score inline, recording how many completions each call scores."""

    @contextmanager
    def factory(workers: int) -> Iterator[Any]:
        def run(items: Sequence[ScoreItem]) -> list[RewardResult]:
            calls.append(len(items))
            return [score(i) for i in items]

        yield run

    previous = use_scorer(factory)
    try:
        yield
    finally:
        use_scorer(previous)


def resume_lines() -> list[dict[str, Any]]:
    return [
        *grounding_lines(),
        {"id": "s_math/train-000000", "completions": ["\\boxed{17}", "\\boxed{2}"]},
        {"id": "s_math/train-000002", "completions": ["\\boxed{253}"]},
    ]


def test_a_rerun_scores_nothing_and_gives_the_same_statistics(dataset: Path, tmp_path: Path) -> None:
    write_lines(tmp_path / "c.jsonl", resume_lines())
    rows, ctx = load_rows(dataset), context(dataset, tmp_path)
    stats = DifficultyStats(completions="c.jsonl", model="m", workers=0)
    calls: list[int] = []
    with counting_scorer(calls):
        first = stats.apply(rows, ctx)
        assert sum(calls) == 7
        assert sorted(p.name[:6] for p in ctx.work.iterdir()) == ["00001-", "00002-"]  # s_gr, s_math
        calls.clear()
        again = stats.apply(rows, ctx)
    assert calls == []
    assert again.updates["difficulty"].to_list() == first.updates["difficulty"].to_list()
    assert again.facts == first.facts  # a resumed run reports exactly what a fresh one does


def test_rows_are_scored_a_block_at_a_time(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lines(tmp_path / "c.jsonl", resume_lines())
    rows, ctx = load_rows(dataset), context(dataset, tmp_path)
    whole = DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(rows, ctx)
    monkeypatch.setattr(difficulty, "ROWS_PER_BLOCK", 1)
    calls: list[int] = []
    with counting_scorer(calls):
        one_by_one = DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(
            rows, dataclasses.replace(ctx, work=tmp_path / "blocks")
        )
    assert calls == [4, 2, 1]  # s_gr/train-000000, then s_math 000000 and 000002
    assert one_by_one.updates["difficulty"].to_list() == whole.updates["difficulty"].to_list()


def test_a_rerun_scores_only_rows_the_cache_lacks(dataset: Path, tmp_path: Path) -> None:
    write_lines(tmp_path / "c.jsonl", resume_lines())
    rows, ctx = load_rows(dataset), context(dataset, tmp_path)
    stats = DifficultyStats(completions="c.jsonl", model="m", workers=0)
    calls: list[int] = []
    with counting_scorer(calls):
        stats.apply(rows.filter(pl.col("id") != "s_math/train-000002"), ctx)  # e.g. dropped before
        assert sum(calls) == 6
        calls.clear()
        whole = stats.apply(rows, ctx)
        assert calls == [1]
        calls.clear()
        stats.apply(rows, ctx)
        assert calls == []
    assert stats_by_id(rows, whole)["s_math/train-000002"] == {
        "pass_rate": 1.0,
        "mean_reward": 1.0,
        "num_rollouts": 1,
        "model": "m",
        "metric": "pass@1",
    }


def test_the_cache_follows_the_parameters_and_the_completions(dataset: Path, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", resume_lines())
    rows, ctx = load_rows(dataset), context(dataset, tmp_path)
    calls: list[int] = []
    with counting_scorer(calls):
        DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(rows, ctx)
        calls.clear()
        DifficultyStats(completions="c.jsonl", model="m", workers=7, on_missing="drop").apply(rows, ctx)
        assert calls == []  # neither workers nor on_missing changes a number
        DifficultyStats(completions="c.jsonl", model="m", box_iou=0.7, workers=0).apply(rows, ctx)
        assert sum(calls) == 7
        calls.clear()
        write_lines(path, [*resume_lines(), {"id": "ghost", "completions": ["x"]}])
        DifficultyStats(completions="c.jsonl", model="m", workers=0).apply(rows, ctx)
        assert sum(calls) == 7


def test_a_corrupt_cache_is_recomputed_not_trusted(dataset: Path, tmp_path: Path) -> None:
    write_lines(tmp_path / "c.jsonl", resume_lines())
    rows, ctx = load_rows(dataset), context(dataset, tmp_path)
    stats = DifficultyStats(completions="c.jsonl", model="m", workers=0)
    first = stats.apply(rows, ctx)
    for cache in ctx.work.iterdir():
        cache.write_bytes(b"not parquet")
    calls: list[int] = []
    with counting_scorer(calls):
        again = stats.apply(rows, ctx)
    assert sum(calls) == 7
    assert again.updates["difficulty"].to_list() == first.updates["difficulty"].to_list()


def test_registered_under_its_recipe_name() -> None:
    assert get_filter("difficulty_stats") is DifficultyStats
