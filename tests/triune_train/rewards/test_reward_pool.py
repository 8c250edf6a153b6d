"""RewardPool: order, hard timeouts, crashes, killed workers, inline mode, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _reward_testkit as tv
import pytest

from triune_data.verifiers import ScoreItem, score
from triune_train.rewards.pool import RewardPool
from triune_train.rewards.protocol import RewardServiceError

THINK = "<think>\nTwo apples plus two apples.\n</think>\n<answer>\n\\boxed{4}\n</answer>"


def echo(value: float) -> ScoreItem:
    return ScoreItem(verifier="_test_echo", completion="", ground_truth=str(value))


def sleep(seconds: float) -> ScoreItem:
    return ScoreItem(verifier="_test_sleep", completion="", ground_truth="", params={"seconds": seconds})


def crash() -> ScoreItem:
    return ScoreItem(verifier="_test_exit", completion="", ground_truth="", params={"code": 7})


@pytest.fixture(scope="module")
def pool() -> RewardPool:
    with RewardPool(2, timeout_s=1.0, preload=[tv.PRELOAD], chunk_size=4) as p:
        yield p


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# Realistic format items plus hostile ones: all must come back exactly as score() returns them.
MIXED = [
    ScoreItem(verifier="format", completion=THINK, ground_truth="4"),
    ScoreItem(verifier="format", completion="The answer is 4.", ground_truth="4"),
    ScoreItem(
        verifier="format",
        completion="<answer>4</answer>",
        ground_truth="4",
        params={"format": {"mode": "boxed"}},
    ),
    ScoreItem(verifier="format", completion="x" * 70_000, ground_truth="4"),
    ScoreItem(verifier="no_such_verifier", completion=THINK, ground_truth="4"),
    ScoreItem(verifier="format", completion=THINK, ground_truth="4", params={"unknown_key": 1}),
    ScoreItem(verifier="_test_raise", completion="", ground_truth=""),
]


@pytest.mark.parametrize("workers", [0, 2])
def test_results_equal_plain_score(workers: int, pool: RewardPool) -> None:
    p = pool if workers else RewardPool(0)
    assert p.score(MIXED) == [score(i) for i in MIXED]
    assert p.score(MIXED)[-1].message == "_test_raise: RuntimeError: verifier bug"


def test_order_kept_across_many_chunks(pool: RewardPool) -> None:
    values = [i / 1000 for i in range(301)]
    results = pool.score([echo(v) for v in values])
    assert [r.accuracy for r in results] == values
    assert {r.components["pid"] for r in results} <= {float(p) for p in pool.pids()}


def test_dict_items_are_validated_in_the_worker(pool: RewardPool) -> None:
    good = {"verifier": "format", "completion": THINK, "ground_truth": "4", "format_weight": 1.0}
    bad = {"verifier": "format", "completion": THINK, "ground_truth": "4", "accuracy_weight": -2}
    results = pool.score([good, bad, "not an item"])
    assert (results[0].status, results[0].reward) == ("ok", 1.0)
    assert results[1].status == "error" and "accuracy_weight" in results[1].message
    assert results[2].status == "error" and results[2].message.startswith("invalid item")


def test_hung_item_times_out_and_pool_keeps_serving(pool: RewardPool) -> None:
    before = pool.stats()
    results = pool.score([echo(0.1), echo(0.2), sleep(3600), echo(0.4), echo(0.5), echo(0.6)])
    assert [r.status for r in results] == ["ok", "ok", "timeout", "ok", "ok", "ok"]
    assert "timeout" in results[2].message and results[2].reward == 0.0
    assert [r.accuracy for r in results[:2] + results[3:]] == [0.1, 0.2, 0.4, 0.5, 0.6]
    after = pool.stats()
    assert after["restarts"] == before["restarts"] + 1 and after["timeout"] == before["timeout"] + 1
    assert len(after["pids"]) == 2
    assert [r.accuracy for r in pool.score([echo(0.7), echo(0.8)])] == [0.7, 0.8]


def test_timeout_fires_while_large_chunks_wait() -> None:
    """Chunks bigger than a socket buffer must not be pushed at a busy (here: hung) worker."""
    big = "x" * 1_000_000
    hung = ScoreItem(verifier="_test_sleep", completion="", ground_truth="", params={"seconds": 3600})
    items = [hung] + [ScoreItem(verifier="_test_echo", completion=big, ground_truth="0.5")] * 2
    with RewardPool(1, timeout_s=1.0, preload=[tv.PRELOAD], chunk_size=1) as p:
        results = p.submit(items).result(timeout=60)
    assert [r.status for r in results] == ["timeout", "ok", "ok"]


def test_crashing_item_is_retried_once_then_error(pool: RewardPool) -> None:
    before = pool.stats()
    results = pool.score([echo(0.1), crash(), echo(0.3), echo(0.4), echo(0.5)])
    assert [r.status for r in results] == ["ok", "error", "ok", "ok", "ok"]
    assert "worker crashed (exit code 7)" in results[1].message and "retry" in results[1].message
    assert pool.stats()["crashes"] == before["crashes"] + 2  # first try and the retry
    assert len(pool.pids()) == 2


def test_item_that_crashes_once_succeeds_on_retry(pool: RewardPool, tmp_path: Path) -> None:
    item = ScoreItem(
        verifier="_test_crash_once", completion="", ground_truth="", params={"marker": str(tmp_path / "m")}
    )
    results = pool.score([echo(0.1), item, echo(0.3)])
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert results[1].components == {"retried": 1.0}


def test_worker_killed_mid_batch_loses_nothing(pool: RewardPool) -> None:
    victim, crashes = pool.pids()[0], pool.stats()["crashes"]
    fut = pool.submit([sleep(0.05) for _ in range(24)] + [echo(0.9)])
    time.sleep(0.2)
    os.kill(victim, signal.SIGKILL)
    results = fut.result(timeout=60)
    assert [r.status for r in results] == ["ok"] * 25 and results[-1].accuracy == 0.9
    assert victim not in pool.pids() and len(pool.pids()) == 2
    assert pool.stats()["crashes"] == crashes + 1


def test_concurrent_async_callers_get_their_own_results(pool: RewardPool) -> None:
    async def main() -> list[list[float]]:
        calls = [pool.ascore([echo(k + i / 100) for i in range(20)]) for k in range(3)]
        return [[r.accuracy for r in rs] for rs in await asyncio.gather(*calls)]

    assert asyncio.run(main()) == [[k + i / 100 for i in range(20)] for k in range(3)]


def test_threads_share_one_pool(pool: RewardPool) -> None:
    def call(k: int) -> list[float]:
        return [r.accuracy for r in pool.score([echo(k + i / 100) for i in range(30)])]

    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(call, range(8))) == [[k + i / 100 for i in range(30)] for k in range(8)]


def test_close_fails_queued_items_and_leaves_no_processes() -> None:
    p = RewardPool(1, timeout_s=30, preload=[tv.PRELOAD], chunk_size=1)
    pids = p.pids()
    fut = p.submit([sleep(0.5), sleep(0.5), sleep(0.5)])
    time.sleep(0.1)
    p.close()
    results = fut.result(timeout=10)
    assert {r.status for r in results} == {"error"} and results[-1].message == "reward pool closed"
    assert all(gone(pid) for pid in pids)
    with pytest.raises(RewardServiceError, match="closed"):
        p.submit([echo(1.0)])


def test_bad_preload_and_unpicklable_items_raise() -> None:
    with pytest.raises(RewardServiceError, match="no_such_module_xyz"):
        RewardPool(1, preload=["no_such_module_xyz"])
    with RewardPool(1) as p, pytest.raises(ValueError, match="cannot be sent"):
        p.submit([ScoreItem(verifier="format", completion="", ground_truth="", params={"f": lambda: 0})])


def test_empty_and_inline_ascore() -> None:
    p = RewardPool(0)
    assert p.score([]) == [] and p.stats()["pids"] == []
    assert asyncio.run(p.ascore([echo(0.25)]))[0].accuracy == 0.25


def test_every_result_echoes_its_item_id(pool: RewardPool) -> None:
    """Results made by the pool itself (timeouts, invalid items) carry the id too."""
    hung = ScoreItem(verifier="_test_sleep", completion="", ground_truth="", id="hung")
    items = [
        ScoreItem(verifier="_test_echo", completion="", ground_truth="0.5", id="a"),
        hung,
        {"verifier": "format", "completion": "", "ground_truth": "", "step": -1, "id": 7},
        {"verifier": "format", "completion": "", "ground_truth": ""},
    ]
    results = pool.score(items)
    assert [(r.id, r.status) for r in results] == [
        ("a", "ok"),
        ("hung", "timeout"),
        (7, "error"),
        (None, "ok"),
    ]
