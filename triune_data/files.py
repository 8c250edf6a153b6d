"""Opening the files a source names: regular files only, read up to a byte limit.

A source can name anything readable: a FIFO (`open` waits forever for a writer), `/dev/zero` or a
symlink to it (`read` never ends), a sparse file of many GiB (MemoryError), a directory. Every
source file and image file is opened here: without blocking, refused unless it is a regular file
(symlinks are followed: datasets are often trees of links, as the Hugging Face cache is), and read
to at most a given number of bytes.

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.bin")
>>> open(p, "wb").write(b"12345")
5
>>> read_regular(p, max_bytes=5)
b'12345'
>>> try:
...     read_regular(p, max_bytes=4)
... except FileTooLarge as exc:
...     print(exc.strerror)
5 bytes, more than the limit of 4
>>> os.mkfifo(os.path.join(d, "fifo.png"))
>>> try:
...     read_regular(os.path.join(d, "fifo.png"), max_bytes=9)  # returns at once
... except NotRegularFile as exc:
...     print(exc.strerror)
a FIFO, not a regular file
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """The path names a directory, FIFO, device or socket (or holds a NUL byte)."""


class FileTooLarge(OSError):
    """The file holds more bytes than the caller's limit."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _open_fd(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A read-only descriptor of `path` if it is a regular file (after symlinks), opened without
    blocking, and its stat; `NotRegularFile` for anything else, FileNotFoundError /
    PermissionError as `open`."""
    if "\0" in os.fspath(path):
        raise NotRegularFile(errno.EINVAL, "the path holds a NUL byte", os.fspath(path).replace("\0", "\\0"))
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
            raise
        mode = os.stat(path).st_mode  # a socket, a device without a driver: still not a file
        raise NotRegularFile(errno.EINVAL, f"{_kind(mode)}, not a regular file", os.fspath(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open `path` for binary reading if it is a regular file (after symlinks), without blocking.

    Raises `NotRegularFile` for anything else, FileNotFoundError / PermissionError as `open` does.
    """
    return os.fdopen(_open_fd(path)[0], "rb")


def read_regular(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The bytes of the regular file `path`; `FileTooLarge` if it holds more than `max_bytes`.

    The size is checked before reading (a sparse 8 GiB file costs nothing), the read asks for what
    is there (a read of `max_bytes` would allocate all of it) and goes on only for a file that grew
    since, stopping one byte past the limit.
    """
    fd, st = _open_fd(path)
    try:
        size = st.st_size  # the stat that found a regular file: one fstat per file
        total, parts = 0, []
        if size <= max_bytes:
            chunk = os.read(fd, size + 1)
            # A regular file reads short only at its end: a second read only if it grew.
            while chunk:
                parts.append(chunk)
                total += len(chunk)
                if total > max_bytes or total <= size:
                    break
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
        if size > max_bytes or total > max_bytes:
            raise FileTooLarge(
                errno.EFBIG, f"{max(size, total)} bytes, more than the limit of {max_bytes}", os.fspath(path)
            )
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)


__all__ = ["FileTooLarge", "NotRegularFile", "open_regular", "read_regular"]
