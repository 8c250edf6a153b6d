"""Test kit for the reward tests: verifiers that misbehave on purpose, and a service subprocess.

The verifiers hang, crash their process, raise, or echo what they were given. Pool workers import
this module by name (`preload=[PRELOAD]`): the tests' directory must be on the workers' `sys.path`
(multiprocessing passes the parent's on; the service subprocess gets it through PYTHONPATH).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from triune_data.verifiers import Verdict, VerifierParams, VerifyContext, register_verifier

PRELOAD = "_reward_testkit"
TOKEN = "s3cret-Token-value"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # the checkout, where `cli.py` lives


class SleepParams(VerifierParams):
    seconds: float = 3600.0


class ExitParams(VerifierParams):
    code: int = 3


class OnceParams(VerifierParams):
    marker: str  # file created by the first (crashing) attempt


class NoParams(VerifierParams):
    pass


@register_verifier("_test_sleep", params=SleepParams)
def verify_sleep(completion: str, ground_truth, params: SleepParams, ctx: VerifyContext) -> Verdict:
    """Hangs like a pathological math-verify call (a busy loop: only a kill stops it)."""
    end = time.monotonic() + params.seconds
    while time.monotonic() < end:
        pass
    return Verdict(accuracy=1.0)


@register_verifier("_test_exit", params=ExitParams)
def verify_exit(completion: str, ground_truth, params: ExitParams, ctx: VerifyContext) -> Verdict:
    """Kills its own process, like a segfault in a C extension."""
    os._exit(params.code)


@register_verifier("_test_crash_once", params=OnceParams)
def verify_crash_once(completion: str, ground_truth, params: OnceParams, ctx: VerifyContext) -> Verdict:
    """Crashes the first time it sees `marker`, succeeds on the retry."""
    marker = Path(params.marker)
    if not marker.exists():
        marker.write_text("crashed once")
        os._exit(4)
    return Verdict(accuracy=1.0, components={"retried": 1.0})


@register_verifier("_test_raise", params=NoParams)
def verify_raise(completion: str, ground_truth, params: NoParams, ctx: VerifyContext) -> Verdict:
    raise RuntimeError("verifier bug")


@register_verifier("_test_echo", params=NoParams)
def verify_echo(completion: str, ground_truth, params: NoParams, ctx: VerifyContext) -> Verdict:
    """Accuracy = float(ground_truth), with the worker's pid: order and placement become visible."""
    return Verdict(accuracy=float(ground_truth), components={"pid": float(os.getpid())})


@register_verifier("_test_boxes", params=NoParams, boxes=True)
def verify_boxes(completion: str, ground_truth, params: NoParams, ctx: VerifyContext) -> Verdict:
    """Reports what it was given: gold box count and first x2, image width, progress."""
    first = ground_truth[0].x2 if ground_truth else -1.0
    width = ctx.image_size[0] if ctx.image_size else -1.0
    comps = {"boxes": float(len(ground_truth)), "first_x2": first, "width": width, "progress": ctx.progress}
    return Verdict(accuracy=1.0 if completion == "yes" else 0.0, components=comps)


# ----------------------------------------------------------------------------------------------
# A real service subprocess.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`triune serve-rewards` in a subprocess; stderr goes to `log`."""

    def __init__(self, tmp: Path, *args: str, token: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args, self.token, self.log = args, token, tmp / f"service-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        env = {k: v for k, v in os.environ.items() if k != "TRIUNE_REWARD_TOKEN"}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
        if self.token:
            env["TRIUNE_REWARD_TOKEN"] = self.token
        cmd = [sys.executable, "-m", "cli", "serve-rewards", "--port", str(self.port), *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/healthz", headers=headers, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"service did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def health(self) -> dict:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.get(self.url + "/healthz", headers=headers, timeout=5).json()


SERVICE_ARGS = ("--workers", "2", "--timeout-s", "1", "--preload", PRELOAD, "--log-level", "debug")
