"""Atomic, durable writes: a reader sees the old file or the new one, never a part of one.

Every write goes to a temporary name in the target's directory, is flushed to disk (`fsync` of the
file), renamed over the target, and the rename is made durable (`fsync` of the directory). After
a crash or power loss the target is either absent, the old version, or the complete new one, and
a leftover temporary (`.NAME.*.tmp`) marks an interrupted write.

- `write_bytes(path, data)`, `write_json(path, obj)`   whole contents at once;
- `write_file(path, produce)`   a file a callback writes (a parquet writer, a JSONL stream);
- `publish(tmp, path)`          a file written elsewhere (at its temporary name) goes live;
- `move(src, dst)`              a complete file changes its name;
- `swap_dir(path, produce)`     a whole directory a callback fills, swapped in for the old one;
- `check_writable(path)`        before a long job: can its output be written there at all?

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "a.json", {"b": 1})
>>> (d / "a.json").read_text()
'{\\n  "b": 1\\n}\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def fsync_dir(path: Path) -> None:
    """Make the directory entries of `path` (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """A fresh, unique temporary name beside `path` (the file is created empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path) -> None:
    """Make the complete file `tmp` live as `path`: fsync it, rename it over `path`, fsync the directory."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def move(src: Path, dst: Path) -> None:
    """Rename the complete, already durable file `src` to `dst` (another directory of the same
    file system), making both directory entries durable."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def write_file(path: Path, produce: Callable[[Path], T]) -> T:
    """Call `produce(tmp)` to write the file at a temporary path, then `publish` it as `path`.

    If `produce` raises, the temporary file is removed and `path` is untouched.
    """
    tmp = temp_path(path)
    try:
        result = produce(tmp)
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


def write_bytes(path: Path, data: bytes) -> None:
    write_file(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, obj: Any) -> None:
    """`obj` as indented JSON with sorted keys and a final newline (stable bytes for the same data)."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


def swap_dir(path: Path, produce: Callable[[Path], T]) -> T:
    """Call `produce(tmp_dir)` to fill a new directory, then put it in place of `path`.

    Every file in the new tree is fsynced before the swap. An existing `path` is first renamed
    aside and removed after the new one is in place, so at every moment one complete version is
    on disk under a known name (POSIX has no atomic exchange of two directories). If `produce`
    raises, the new directory is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        result = produce(tmp)
        for root, _, files in os.walk(tmp):
            for name in files:
                fsync_file(Path(root, name))
            fsync_dir(Path(root))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
    return result


def check_writable(path: Path, *, directory: bool = False) -> None:
    """Raise FileAccessError (one line) unless an output file (with `directory`: an output
    directory) can be created at `path`: found before a long job rather than at its end.

    `path` may not exist yet; its nearest existing ancestor must be a directory that takes a new
    file (probed with a temporary file, removed at once). Nothing else is created.
    """
    from triune_data.errors import FileAccessError

    want, other = ("directory", "file") if directory else ("file", "directory")
    if path.exists() and path.is_dir() != directory:
        raise FileAccessError(f"{path}: cannot write the output {want} there (it is a {other})")
    base = path if path.is_dir() else next(p for p in path.parents if p.exists())
    if not base.is_dir():
        raise FileAccessError(f"{path}: cannot write the output {want} there ({base} is not a directory)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".triune-probe.", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FileAccessError(
            f"{path}: cannot write the output {want} there ({exc.strerror or exc})"
        ) from None


__all__ = [
    "check_writable",
    "fsync_dir",
    "fsync_file",
    "move",
    "publish",
    "swap_dir",
    "temp_path",
    "write_bytes",
    "write_file",
    "write_json",
]
