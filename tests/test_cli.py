"""The command line: thin commands, JSON where output is data, one-line errors with exit code 2."""

import json
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def triune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands_with_examples():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("build-dataset", "inspect", "push", "export", "serve-rewards", "score"):
        assert cmd in out
    assert "Example" in runner.invoke(app, ["build-dataset", "--help"]).output


def test_build_then_inspect_json(small_recipe, tmp_path):
    out = tmp_path / "ds"
    res = runner.invoke(app, ["build-dataset", str(small_recipe), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["sources"]["synth_det"]["read"] == 12
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output)["sources"]["synth_math"]["kept"] == 10
    table = runner.invoke(app, ["inspect", str(out)]).output
    assert "synth_count" in table


def test_export_and_push_dry_run(small_dataset, tmp_path):
    res = runner.invoke(app, ["export", str(small_dataset), "--format", "verl", "--out", str(tmp_path / "v")])
    assert (
        res.exit_code == 0
        and re.search(r"train\.parquet\s+22 rows", res.output)
        and "synth_det" in res.output
    )
    res = runner.invoke(
        app, ["export", str(small_dataset), "--format", "easyr1", "--out", str(tmp_path / "e"), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert {"split": "test", "data_source": "synth_count", "rows": 8} in json.loads(res.output)["rows"]
    res = runner.invoke(app, ["export", str(small_dataset), "--int-boxes", "--out", str(tmp_path / "i")])
    gt = pq.read_table(tmp_path / "i" / "train.parquet").to_pylist()[0]["reward_model"]["ground_truth"]
    assert res.exit_code == 0 and re.fullmatch(r"<answer>\n\[\{'bbox_2d': \[\d+, \d+, \d+, \d+\].*", gt, re.S)
    res = runner.invoke(app, ["push", str(small_dataset), "--repo-id", "org/x", "--dry-run"])
    assert res.exit_code == 0 and "would upload" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["build-dataset", "/no/such/recipe.yaml", "--out", "/tmp/x"],
            "error: /no/such/recipe.yaml: file not found",
        ),
        (["inspect", "/no/such/dir"], "error: /no/such/dir: no manifest.json"),
        (["score", "--out", "/tmp/o.jsonl"], "error: give exactly one of --items FILE or --data DIR"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    res = triune(*args)
    assert res.returncode == 2
    assert res.stderr.strip().startswith(message), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_score_items_file(tmp_path):
    items = tmp_path / "items.jsonl"
    rows = [
        {"verifier": "math", "completion": "so \\boxed{4}", "ground_truth": "4", "data_source": "m"},
        {"verifier": "math", "completion": "so \\boxed{5}", "ground_truth": "4", "data_source": "m"},
        {
            "verifier": "detection",
            "completion": '<think>\none dog\n</think>\n<answer>\n[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]\n</answer>',
            "ground_truth": [{"label": "dog", "bbox": [100, 100, 300, 300]}],
            "image_size": [640, 480],
            "accuracy_weight": 1.0,
            "format_weight": 0.1,
            "data_source": "d",
        },
    ]
    items.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    out = tmp_path / "results.jsonl"
    res = runner.invoke(app, ["score", "--items", str(items), "--out", str(out), "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reward"] for r in results[:3]] == [1.0, 0.0, 1.0]
    assert results[3]["status"] == "error" and "line 4" in results[3]["message"]
    summary = json.loads(res.output)
    assert summary["by_source"]["m"]["mean_accuracy"] == 0.5


def test_score_completions_against_a_dataset(small_dataset, tmp_path):
    import pyarrow.parquet as pq

    rows = pq.read_table(
        next((small_dataset / "data" / "synth_math").glob("*.parquet")), columns=["id", "answer"]
    ).to_pylist()
    completions = tmp_path / "c.jsonl"
    lines = [{"id": r["id"], "completion": f"<think>easy</think> \\boxed{{{r['answer']}}}"} for r in rows]
    lines.append({"id": "nope/1", "completion": "x"})
    completions.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "r.jsonl"
    res = runner.invoke(
        app,
        [
            "score",
            "--data",
            str(small_dataset),
            "--completions",
            str(completions),
            "--out",
            str(out),
            "--workers",
            "0",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["reward"] == 1.0 for r in results[:-1])
    assert results[-1]["status"] == "error" and "nope/1" in results[-1]["message"]
