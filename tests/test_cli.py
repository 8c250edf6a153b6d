"""The command line: thin commands, JSON where output is data, one-line errors with exit code 2."""

import json
import os
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


# ----------------------------------------------------------------------------------------------
# One-line errors: the thing, the cause, exit 2, the TRIUNE_DEBUG hint; bugs exit 1.


def one_line_error(res: subprocess.CompletedProcess, *fragments: str) -> str:
    line = res.stderr.strip()
    assert res.returncode == 2, res.stderr
    assert len(line.splitlines()) == 1 and "Traceback" not in line, res.stderr
    assert line.startswith("error: ") and line.endswith("(TRIUNE_DEBUG=1 shows the traceback)"), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_missing_input_files_are_one_line(tmp_path, small_dataset):
    missing = tmp_path / "nope.jsonl"
    res = triune("score", "--items", str(missing), "--out", str(tmp_path / "o.jsonl"))
    one_line_error(res, f"{missing}: cannot read (No such file or directory)")
    res = triune(
        "score", "--data", str(small_dataset), "--completions", str(missing), "--out", str(tmp_path / "o")
    )
    one_line_error(res, f"{missing}: cannot read")


def test_an_unreadable_dataset_is_one_line(tmp_path, small_dataset):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    shard = next((copy / "data" / "synth_math").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    for args in (["inspect", str(copy)], ["export", str(copy), "--out", str(tmp_path / "v")]):
        one_line_error(triune(*args), shard.name, "cannot read")
    shard.unlink()
    one_line_error(triune("inspect", str(copy)), shard.name, "(missing)")


@pytest.mark.parametrize("command", ["score", "build-dataset", "export"])
def test_an_unwritable_out_is_one_line_before_any_work(tmp_path, small_dataset, small_recipe, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "out"  # under a file: nothing can be created there
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"verifier": "counting", "completion": "3", "ground_truth": "3"}) + "\n")
    args = {
        "score": ["score", "--items", str(items), "--out", str(out)],
        "build-dataset": ["build-dataset", str(small_recipe), "--out", str(out)],
        "export": ["export", str(small_dataset), "--out", str(out)],
    }[command]
    cause = {  # build-dataset claims its directory (triune_data.outdir), the others probe the path
        "build-dataset": "a part of the path is a file, not a directory",
    }.get(command, f"({blocker} is not a directory)")
    one_line_error(triune(*args), str(out), cause)
    res = triune("score", "--items", str(items), "--out", str(tmp_path))  # a directory, not a file
    one_line_error(res, str(tmp_path), "(it is a directory)")


