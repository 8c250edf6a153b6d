"""RewardClient against real service subprocesses, and the in-process backend with the same interface."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from _reward_testkit import PRELOAD, SERVICE_ARGS, TOKEN, Service, free_port

from triune_data.verifiers import ScoreItem, score
from triune_train.rewards.client import InProcessBackend, RewardClient, make_backend
from triune_train.rewards.protocol import RewardServiceError

THINK = "<think>\nThe chart peaks in 2019.\n</think>\n<answer>\n\\boxed{2019}\n</answer>"


def echo(value: float, source: str = "echo") -> ScoreItem:
    return ScoreItem(verifier="_test_echo", completion="", ground_truth=str(value), data_source=source)


def requests_served(service: Service) -> int:
    return service.health()["counts"]["requests"]


ITEMS = [
    ScoreItem(verifier="format", completion=THINK, ground_truth="2019", data_source="chartqa"),
    ScoreItem(verifier="format", completion="2019", ground_truth="2019", format_weight=1.0),
    {"verifier": "format", "completion": THINK, "ground_truth": "2019", "id": "as-dict"},
    {"verifier": "format", "completion": THINK, "ground_truth": "2019", "format_weight": -1},
    ScoreItem(verifier="no_such_verifier", completion=THINK, ground_truth="2019"),
]


def check(results: list) -> None:
    """Same results as plain `score()`; the invalid dict is an error naming its field."""
    as_dict = ScoreItem(verifier="format", completion=THINK, ground_truth="2019", id="as-dict")  # ids echo
    assert results[:3] == [score(ITEMS[0]), score(ITEMS[1]), score(as_dict)]
    assert results[3].status == "error" and "format_weight" in results[3].message
    assert results[4] == score(ITEMS[4]) and results[4].status == "error"


def test_client_matches_plain_score(service: Service) -> None:
    check(RewardClient([service.url]).score(ITEMS))


@pytest.mark.parametrize("workers", [0, 2])
def test_in_process_backend_matches_plain_score(workers: int) -> None:
    with InProcessBackend(workers, timeout_s=5, preload=[PRELOAD]) as backend:
        check(backend.score(ITEMS))
        check(asyncio.run(backend.ascore(ITEMS)))


def test_make_backend_picks_the_backend() -> None:
    assert isinstance(make_backend(["http://127.0.0.1:1"], 2), RewardClient)
    backend = make_backend(None, 0, timeout_s=3)
    assert isinstance(backend, InProcessBackend) and backend.pool.timeout_s == 3
    backend.close()


def test_load_is_spread_over_two_servers(service: Service, service_b: Service) -> None:
    before = requests_served(service), requests_served(service_b)
    values = [i / 100 for i in range(96)]
    results = RewardClient([service.url, service_b.url], batch_size=8).score([echo(v) for v in values])
    assert [r.accuracy for r in results] == values
    after = requests_served(service), requests_served(service_b)
    assert after[0] > before[0] and after[1] > before[1]
    assert (after[0] - before[0]) + (after[1] - before[1]) == 12


def test_a_down_server_is_skipped(service: Service) -> None:
    client = RewardClient([f"http://127.0.0.1:{free_port()}", service.url], batch_size=4)
    results = client.score([echo(i / 10) for i in range(10)])
    assert [r.status for r in results] == ["ok"] * 10
    assert [s.healthy for s in client.servers] == [False, True]


def test_no_server_gives_errors_not_zeros() -> None:
    client = RewardClient([f"http://127.0.0.1:{free_port()}"], retries=1, backoff_s=0.01)
    results = client.score([echo(0.5), echo(0.6)])
    assert {r.status for r in results} == {"error"}
    assert "failed after 2 attempts" in results[0].message


def test_server_restart_mid_run(tmp_path: Path) -> None:
    server = Service(tmp_path, *SERVICE_ARGS).start()
    # 30 retries, at most 1 s apart: room for a restart on a loaded machine (~8 s seen on 2 busy cores)
    client = RewardClient([server.url], batch_size=5, retries=30, backoff_s=0.1, max_backoff_s=1.0)
    restarted = threading.Event()

    def restart() -> None:
        server.start()
        restarted.set()

    async def run() -> tuple[list, list]:
        first = await client.ascore([echo(i / 10) for i in range(10)])
        await asyncio.to_thread(server.stop)  # the client's kept-alive connections now point at nothing
        threading.Timer(0.3, restart).start()
        second = await client.ascore([echo(i / 10) for i in range(10, 20)])
        await client.aclose()
        return first, second

    try:
        first, second = asyncio.run(run())
    finally:
        restarted.wait(60)
        server.stop()
    assert [r.accuracy for r in first] == [i / 10 for i in range(10)]
    assert [r.status for r in second] == ["ok"] * 10
    assert [r.accuracy for r in second] == [i / 10 for i in range(10, 20)]


def test_deadline_turns_unscored_items_into_timeouts(service: Service) -> None:
    slow = ScoreItem(verifier="_test_sleep", completion="", ground_truth="", params={"seconds": 0.8})
    results = RewardClient([service.url], batch_size=1, deadline_s=0.3).score([slow] * 3)
    assert [r.status for r in results] == ["timeout"] * 3
    assert "0.3s deadline" in results[0].message and results[0].reward == 0.0
    for _ in range(300):  # let the shared server finish the abandoned items before other tests
        if service.health()["queue_depth"] == 0:
            break
        time.sleep(0.05)


def test_rejected_batch_is_an_error_per_item(service: Service) -> None:
    results = RewardClient([service.url], batch_size=100).score([echo(0.1)] * 70)  # server allows 64
    assert {r.status for r in results} == {"error"} and "HTTP 413" in results[0].message


def test_unsendable_items_fail_alone(service: Service) -> None:
    items = [
        echo(0.1),
        ScoreItem(verifier="format", completion="", ground_truth="", params="{not json"),
        {"verifier": "format", "completion": "", "ground_truth": "", "params": {"s": {1, 2}}},
        echo(0.4),
    ]
    results = RewardClient([service.url]).score(items)
    assert [r.status for r in results] == ["ok", "error", "error", "ok"]
    assert "params is not JSON" in results[1].message and results[3].accuracy == 0.4


def test_token(token_service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RewardServiceError, match="bearer token"):
        RewardClient([token_service.url], token="wrong").score([echo(0.5)])
    assert RewardClient([token_service.url], token=TOKEN).score([echo(0.5)])[0].accuracy == 0.5
    monkeypatch.setenv("TRIUNE_REWARD_TOKEN", TOKEN)
    assert RewardClient([token_service.url]).score([echo(0.25)])[0].accuracy == 0.25


def test_sync_score_inside_a_running_loop(service: Service) -> None:
    async def caller() -> list:
        return RewardClient([service.url]).score([echo(0.5)])  # a blocking call from async code

    assert asyncio.run(caller())[0].accuracy == 0.5


def test_health_reports_each_server(service: Service) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    reports = RewardClient([service.url, down]).health()
    assert [r["ok"] for r in reports] == [True, False]
    assert reports[0]["workers"] == 2 and "ConnectError" in reports[1]["error"]
    assert httpx.get(service.url + "/healthz").json()["status"] == "ok"


BAD_ITEMS = [
    ScoreItem(verifier="counting", completion=None, ground_truth="3"),  # type: ignore[arg-type]
    ScoreItem(verifier="counting", completion=["3"], ground_truth="3"),  # type: ignore[arg-type]
    ScoreItem(verifier="counting", completion=3, ground_truth="3"),  # type: ignore[arg-type]
    ScoreItem(verifier="counting", completion="3", ground_truth="3", accuracy_weight=-1.0),
    ScoreItem(verifier="counting", completion="3", ground_truth="3", step=-1),
    ScoreItem(verifier="counting", completion="3", ground_truth="3", total_steps=2.5),  # type: ignore[arg-type]
    ScoreItem(verifier="counting", completion="3", ground_truth="3", image_size=(0.0, 480.0)),
    ScoreItem(verifier="counting", completion="3", ground_truth="3", model_frame="sideways"),  # type: ignore[arg-type]
    ScoreItem(verifier="counting", completion="3", ground_truth="3", data_source=5),  # type: ignore[arg-type]
    ScoreItem(verifier="", completion="3", ground_truth="3"),
    ScoreItem(verifier="counting", completion="3", ground_truth=3),  # type: ignore[arg-type]
    ScoreItem(verifier="counting", completion="3", ground_truth="many"),
    ScoreItem(verifier="counting", completion="3", ground_truth="3", params={"tolerance": -1}),
    ScoreItem(verifier="counting", completion="3", ground_truth="3", params="[1]"),
    ScoreItem(verifier="detection", completion="3", ground_truth=[{"label": "dog", "bbox": [5, 0, 1, 2]}]),  # type: ignore[list-item]
    ScoreItem(verifier="mathh", completion="3", ground_truth="3"),
    ScoreItem(verifier="counting", completion="<answer>3</answer>", ground_truth="3", id="fine"),
]


@pytest.mark.parametrize("workers", [0, 2])
def test_in_process_backend_refuses_what_the_service_refuses(service: Service, workers: int) -> None:
    """One validation path: the same items, in process and through the service, give the same results."""
    remote = RewardClient([service.url]).score(BAD_ITEMS)
    with InProcessBackend(workers, timeout_s=5, preload=[PRELOAD]) as backend:
        local = backend.score(BAD_ITEMS)
    assert [r.status for r in local] == ["error"] * (len(BAD_ITEMS) - 1) + ["ok"]
    assert local == remote
    assert local == [score(item) for item in BAD_ITEMS]
