"""Atomic writes: the old file or the new one, never a part; fsync of the file, then of the directory."""

import json
import os

import pytest

from triune_data import atomic


@pytest.fixture
def synced(monkeypatch):
    """Record what is fsynced, in order: ("file", name) or ("dir", name)."""
    calls = []
    real = os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(("dir" if os.path.isdir(path) else "file", os.path.basename(path)))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    return calls


def test_write_bytes_syncs_the_file_then_the_directory_after_the_rename(tmp_path, synced):
    target = tmp_path / "out" / "a.bin"
    atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [kind for kind, _ in synced] == ["file", "dir"]
    assert synced[1] == ("dir", "out")
    assert os.listdir(target.parent) == ["a.bin"]  # no temporary left


def test_write_json_is_stable(tmp_path):
    atomic.write_json(tmp_path / "a.json", {"b": [1, 2], "a": "é"})
    assert (tmp_path / "a.json").read_text(
        encoding="utf-8"
    ) == '{\n  "a": "é",\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": "é", "b": [1, 2]}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def produce(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic.write_file(target, produce)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_write_file_returns_what_the_callback_returns(tmp_path):
    assert atomic.write_file(tmp_path / "x", lambda tmp: tmp.write_text("12345")) == 5
    assert (tmp_path / "x").read_text() == "12345"


def test_swap_dir_replaces_a_directory_whole(tmp_path, synced):
    out = tmp_path / "export"
    out.mkdir()
    (out / "stale.txt").write_text("old run")

    def produce(tmp):
        (tmp / "train").mkdir()
        (tmp / "train" / "a.parquet").write_text("rows")
        return ["train/a.parquet"]

    assert atomic.swap_dir(out, produce) == ["train/a.parquet"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["train", "train/a.parquet"]
    assert ("file", "a.parquet") in synced and synced[-1] == ("dir", tmp_path.name)
    assert os.listdir(tmp_path) == ["export"]  # neither the new nor the old copy is left beside it


def test_a_failed_swap_leaves_the_old_directory(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "kept.txt").write_text("old run")

    def produce(tmp):
        (tmp / "half.txt").write_text("x")
        raise ValueError("conversion failed")

    with pytest.raises(ValueError):
        atomic.swap_dir(out, produce)
    assert os.listdir(out) == ["kept.txt"] and os.listdir(tmp_path) == ["export"]


def test_move_makes_both_directories_durable(tmp_path, synced):
    (tmp_path / "work").mkdir()
    src = tmp_path / "work" / "shard.parquet"
    src.write_text("rows")
    atomic.move(src, tmp_path / "data" / "shard.parquet")
    assert (tmp_path / "data" / "shard.parquet").read_text() == "rows" and not src.exists()
    assert synced == [("dir", "data"), ("dir", "work")]