def test_hub_errors_are_one_line(small_dataset):
    one_line_error(
        triune("push", str(small_dataset), "--repo-id", "bad id!", "--dry-run"), "bad repo id 'bad id!'"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_never_printed"}
    res = subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", "push", str(small_dataset), "--repo-id", "org/x"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    line = one_line_error(res, "datasets/org/x: offline mode is on")
    assert "hf_never_printed" not in res.stdout + line


def test_a_hub_auth_error_is_one_line(small_dataset, monkeypatch, capsys):
    import importlib

    import huggingface_hub
    import huggingface_hub.errors as hf

    http = importlib.import_module(hf.HfHubHTTPError.__mro__[1].__module__)
    response = http.Response(401, request=http.Request("POST", "https://huggingface.co/api/repos/create"))

    class Unauthorised:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            raise hf.HfHubHTTPError("401 Client Error: Unauthorized", response=response)

    monkeypatch.setattr(huggingface_hub, "HfApi", Unauthorised)
    code, err = run_main(monkeypatch, capsys, "push", str(small_dataset), "--repo-id", "org/x")
    assert (
        code == 2 and "datasets/org/x: not allowed (HTTP 401): HF_TOKEN" in err and len(err.splitlines()) == 1
    )


def test_a_port_in_use_is_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = triune("serve-rewards", "--port", str(port), "--workers", "0")
    one_line_error(res, f"cannot serve on 127.0.0.1:{port}: Address already in use")


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`cli.main()` in this process (so that tests can patch what it calls): (exit code, stderr)."""
    import cli

    monkeypatch.setattr(sys, "argv", ["triune", *args])
    monkeypatch.delenv("TRIUNE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    return exit_.value.code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (
            lambda: __import__("triune_data.errors").errors.TriuneInternalError("read 11 != kept 10"),
            "read 11 != kept 10",
        ),
        (lambda: KeyError("a bug"), "KeyError: 'a bug'"),
    ],
)
def test_internal_errors_exit_1_and_ask_for_a_report(monkeypatch, capsys, small_dataset, exc, shown):
    import triune_data.inspect

    def broken(path):
        raise exc()

    monkeypatch.setattr(triune_data.inspect, "inspect_dataset", broken)
    code, err = run_main(monkeypatch, capsys, "inspect", str(small_dataset))
    assert code == 1 and len(err.splitlines()) == 1
    assert (
        err.startswith("internal error: ")
        and shown in err
        and "please report" in err
        and "TRIUNE_DEBUG=1" in err
    )


def test_triune_debug_shows_the_traceback(tmp_path):
    env = {**os.environ, "TRIUNE_DEBUG": "1"}
    res = subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", "inspect", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 1 and "Traceback" in res.stderr and "DatasetError" in res.stderr


# ----------------------------------------------------------------------------------------------
# --json everywhere output is data; a progress bar for long score files; one server CLI.


def test_push_and_export_print_json(small_dataset, tmp_path):
    res = runner.invoke(app, ["push", str(small_dataset), "--repo-id", "org/x", "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    pushed = json.loads(res.output)
    assert pushed["dry_run"] is True and pushed["repo_id"] == "org/x"
    assert any(f["path"] == "manifest.json" for f in pushed["files"])
    assert pushed["bytes"] == sum(f["bytes"] for f in pushed["files"])
    res = runner.invoke(app, ["export", str(small_dataset), "--out", str(tmp_path / "v"), "--json"])
    assert res.exit_code == 0, res.output
    exported = json.loads(res.output)
    assert exported["format"] == "verl" and exported["files"]
    assert all((tmp_path / "v" / f["path"]).is_file() and f["rows"] > 0 for f in exported["files"])


@pytest.mark.parametrize("json_out", [False, True])
def test_score_shows_progress_on_stderr_unless_json(tmp_path, monkeypatch, json_out):
    import io

    from rich.console import Console

    import cli
    import triune_train.rewards.scoring as scoring

    items = tmp_path / "items.jsonl"
    row = {"verifier": "counting", "completion": "<answer>3</answer>", "ground_truth": "3"}
    items.write_text("".join(json.dumps(row) + "\n" for _ in range(7)))
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err_console", Console(file=screen, force_terminal=True, width=100))
    monkeypatch.setattr(scoring, "BLOCK", 2)  # a "long" file: four blocks
    args = ["score", "--items", str(items), "--out", str(tmp_path / "o.jsonl"), "--workers", "0"]
    res = runner.invoke(app, args + (["--json"] if json_out else []))
    assert res.exit_code == 0, res.output
    shown = screen.getvalue()
    if json_out:
        assert shown == "" and json.loads(res.stdout)["total"]["count"] == 7
    else:
        assert "scoring" in shown and "7/7" in shown and "2/7" in shown


def test_serve_rewards_has_every_option_of_the_service():
    text = runner.invoke(app, ["serve-rewards", "--help"], env={"COLUMNS": "200"}).output
    for option in (
        "--host",
        "--port",
        "--workers",
        "--timeout",
        "--preload",
        "--max-items",
        "--max-body-bytes",
        "--log-level",
    ):
        assert option in text, option
    from triune_train.rewards.protocol import MAX_BODY_BYTES, MAX_ITEMS

    assert f"default {MAX_ITEMS}" in text and MAX_BODY_BYTES == 64 << 20 and "default 64 MiB" in text
    import triune_train.rewards.service as service

    assert not hasattr(service, "main")  # one server CLI: `python -m triune_train.rewards.service` is gone
