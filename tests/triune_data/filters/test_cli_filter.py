"""`triune filter` on the command line: JSON and report output, one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]

RECIPE = """\
name: cli-mix
stages:
  - filter: source_cap
    max_rows: 5
  - filter: sample_weight
    weight: 3.0
"""


def triune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def one_line_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    line = res.stderr.strip()
    assert res.returncode == 2, res.stderr
    assert len(line.splitlines()) == 1 and "Traceback" not in line, res.stderr
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line


@pytest.fixture
def recipe(tmp_path) -> Path:
    p = tmp_path / "f.yaml"
    p.write_text(RECIPE)
    return p


def test_filter_json_and_report(small_dataset, recipe, tmp_path):
    res = runner.invoke(
        app, ["filter", str(small_dataset), "--recipe", str(recipe), "--out", str(tmp_path / "a"), "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["sources"]["synth_det"] == {
        "read": 12,
        "added": 0,
        "kept": 5,
        "rejected": 7,
        "rejected_by_reason": {"source_cap": 7},
    }
    assert [s["name"] for s in summary["stages"]] == ["source_cap", "sample_weight"]
    res = runner.invoke(
        app, ["filter", str(small_dataset), "--recipe", str(recipe), "--out", str(tmp_path / "b"), "--report"]
    )
    assert res.exit_code == 0, res.output
    assert "source_cap" in res.output and "synth_math" in res.output
    res = runner.invoke(
        app,
        [
            "filter",
            str(small_dataset),
            "--recipe",
            str(recipe),
            "--out",
            str(tmp_path / "c"),
            "--analyse-only",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sources"]["synth_det"]["kept"] == 12


def test_unknown_filter(small_dataset, recipe, tmp_path):
    recipe.write_text(RECIPE.replace("filter: source_cap", "filter: nope"))
    res = triune("filter", str(small_dataset), "--recipe", str(recipe), "--out", str(tmp_path / "o"))
    one_line_error(res, f"{recipe}:3: stages[0].filter: unknown filter 'nope' (known: ", "source_cap")
    assert not (tmp_path / "o").exists()


def test_bad_param_names_file_line_and_field(small_dataset, recipe, tmp_path):
    recipe.write_text(RECIPE.replace("weight: 3.0", "weight: -1"))
    res = triune("filter", str(small_dataset), "--recipe", str(recipe), "--out", str(tmp_path / "o"))
    one_line_error(res, f"{recipe}:6: stages[1].weight: -1 is less than or equal to the minimum of 0")


def test_foreign_parquet_and_other_schema_version(small_dataset, recipe, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(small_dataset, src)
    manifest = json.loads((src / "manifest.json").read_text())
    shard = src / manifest["files"][0]["path"]
    pq.write_table(pa.table({"x": [1]}), shard)
    res = triune("filter", str(src), "--recipe", str(recipe), "--out", str(tmp_path / "o"))
    one_line_error(res, f"{shard}: not a triune shard", "no column 'id'")
    manifest["schema_version"] = "0.0"
    (src / "manifest.json").write_text(json.dumps(manifest))
    res = triune("filter", str(src), "--recipe", str(recipe), "--out", str(tmp_path / "o"))
    one_line_error(res, "manifest.json: schema version 0.0")


def test_unwritable_out(small_dataset, recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = triune("filter", str(small_dataset), "--recipe", str(recipe), "--out", str(blocker / "out"))
    one_line_error(res, f"cannot create {blocker / 'out'}: a part of the path is a file")
    res = triune("filter", str(small_dataset), "--recipe", str(recipe), "--out", str(blocker))
    one_line_error(res, f"--out {blocker} is a file, not a directory")


def test_inspect_describes_filter_reasons_and_shows_the_lineage(small_dataset, recipe, tmp_path):
    from triune_data.inspect import inspect_dataset

    out = tmp_path / "f"
    assert (
        runner.invoke(
            app, ["filter", str(small_dataset), "--recipe", str(recipe), "--out", str(out)]
        ).exit_code
        == 0
    )
    info = inspect_dataset(out)
    assert info["problems"] == []
    assert info["reject_reasons"] == {
        "source_cap": "Rows of a data_source beyond `max_rows`; which ones is a seeded choice, stable across reruns."
    }
    assert info["lineage"]["parent"]["path"] == str(small_dataset)
    assert info["lineage"]["stages"][0]["sources"]["synth_det"] == {
        "read": 12,
        "kept": 5,
        "dropped": 7,
        "added": 0,
    }
    assert "lineage" not in inspect_dataset(small_dataset)
    table = runner.invoke(app, ["inspect", str(out)]).output
    assert "derived from" in table and "source_cap: synth_count 5/8" in table


def test_difficulty_curation_end_to_end_on_the_reward_pool(small_dataset, tmp_path):
    """Phase one scores completions on the reward pool `triune score` uses (the CLI wires it),
    phase two drops what the base model always solves; `inspect` shows the pass rates."""
    import polars as pl

    shards = sorted((small_dataset / "data").rglob("*.parquet"))
    table = pl.concat([pl.read_parquet(p, columns=["id", "task", "answer"]) for p in shards])
    math = table.filter(pl.col("task") == "math").sort("id")
    assert math.height >= 3
    ids, answers = math["id"].to_list(), math["answer"].to_list()
    lines = [
        {"id": ids[0], "completions": [f"\\boxed{{{answers[0]}}}"] * 4},  # always solved: dropped
        {"id": ids[1], "completions": [f"\\boxed{{{answers[1]}}}", "\\boxed{-99999}"] * 2},  # 0.5
        {"id": "nobody/such-id", "completions": ["\\boxed{1}"]},  # unknown: counted, not scored
        "not json",
    ]
    (tmp_path / "k4.jsonl").write_text(
        "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    )
    (tmp_path / "d.yaml").write_text(
        "name: diff\nstages:\n"
        "  - {filter: difficulty_stats, tasks: [math], completions: k4.jsonl, model: base, num_samples: 4, workers: 1}\n"
        "  - {filter: difficulty_band, tasks: [math]}\n"
    )
    out = tmp_path / "out"
    res = triune(
        "filter", str(small_dataset), "--recipe", str(tmp_path / "d.yaml"), "--out", str(out), "--json"
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    facts = json.dumps(report)
    assert '"unknown_ids": 1' in facts and '"malformed": 1' in facts, facts
    kept = pl.concat([pl.read_parquet(p) for p in sorted((out / "data").rglob("*.parquet"))])
    assert ids[0] not in kept["id"].to_list()  # pass rate 1.0: the base model already solves it
    half = kept.filter(pl.col("id") == ids[1])["difficulty"].to_list()[0]
    assert half["pass_rate"] == 0.5 and half["num_rollouts"] == 4 and half["model"] == "base"
    unscored = kept.filter(pl.col("id") == ids[2])["difficulty"].to_list()[0]
    assert unscored is None or unscored["pass_rate"] is None  # no completions: kept, unscored
    info = triune("inspect", str(out), "--json")
    assert info.returncode == 0, info.stderr
    assert "difficulty" in json.dumps(json.loads(info.stdout)["sources"])
