"""The build's output directory: only a triune build's may be resumed or overwritten, one build at a
time, and every way of failing to write it is one line (library and CLI, real file systems too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.triune_data.test_build import RECIPE, snapshot
from triune_data import outdir
from triune_data.build import build_dataset
from triune_data.errors import DatasetError

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "recipes" / "prompts" / "vtriune.yaml"
SMALL = """\
name: small-out
seed: 1
prompts: {prompts}
sources:
  - adapter: synthetic
    data_source: s
    options: {{task: counting, count: {count}, image_size: [64, 48]}}
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(SMALL.format(prompts=PROMPTS, count=20))
    return p


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 180):
    """`triune ...` in a subprocess: (exit code, stdout, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if k != "TRIUNE_DEBUG"}
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    p = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    return p.returncode, p.stdout, p.stderr


def one_line_error(rc: int, err: str, *words: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) <= 2 and "Traceback" not in err, err  # the error, and at most the debug hint
    for w in words:
        assert w in lines[0], (w, lines[0])


# ----------------------------------------------------------------------------------------------
# Whose directory: refusals that never touch the user's files.


def _user_folder(tmp: Path) -> Path:
    d = tmp / "mine"
    d.mkdir()
    (d / "README.md").write_text("my notes")
    (d / "data.csv").write_text("1,2")
    return d


@pytest.mark.parametrize(
    "flags, action",
    [({"resume": True}, "resume into"), ({"overwrite": True}, "overwrite"), ({}, "build into")],
    ids=["resume", "overwrite", "no-flag"],
)
def test_a_folder_no_build_made_is_refused_and_left_alone(small, tmp_path, flags, action):
    mine = _user_folder(tmp_path)
    before = snapshot(mine)
    with pytest.raises(DatasetError, match=f"refusing to {action} .*no triune build made it"):
        build_dataset(small, mine, **flags)
    assert snapshot(mine) == before and not (mine / outdir.MARKER).exists()


def test_the_recipe_folder_is_never_overwritten(small, tmp_path):
    """Before: --overwrite on the recipe's own folder deleted the recipe and its inputs."""
    with pytest.raises(DatasetError, match="no triune build made it"):
        build_dataset(small, tmp_path, overwrite=True)
    assert small.exists()


def test_a_build_folder_holding_the_recipe_is_not_overwritten(small, tmp_path):
    out = tmp_path / "out"
    build_dataset(small, out)
    moved = out / "recipe.yaml"
    shutil.copy(small, moved)  # the user keeps the recipe beside its output
    with pytest.raises(DatasetError, match="holds this build's input"):
        build_dataset(moved, out, overwrite=True)
    assert moved.exists()


def test_a_build_folder_is_resumed_and_overwritten(small, tmp_path):
    out = tmp_path / "out"
    build_dataset(small, out)
    assert (out / outdir.MARKER).is_file() and outdir.is_build_dir(out)
    first = snapshot(out)
    build_dataset(small, out, overwrite=True)
    assert snapshot(out) == first
    legacy = tmp_path / "legacy"  # a build from before the marker: its manifest says whose it is
    shutil.copytree(out, legacy)
    (legacy / outdir.MARKER).unlink()
    build_dataset(small, legacy, overwrite=True)
    assert snapshot(legacy) == first


# ----------------------------------------------------------------------------------------------
# One build at a time.


def test_a_second_build_on_a_locked_folder_is_one_line(small, tmp_path):
    out = tmp_path / "out"
    fd = outdir.claim(out, resume=False, overwrite=False)  # as a running build holds it
    try:
        with pytest.raises(DatasetError, match="another triune build is writing to"):
            build_dataset(small, out, overwrite=True)
        rc, _, err = cli("build-dataset", str(small), "--out", str(out), "--resume")
        one_line_error(rc, err, "another triune build is writing to", str(out))
    finally:
        outdir.release(fd)
    build_dataset(small, out, resume=True)  # the lock went with its holder


