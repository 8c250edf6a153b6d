"""The filter runner end to end on a small synthetic dataset: counts, lineage, determinism, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triune_data.build import build_dataset
from triune_data.errors import DatasetError, TriuneInternalError
from triune_data.filters.base import Context, Filter, Verdict
from triune_data.filters.recipe import FilterRecipe, LoadedFilterRecipe, recipe_hash, resolve
from triune_data.filters.run import filter_dataset
from triune_data.manifest import manifest_sha256, read_manifest

PARENT = """\
name: parent
seed: 2
output: {shard_size_mb: 0.01, row_group_mb: 0.005}
sources:
  - {adapter: synthetic, data_source: s_puz, options: {task: puzzle, count: 30, image_size: [96, 72]}}
  - {adapter: synthetic, data_source: s_det, options: {task: detection, count: 60, image_size: [96, 72]}}
  - {adapter: synthetic, data_source: s_math, split: test, options: {task: math, count: 20, image_size: [96, 72]}}
"""

MIX = """\
name: mix
seed: 3
output: {shard_size_mb: 0.03, row_group_mb: 0.01}
stages:
  - {filter: source_cap, max_rows: 40}
  - {filter: duplicate}
  - {filter: sample_weight, weight: 2.0, tasks: [puzzle]}
  - {filter: task_cap, max_rows: 25, tasks: [puzzle]}
