"""The one opener for source and image files: regular files only, never blocking, read up to a limit."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from triune_data.files import FileTooLarge, NotRegularFile, open_regular, read_regular


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened the ordinary way blocks forever)."""

    def expired(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fifo(tmp: Path) -> Path:
    p = tmp / "image.png"
    os.mkfifo(p)
    return p


def dev_zero_link(tmp: Path) -> Path:
    p = tmp / "zero.jpg"
    p.symlink_to("/dev/zero")
    return p


def directory(tmp: Path) -> Path:
    p = tmp / "folder.png"
    p.mkdir()
    return p


def unix_socket(tmp: Path) -> Path:
    p = tmp / "sock.png"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()
    return p


def link_to_fifo(tmp: Path) -> Path:
    p = tmp / "link.png"
    p.symlink_to(fifo(tmp))
    return p


SPECIAL: dict[str, Callable[[Path], Path]] = {
    "fifo": fifo,
    "symlink-to-dev-zero": dev_zero_link,
    "directory": directory,
    "unix-socket": unix_socket,
    "symlink-to-fifo": link_to_fifo,
    "dev-null": lambda tmp: Path("/dev/null"),
}


@pytest.mark.parametrize("make", SPECIAL.values(), ids=SPECIAL.keys())
def test_special_files_are_refused_at_once(tmp_path, make):
    path = make(tmp_path)
    with deadline(10), pytest.raises(NotRegularFile, match="not a regular file"):
        read_regular(path, max_bytes=1 << 20)
    with deadline(10), pytest.raises(NotRegularFile):
        open_regular(path)


def sparse(tmp: Path) -> Path:
    p = tmp / "huge.png"
    with open(p, "wb") as fh:
        fh.truncate(8 << 30)  # 8 GiB of holes: costs nothing on disk, everything if read
    return p


def just_over(tmp: Path) -> Path:
    p = tmp / "big.png"
    p.write_bytes(b"x" * 1001)
    return p


@pytest.mark.parametrize("make", [sparse, just_over], ids=["sparse-8GiB", "one-byte-over"])
def test_files_over_the_limit_are_refused_unread(tmp_path, make):
    with pytest.raises(FileTooLarge, match="more than the limit of 1000"):
        read_regular(make(tmp_path), max_bytes=1000)


def test_a_file_at_the_limit_is_read_whole(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(b"y" * 1000)
    assert read_regular(p, max_bytes=1000) == b"y" * 1000
    link = tmp_path / "link.png"
    link.symlink_to(p)  # symlinks to regular files are fine (the Hub cache is made of them)
    assert read_regular(link, max_bytes=1000) == b"y" * 1000


@pytest.mark.parametrize(
    "name, error",
    [("a\0b.png", NotRegularFile), ("missing.png", FileNotFoundError)],
    ids=["nul-byte", "missing"],
)
def test_unusable_names(tmp_path, name, error):
    with pytest.raises(error):
        read_regular(str(tmp_path / name), max_bytes=10)
