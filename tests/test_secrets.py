"""The Hub token and the reward token never appear in any output: results, errors, logs, and the
tracebacks of TRIUNE_DEBUG=1 included."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
HUB_SECRET = "hf_SeCrEtHubToken0123456789abcdef"
REWARD_SECRET = "rw-SeCrEt-Reward-Token-42"
WRONG_SECRET = "rw-Wrong-Secret-Guess-99"
SECRETS = (HUB_SECRET, REWARD_SECRET, WRONG_SECRET)


def run(*args: str, env: dict[str, str], debug: bool) -> str:
    full = {
        k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "TRIUNE_REWARD_TOKEN", "TRIUNE_DEBUG")
    }
    full.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **env})
    if debug:
        full["TRIUNE_DEBUG"] = "1"
    p = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, env=full, timeout=180
    )
    return f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"


def assert_secret_free(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text[-3000:]
        assert secret[4:20] not in text  # not even part of one


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "TRIUNE_DEBUG"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["push", "dry-run"])
def test_the_hub_token_is_never_printed(small_dataset, tmp_path, debug, dry_run):
    data = tmp_path / "ds"
    shutil.copytree(small_dataset, data)
    args = ["push", str(data), "--repo-id", "someone/secret-test", *(["--dry-run"] if dry_run else [])]
    out = run(*args, env={"HF_TOKEN": HUB_SECRET}, debug=debug)
    assert ("exit 0" in out) if dry_run else ("exit 0" not in out), out  # offline: the upload fails
    assert_secret_free(out)
    (data / "manifest.json").write_text("{broken")  # and an error on the way in
    assert_secret_free(run(*args, env={"HF_TOKEN": HUB_SECRET}, debug=debug))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("secret-svc") / "service.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "TRIUNE_REWARD_TOKEN"}
    env.update({"PYTHONPATH": str(ROOT), "TRIUNE_REWARD_TOKEN": REWARD_SECRET})
    cmd = [sys.executable, "-m", "cli", "serve-rewards", "--port", str(port), "--workers", "0"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*cmd, "--log-level", "debug"], env=env, stdout=fh, stderr=fh)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url, log
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "TRIUNE_DEBUG"])
@pytest.mark.parametrize("token", [REWARD_SECRET, WRONG_SECRET], ids=["right-token", "wrong-token"])
def test_the_reward_token_is_never_printed_or_logged(server, tmp_path, debug, token):
    url, log = server
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"id": 1, "verifier": "counting", "completion": "3", "ground_truth": "3"}) + "\n"
    )
    out = run(
        "score", "--items", str(items), "--out", str(tmp_path / "r.jsonl"), "--server", url,
        env={"TRIUNE_REWARD_TOKEN": token, "HF_TOKEN": HUB_SECRET},
        debug=debug,
    )  # fmt: skip
    assert ("exit 0" in out) == (token == REWARD_SECRET), out
    assert_secret_free(out)
    for header in (f"Bearer {WRONG_SECRET}", f"bearer {REWARD_SECRET}x", REWARD_SECRET):
        httpx.get(url + "/healthz", headers={"authorization": header}, timeout=5)
        httpx.post(url + "/v1/score", content=b"{not json", headers={"authorization": header}, timeout=5)
    time.sleep(0.2)
    assert_secret_free(log.read_text())
    if (tmp_path / "r.jsonl").exists():
        assert_secret_free((tmp_path / "r.jsonl").read_text())