"""


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parent")
    (root / "r.yaml").write_text(PARENT)
    build_dataset(root / "r.yaml", root / "ds")
    return root / "ds"


@pytest.fixture
def mix(tmp_path) -> Path:
    p = tmp_path / "mix.yaml"
    p.write_text(MIX)
    return p


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".triune-build"
    }


def rows_of(root: Path) -> pl.DataFrame:
    m = read_manifest(root)
    return pl.concat([pl.read_parquet(root / f.path).drop("images") for f in m.files])


def test_counts_rejects_copies_and_lineage(parent, mix, tmp_path):
    out = tmp_path / "out"
    report = filter_dataset(parent, mix, out)
    m = read_manifest(out)
    assert m.parent is not None and m.parent.manifest_sha256 == manifest_sha256(parent)
    assert [s.name for s in m.stages] == ["source_cap", "duplicate", "sample_weight", "task_cap"]
    # Every source in every stage; each stage reads what the one before kept.
    for before, after in zip(m.stages, m.stages[1:], strict=False):
        assert set(before.sources) == set(after.sources) == {"s_puz", "s_det", "s_math"}
        for name in before.sources:
            assert after.sources[name].read == before.sources[name].kept
    cap, dup, _, tcap = m.stages
    assert (
        cap.sources["s_det"].read,
        cap.sources["s_det"].kept,
        cap.sources["s_det"].rejected_by_reason,
    ) == (
        60,
        40,
        {"source_cap": 20},
    )
    assert (dup.sources["s_puz"].read, dup.sources["s_puz"].added, dup.sources["s_puz"].kept) == (30, 30, 60)
    assert tcap.sources["s_puz"].rejected_by_reason == {"task_cap": 10}  # 5 samples and their copies
    assert (m.sources["s_puz"].read, m.sources["s_puz"].added, m.sources["s_puz"].kept) == (30, 30, 50)
    assert m.problems() == []
    df = rows_of(out)
    assert df["id"].n_unique() == df.height == 40 + 50 + 20
    puz = df.filter(pl.col("data_source") == "s_puz")
    assert puz["sample_weight"].to_list() == [2.0] * 50
    assert df.filter(pl.col("data_source") != "s_puz")["sample_weight"].to_list() == [1.0] * 60
    # A copy follows its original (when the cap kept both).
    ids = puz["id"].to_list()
    assert [ids[i - 1] for i, rid in enumerate(ids) if rid.endswith("~1")] == [i for i in ids if "~" not in i]
    rejects = pl.read_parquet(out / "rejects/rejects-00000-of-00001.parquet")
    assert rejects.group_by("data_source", "reason").len().sort("data_source").rows() == [
        ("s_det", "source_cap", 20),
        ("s_puz", "task_cap", 10),
    ]
    assert set(rejects.filter(pl.col("reason") == "source_cap")["detail"]) == {"cap 40 of 60"}
    assert set(rejects.filter(pl.col("reason") == "task_cap")["detail"]) == {"cap 25 of 30"}
    assert rejects["original_id"].null_count() == 0
    assert not (out / ".work").exists()
    assert json.loads((out / "recipe.json").read_text())["stages"][0]["filter"] == "source_cap"
    assert report.sources["s_det"].kept == 40 and report.files == len(m.files)
    card = (out / "README.md").read_text()
    assert "| 1 | `source_cap` | 110 | 20 | 0 | 90 | s_det 40/60, s_math 20/20, s_puz 30/30 |" in card
    assert "| 2 | `duplicate` | 90 | 0 | 30 | 120 |" in card


def test_the_same_input_gives_the_same_bytes(parent, mix, tmp_path):
    filter_dataset(parent, mix, tmp_path / "a")
    filter_dataset(parent, mix, tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_an_interrupted_run_resumes_to_the_same_bytes(parent, mix, tmp_path):
    filter_dataset(parent, mix, tmp_path / "clean")
    n_files = len(read_manifest(parent).files)
    assert n_files >= 4

    def crash(done: int) -> None:
        if done == n_files:  # every parent shard added, none of the open shards committed
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        filter_dataset(parent, mix, out, progress=crash)
    state = json.loads((out / ".work" / "state.json").read_text())
    assert any(s["shards"] for s in state["series"].values()), "some shards are committed before the crash"
    assert not list((out / ".work").rglob("*.tmp"))
    report = filter_dataset(parent, mix, out, resume=True)
    assert report.resumed_from > 0
    assert snapshot(out) == snapshot(tmp_path / "clean")


def test_resume_refuses_another_recipe(parent, mix, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        filter_dataset(parent, mix, out, progress=lambda done: (_ for _ in ()).throw(KeyboardInterrupt))
    mix.write_text(MIX.replace("seed: 3", "seed: 4"))
    with pytest.raises(DatasetError, match="another parent, recipe or mode"):
        filter_dataset(parent, mix, out, resume=True)


def test_a_chain_run_twice_equals_run_once(parent, mix, tmp_path):
    first = filter_dataset(parent, mix, tmp_path / "once")
    assert first.sources["s_det"].rejected == 20 and first.sources["s_puz"].added == 30
    assert first.sources["s_puz"].rejected == 10
    again = filter_dataset(tmp_path / "once", mix, tmp_path / "twice")
    for stage in again.stages:
        for c in stage.sources.values():
            assert (c.rejected, c.added) == (0, 0), stage.name
    once, twice = rows_of(tmp_path / "once"), rows_of(tmp_path / "twice")
    assert once.sort("id").equals(twice.sort("id"))


def test_analyse_only_counts_but_keeps_every_row_and_applies_updates(parent, mix, tmp_path):
    out = tmp_path / "out"
    report = filter_dataset(parent, mix, out, analyse_only=True)
    m = read_manifest(out)
    assert m.stages[0].name == "source_cap (analyse only)"
    assert m.stages[0].sources["s_det"].rejected_by_reason == {"source_cap": 20}
    assert m.stages[1].sources["s_puz"].added == 30
    assert {k: (s.read, s.kept, s.rejected) for k, s in m.sources.items()} == {
        "s_puz": (30, 30, 0),
        "s_det": (60, 60, 0),
        "s_math": (20, 20, 0),
    }
    df = rows_of(out)
    assert df.filter(pl.col("data_source") == "s_puz")["sample_weight"].to_list() == [2.0] * 30
    assert pq.read_metadata(out / "rejects/rejects-00000-of-00001.parquet").num_rows == 0
    assert report.analyse_only


# -- bad input -------------------------------------------------------------------------------------


def copy_parent(parent: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "parent"
    shutil.copytree(parent, dst)
    return dst


def test_a_foreign_parquet_is_one_line_naming_the_file(parent, mix, tmp_path):
    src = copy_parent(parent, tmp_path)
    shard = src / read_manifest(src).files[0].path
    pq.write_table(pa.table({"question": ["?"], "answer": ["!"]}), shard)
    with pytest.raises(DatasetError, match=rf"{shard}: not a triune shard of schema .* \(no column 'id'\)"):
        filter_dataset(src, mix, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_another_schema_version_is_one_line(parent, mix, tmp_path):
    src = copy_parent(parent, tmp_path)
    m = json.loads((src / "manifest.json").read_text())
    m["schema_version"] = "0.1"
    (src / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match=r"manifest.json: schema version 0.1, this triune reads"):
        filter_dataset(src, mix, tmp_path / "out")


def test_a_shard_of_another_schema_version_is_one_line(parent, mix, tmp_path):
    src = copy_parent(parent, tmp_path)
    shard = src / read_manifest(src).files[0].path
    table = pq.read_table(shard)
    meta = dict(table.schema.metadata)
    meta[b"triune"] = json.dumps({"schema_version": "0.9", "box_frame": "xyxy"}).encode()
    pq.write_table(table.replace_schema_metadata(meta), shard)
    with pytest.raises(DatasetError, match=rf"{shard}: schema version 0.9"):
        filter_dataset(src, mix, tmp_path / "out")


def test_no_dataset_and_the_output_being_the_input(parent, mix, tmp_path):
    with pytest.raises(DatasetError, match=r"no manifest\.json"):
        filter_dataset(tmp_path / "missing", mix, tmp_path / "out")
    with pytest.raises(DatasetError, match="is the dataset being filtered"):
        filter_dataset(parent, mix, parent)


class _Broken(Filter):
    """Test only: answers with a verdict of the wrong length."""

    name: ClassVar[str] = "broken_for_test"
    columns: ClassVar[tuple[str, ...]] = ("answer",)

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        return Verdict.keep_all(rows.height + 1)


class _DropsMath(Filter):
    """Test only: drops math rows and rewrites their answers."""

    name: ClassVar[str] = "drops_math_for_test"
    columns: ClassVar[tuple[str, ...]] = ("answer",)

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        drop = (rows["task"] == "math") & rows["id"].str.ends_with("1")
        return Verdict(drop, detail=rows["answer"], updates={"answer": rows["answer"] + "!"})


def unregistered(tmp_path: Path, *filters: Filter) -> LoadedFilterRecipe:
    # Built by hand: registering test filters would change the committed recipe schema.
    recipe = FilterRecipe.model_validate({"name": "t", "stages": [{"filter": f.name} for f in filters]})
    resolved = resolve(recipe, filters)
    return LoadedFilterRecipe(recipe, tmp_path / "t.yaml", filters, resolved, recipe_hash(resolved))


def test_a_verdict_of_the_wrong_shape_is_an_internal_error_naming_the_filter(parent, tmp_path):
    with pytest.raises(TriuneInternalError, match=r"filter broken_for_test: drop is 111 values"):
        filter_dataset(parent, unregistered(tmp_path, _Broken()), tmp_path / "out")


def test_scope_details_and_updates(parent, tmp_path):
    out = tmp_path / "out"
    filter_dataset(parent, unregistered(tmp_path, _DropsMath(data_sources=["s_math"])), out)
    m = read_manifest(out)
    assert m.stages[0].sources["s_math"].rejected_by_reason == {"drops_math_for_test": 2}  # ...01, ...11
    parent_rows = rows_of(parent).filter(pl.col("data_source") == "s_math")
    kept = rows_of(out).filter(pl.col("data_source") == "s_math")
    assert kept["answer"].to_list() == [
        a + "!" for a in parent_rows.filter(~pl.col("id").str.ends_with("1"))["answer"]
    ]
    assert (
        rows_of(out)
        .filter(pl.col("data_source") == "s_det")["answer"]
        .equals(rows_of(parent).filter(pl.col("data_source") == "s_det")["answer"])
    )
    rejects = pl.read_parquet(out / "rejects/rejects-00000-of-00001.parquet")
    assert (
        rejects["detail"].to_list() == parent_rows.filter(pl.col("id").str.ends_with("1"))["answer"].to_list()
    )


def test_a_filter_that_drops_everything_then_a_run_on_the_empty_result(parent, tmp_path):
    everything = tmp_path / "all.yaml"
    everything.write_text("name: zero\nstages:\n  - {filter: source_cap, max_rows: 0}\n")
    first = filter_dataset(parent, everything, tmp_path / "empty")
    assert first.to_json()["totals"] == {"read": 110, "added": 0, "kept": 0, "rejected": 110}
    assert read_manifest(tmp_path / "empty").files == []
    again = filter_dataset(tmp_path / "empty", everything, tmp_path / "again")
    assert again.to_json()["totals"] == {"read": 0, "added": 0, "kept": 0, "rejected": 0}
    assert set(again.stages[0].sources) == {"s_puz", "s_det", "s_math"}


class _WritesDifficulty(Filter):
    """Test only: drops nothing, writes a difficulty struct it never declared it reads."""

    name: ClassVar[str] = "writes_difficulty_for_test"
    drops: ClassVar[bool] = False
    columns: ClassVar[tuple[str, ...]] = ()

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        assert ctx.work.is_dir() and ctx.work.name.endswith("-writes_difficulty_for_test")
        difficulty = pl.DataFrame(
            {
                "pass_rate": pl.Series([0.25] * rows.height),
                "mean_reward": pl.Series([0.5] * rows.height),
                "num_rollouts": pl.Series([8] * rows.height, dtype=pl.Int32),
                "model": pl.Series(["m"] * rows.height),
                "metric": pl.Series(["pass@8"] * rows.height),
            }
        ).to_struct("difficulty")
        return Verdict.keep_all(rows.height, updates={"difficulty": difficulty})


def test_a_struct_update_of_an_unloaded_column_reaches_rows_and_copies(parent, tmp_path):
    from triune_data.filters.duplicate import Duplicate

    out = tmp_path / "out"
    loaded = unregistered(tmp_path, Duplicate(), _WritesDifficulty(data_sources=["s_puz"]))
    filter_dataset(parent, loaded, out)
    df = rows_of(out)
    puz = df.filter(pl.col("data_source") == "s_puz")
    assert puz.height == 60
    assert puz["difficulty"].struct.field("pass_rate").to_list() == [0.25] * 60
    assert puz["difficulty"].struct.field("num_rollouts").to_list() == [8] * 60
    assert df.filter(pl.col("data_source") != "s_puz")["difficulty"].null_count() == 80


def test_analyse_only_with_a_struct_update(parent, tmp_path):
    out = tmp_path / "out"
    loaded = unregistered(tmp_path, _DropsMath(), _WritesDifficulty())
    report = filter_dataset(parent, loaded, out, analyse_only=True)
    assert report.stages[0].sources["s_math"].rejected_by_reason == {"drops_math_for_test": 2}
    df = rows_of(out)
    assert df.height == 110 and df["difficulty"].null_count() == 0
