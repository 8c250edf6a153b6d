"""The output directory of a build: whose it is, who is writing it, and what went wrong writing it.

- Ownership: a directory a triune build wrote holds `MARKER` (older ones: `manifest.json`). Only
  such a directory may be resumed into or overwritten; a non-empty directory without it (the
  user's folder, the recipe's own folder with its inputs) is refused in one line, never emptied.
  Nor is a directory that holds the recipe or a source's input.
- Exclusion: `MARKER` is also the lock file. A build holds an exclusive `flock` on it while it
  runs; a second build on the same directory fails at once, in one line. The kernel drops the
  lock when the process dies, however it dies.
- Run state: an interrupted run keeps what it committed in `.work/state.json` (`save_state`,
  `load_state`), so `--resume` continues where it stopped, and only with the same inputs.
- Write errors: a file in the way, a read-only directory, a full disk become one `DatasetError`
  line naming the path; a build stopped by a full disk resumes with `--resume`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from triune_data import atomic
from triune_data.errors import DatasetError

MARKER = ".triune-build"
_MARKER_TEXT = b"This directory is written by triune (`build-dataset`, `filter`); a running one holds a lock on this file.\n"
_OWNED_BY = (MARKER, "manifest.json")
STATE = "state.json"


def is_build_dir(out: Path) -> bool:
    """Did a triune build make `out` (its marker, or the manifest of a finished build)?"""
    return any((out / name).is_file() for name in _OWNED_BY)


def _empty(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def claim(out: Path, *, resume: bool, overwrite: bool, inputs: Iterable[Path] = ()) -> int:
    """Make `out` this build's output directory and lock it; returns the lock's file descriptor
    (close it to release). `inputs`: the recipe and its sources' files and folders, which an
    overwrite must never delete. Raises DatasetError (one line) when `out` cannot be used."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file, not a directory")
    if not _empty(out):
        if not is_build_dir(out):
            action = "resume into" if resume else "overwrite" if overwrite else "build into"
            raise DatasetError(
                f"refusing to {action} {out}: it is not empty and no triune build made it "
                f"(no {MARKER} or manifest.json); choose an empty or new --out"
            )
        if not (resume or overwrite):
            raise DatasetError(
                f"{out} is not empty: pass --resume to continue a build or --overwrite to replace it"
            )
    if overwrite and not resume:
        real = out.resolve()
        held = sorted(str(p) for p in inputs if _inside(p.resolve(), real))
        if held:
            raise DatasetError(f"refusing to overwrite {out}: it holds this build's input {held[0]}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / MARKER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise write_error(out, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatasetError(
            f"another triune build is writing to {out}; wait for it or choose another --out"
        ) from None
    try:
        if os.fstat(fd).st_size == 0:
            os.write(fd, _MARKER_TEXT)
        if overwrite and not resume:
            _clear(out)
    except OSError as exc:
        os.close(fd)
        raise write_error(out, exc) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _clear(out: Path) -> None:
    """Remove everything in the build directory `out` but its marker (the lock we hold)."""
    for entry in out.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def fresh_work(work: Path, *, resume: bool) -> bool:
    """Whether `work` holds an interrupted run's state to resume; otherwise it is emptied."""
    if resume and (work / STATE).exists():
        return True
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return False


def save_state(work: Path, state: Mapping[str, Any]) -> None:
    atomic.write_json(work / STATE, dict(state))


def load_state(work: Path, out: Path, *, expected: Mapping[str, Any], mismatch: str) -> dict[str, Any]:
    """The interrupted run's state in `work`; one line when it is unreadable or its `expected`
    keys differ (then `mismatch` says what the user changed)."""
    try:
        state = json.loads((work / STATE).read_text())
    except (ValueError, UnicodeDecodeError):
        raise DatasetError(
            f"{out}: the interrupted run's state is unreadable; rerun with --overwrite"
        ) from None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in expected.items()):
        raise DatasetError(f"{out}: {mismatch}; rerun without --resume")
    return state


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _no_space(exc: OSError) -> bool:
    # pyarrow reports a full disk as a plain OSError whose errno is None and whose text has it.
    return exc.errno == errno.ENOSPC or "No space left on device" in str(exc)


def write_error(out: Path, exc: OSError) -> DatasetError:
    """One line for an OSError met while writing the build directory `out`."""
    where = exc.filename if exc.filename else out
    if _no_space(exc):
        return DatasetError(
            f"no space left on device writing {where}; free some and rerun with --resume: "
            "the build continues from its last committed shard"
        )
    if isinstance(exc, NotADirectoryError) or (isinstance(exc, FileExistsError) and not Path(where).is_dir()):
        return DatasetError(f"cannot create {out}: a part of the path is a file, not a directory")
    reason = exc.strerror or str(exc).splitlines()[0]
    if exc.filename and not _inside(Path(exc.filename).resolve(), out.resolve()):
        return DatasetError(f"cannot use {where}: {reason}")  # not ours to write: an input, a tmpfs
    return DatasetError(f"cannot write {where}: {reason}")


__all__ = ["MARKER", "claim", "is_build_dir", "release", "write_error"]
