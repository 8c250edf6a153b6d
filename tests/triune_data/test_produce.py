"""Worker processes of a build: they die with the build, and what a killed build leaves is cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triune_data import produce

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "recipes" / "prompts" / "vtriune.yaml"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_spill_directories_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(produce, "SPILL_ROOT", str(tmp_path))
    dead, alive = _dead_pid(), os.getpid()
    names = [f"triune-build-{dead}-abc", f"triune-build-{alive}-def", "triune-build-legacy", "other-dir"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "1-s-train.arrow").write_bytes(b"x" * 100)
    (tmp_path / f"triune-build-{dead}-file").write_text("a file, not a spill directory")
    removed = produce.remove_stale_spills()
    assert removed == [str(tmp_path / f"triune-build-{dead}-abc")]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*names[1:], f"triune-build-{dead}-file"])


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out.update(int(c) for c in text.split())
    return out


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead, waiting for its reaper


BUILD = """
import sys
from pathlib import Path
from triune_data.build import build_dataset
started = Path(sys.argv[3])
def progress(p):
    started.write_text("running")
build_dataset(sys.argv[1], sys.argv[2], workers=2, progress=progress)
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_killing_a_build_kills_its_workers_and_the_next_build_removes_its_spill(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: slow\nprompts: {PROMPTS}\nsources:\n  - adapter: synthetic\n    data_source: s\n"
        "    options: {task: counting, count: 20000, image_size: [160, 120]}\n"
    )
    started = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(recipe), str(tmp_path / "out"), str(started)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the build did not start"
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert workers, "a --workers 2 build has a worker process"
        spills = [p for p in Path(produce.SPILL_ROOT).glob(f"{produce.SPILL_PREFIX}{proc.pid}-*")]
        st = os.statvfs(produce.SPILL_ROOT)
        assert spills or st.f_bavail * st.f_frsize < 1 << 30  # a spill directory whenever tmpfs has room
        os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer does: no cleanup runs
        proc.wait()
        deadline = time.monotonic() + 20
        while not all(_gone(w) for w in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their build"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    for spill in spills:  # left behind by the kill (when /dev/shm had room for one) ...
        assert spill.exists()
    produce.remove_stale_spills()  # ... and removed by the next build's first step
    assert not any(s.exists() for s in spills)