def test_two_builds_racing_on_one_folder(tmp_path):
    """Both start at once: one builds, the other says in one line that the folder is taken."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(SMALL.format(prompts=PROMPTS, count=300))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRIUNE_DEBUG", None)
    cmd = [sys.executable, str(ROOT / "cli.py"), "build-dataset", str(recipe), "--out", str(out), "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    codes = sorted(rc for rc, _, _ in results)
    winners = [r for r in results if r[0] == 0]
    assert len(winners) >= 1, results
    for rc, _, err in results:
        if rc != 0:
            one_line_error(rc, err)
            assert "another triune build is writing to" in err or "not empty" in err, err
    assert codes in ([0, 0], [0, 2])  # the loser may also arrive after the winner finished
    assert (out / "manifest.json").exists()


# ----------------------------------------------------------------------------------------------
# Unwritable --out: one line each.


def test_out_is_a_file(small, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a directory"):
        build_dataset(small, f)
    rc, _, err = cli("build-dataset", str(small), "--out", str(f))
    one_line_error(rc, err, "is a file, not a directory")


def test_out_is_under_a_file(small, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DatasetError, match="a part of the path is a file"):
        build_dataset(small, f / "sub" / "out")
    rc, _, err = cli("build-dataset", str(small), "--out", str(f / "out"))
    one_line_error(rc, err, "a part of the path is a file")


def _unshare() -> list[str] | None:
    """A private mount namespace where this test may mount a tmpfs (None where it cannot)."""
    if shutil.which("unshare") is None:
        return None
    for cmd in (["unshare", "-m"], ["unshare", "-rm"]):
        ok = subprocess.run(
            [
                *cmd,
                "sh",
                "-c",
                "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp",
            ],
            capture_output=True,
        )
        if ok.returncode == 0:
            return cmd
    return None


def _in_tmpfs(script: str, *, mount: Path, options: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = _unshare()
    if cmd is None:
        pytest.skip("no private mount namespace here (unshare); the injected full-disk tests cover it")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PY": sys.executable, "CLI": str(ROOT / "cli.py")}
    env.pop("TRIUNE_DEBUG", None)
    full = f"set -u\nmount -t tmpfs -o {options} tmpfs {mount}\n{textwrap.dedent(script)}"
    return subprocess.run([*cmd, "sh", "-c", full], capture_output=True, text=True, env=env, timeout=timeout)


def test_a_read_only_out_is_one_line(small, tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    p = _in_tmpfs(
        f'"$PY" "$CLI" build-dataset {small} --out {mount}/out; echo "rc=$?" >&2',
        mount=mount,
        options="ro,size=1m",
    )
    err = p.stderr
    assert "rc=2" in err and "Traceback" not in err, err
    assert "Read-only file system" in err and str(mount / "out") in err


def test_a_real_full_disk_is_one_line_and_resumes_to_the_same_bytes(tmp_path):
    """A tmpfs too small for the build: the CLI says so in one line; made larger, --resume
    finishes with the bytes of an uninterrupted build."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(prompts=PROMPTS))
    build_dataset(recipe, tmp_path / "clean")
    clean = snapshot(tmp_path / "clean")
    size = sum(len(b) for b in clean.values())
    mount = tmp_path / "disk"
    mount.mkdir()
    copy = tmp_path / "copy"
    script = f"""\
        "$PY" "$CLI" build-dataset {recipe} --out {mount}/out 2> {tmp_path}/first.err; echo "first=$?"
        mount -o remount,size={size * 4} {mount}
        "$PY" "$CLI" build-dataset {recipe} --out {mount}/out --resume 2> {tmp_path}/second.err; echo "second=$?"
        cp -r {mount}/out {copy}
    """
    p = _in_tmpfs(script, mount=mount, options=f"size={size // 2}")
    assert "first=2" in p.stdout and "second=0" in p.stdout, (p.stdout, p.stderr)
    first = (tmp_path / "first.err").read_text()
    one_line_error(2, first, "no space left on device", "--resume")
    assert snapshot(copy) == clean
