"""The data side and the reward service run without the `train` extra (torch, transformers).

Each command runs in a fresh interpreter whose import system says torch and transformers are not
installed (a `sys.meta_path` finder in front of all others), so a module-level import of either
anywhere on the data or reward path fails these tests. The training commands must answer with one
line naming the extra to install, exit 2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs `cli.main()` with argv[1:] as the command line, torch and transformers made uninstallable.
# `importlib.util.find_spec` answers None for them, as it does when a package is absent (libraries
# such as `datasets` probe for torch that way).
NO_TRAIN_EXTRA = """
import importlib.abc, importlib.util, sys

BLOCKED = {"torch", "transformers"}


def _blocked(name):
    return name.partition(".")[0] in BLOCKED


class NoTrainExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if _blocked(name) else _find_spec(name, package)
sys.meta_path.insert(0, NoTrainExtra())

import cli

sys.argv = ["triune", *sys.argv[1:]]
try:
    cli.main()
finally:
    loaded = sorted(m for m in sys.modules if _blocked(m))
    assert not loaded, loaded
"""


def triune(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", NO_TRAIN_EXTRA, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_blocker_blocks() -> None:
    """The harness itself: importing torch in it fails as if it were not installed."""
    probe = NO_TRAIN_EXTRA.split("import cli")[0] + "import torch\n"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "ModuleNotFoundError: No module named 'torch'" in res.stderr


def test_help_without_torch() -> None:
    out = ok(triune("--help"))
    for command in ("build-dataset", "inspect", "push", "export", "score", "serve-rewards", "train"):
        assert command in out
    assert "--resume" in ok(triune("train", "--help"))  # reading the options needs no torch


@pytest.mark.slow
def test_build_inspect_score_without_torch(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    ok(triune("build-dataset", ROOT / "recipes" / "demo.yaml", "--out", out, "--json"))
    summary = json.loads(ok(triune("inspect", out, "--json")))
    assert summary["rows_by_split"] == {"test": 32, "train": 256}, summary
    assert all(s["read"] == s["kept"] + s["rejected"] for s in summary["sources"].values())

    items = tmp_path / "items.jsonl"
    rows = [
        {"verifier": "math", "completion": "so \\boxed{4}", "ground_truth": "4", "data_source": "m"},
        {"verifier": "counting", "completion": "3", "ground_truth": "2", "data_source": "c"},
    ]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = tmp_path / "results.jsonl"
    ok(triune("score", "--items", items, "--out", results, "--workers", "0"))
    scored = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["status"], r["reward"]) for r in scored] == [("ok", 1.0), ("ok", 0.0)]


@pytest.mark.parametrize("command", ["train", "eval"])
def test_training_commands_name_the_extra(tmp_path: Path, command: str) -> None:
    args = {
        "train": ["train", ROOT / "recipes" / "train" / "demo.yaml", "--out", tmp_path / "run"],
        "eval": ["eval", "tiny:qwen2_5_vl", "--data", tmp_path, "--out", tmp_path / "eval"],
    }[command]
    res = triune(*args)
    line = res.stderr.strip()
    assert res.returncode == 2, res.stderr
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert f"`triune {command}` needs the training extra" in line
    assert "pip install 'triune[train]'" in line


def test_dependencies_leave_torch_to_the_train_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> dict[str, str]:
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower(): r for r in reqs}

    base, train = names(project["dependencies"]), names(project["optional-dependencies"]["train"])
    assert not {"torch", "transformers"} & set(base), base
    assert train["torch"] == "torch==2.13.0" and train["transformers"].startswith("transformers>=5")
    assert "<1" in base["typer"]  # capped below its next major
