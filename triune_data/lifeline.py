"""Worker processes die with the process that started them.

A build's or a reward pool's worker processes are daemons, but `daemon` only helps when the parent
exits normally: killed with SIGKILL (the OOM killer, `kill -9`), the parent leaves them running
forever, holding memory, files and tmpfs space. `die_with_parent()`, called first thing in a
worker, asks Linux to SIGKILL the worker when its parent goes (PR_SET_PDEATHSIG) and, where that
is not available, watches the parent from a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent(*, poll_s: float = 1.0) -> None:
    """Be killed when the parent process dies (call it at the start of a worker).

    A forkserver child's parent is the forkserver, which exits when the starting process is gone,
    but only once no child holds its "alive" pipe any more: each child inherits one end of that
    pipe (a private attribute of multiprocessing), which a worker does not need, so it drops it.
    """
    fs = getattr(multiprocessing.forkserver, "_forkserver", None)
    alive = getattr(fs, "_forkserver_alive_fd", None)
    if isinstance(alive, int):  # set in forkserver children only
        with contextlib.suppress(OSError):
            os.close(alive)
        fs._forkserver_alive_fd = None  # type: ignore[union-attr]
    parent = os.getppid()
    armed = False
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            armed = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent, poll_s), name="triune-lifeline", daemon=True).start()


def _watch(parent: int, poll_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(1)


__all__ = ["die_with_parent"]
