"""The reward service as a real subprocess: health, batches, limits, bad requests, bearer token."""

from __future__ import annotations

import httpx
import orjson
import pytest
from _reward_testkit import TOKEN, Service

THINK = "<think>\nCount the red cubes: 3.\n</think>\n<answer>\n\\boxed{3}\n</answer>"


def post(service: Service, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(service.url + "/v1/score", content=body, headers=headers or {}, timeout=30)


def test_healthz_reports_workers(service: Service) -> None:
    h = service.health()
    assert h["status"] == "ok" and h["protocol"] == "v1" and h["version"]
    assert h["workers"] == 2 and len(h["pids"]) == 2 and h["queue_depth"] >= 0
    assert set(h["counts"]) >= {"scored", "errors", "timeouts", "worker_restarts"}


def test_batch_results_in_order_with_ids_and_per_source_counts(service: Service) -> None:
    items = [
        {
            "id": "a",
            "verifier": "format",
            "completion": THINK,
            "ground_truth": "3",
            "data_source": "svc_clevr",
        },
        {"id": 7, "verifier": "format", "completion": "3", "ground_truth": "3", "data_source": "svc_clevr"},
        {"verifier": "_test_echo", "completion": "", "ground_truth": "0.75", "data_source": "svc_echo"},
        {"id": "bad", "verifier": "format", "completion": THINK, "ground_truth": "3", "step": -1},
        {
            "id": "boom",
            "verifier": "_test_raise",
            "completion": "",
            "ground_truth": "",
            "data_source": "svc_raise",
        },
        {
            "id": "hang",
            "verifier": "_test_sleep",
            "completion": "",
            "ground_truth": "",
            "data_source": "svc_hang",
        },
        {"id": "gone", "verifier": "no_such_verifier", "completion": THINK, "ground_truth": "3"},
    ]
    restarts = service.health()["counts"]["worker_restarts"]
    resp = post(service, orjson.dumps({"items": items}))
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r.get("id") for r in results] == ["a", 7, None, "bad", "boom", "hang", "gone"]
    assert [r["status"] for r in results] == ["ok", "ok", "ok", "error", "error", "timeout", "error"]
    assert (results[0]["reward"], results[1]["reward"], results[2]["accuracy"]) == (1.0, 0.0, 0.75)
    assert "step" in results[3]["message"] and "RuntimeError" in results[4]["message"]
    assert "no_such_verifier" in results[6]["message"]
    metrics = httpx.get(service.url + "/metrics", timeout=5).json()
    rows = {(m["data_source"], m["verifier"]): m for m in metrics["by_source"]}
    assert rows[("svc_clevr", "format")]["ok"] == 2
    assert rows[("svc_raise", "_test_raise")]["error"] == 1
    assert rows[("svc_hang", "_test_sleep")]["timeout"] == 1
    assert metrics["counts"]["worker_restarts"] == restarts + 1


def test_empty_batch(service: Service) -> None:
    assert post(service, b'{"items": []}').json() == {"results": []}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[]", 422, "items"),
        (b'{"items": {"verifier": "format"}}', 422, "items"),
        (b'{"items": [], "extra": 1}', 422, "nothing else"),
        (
            orjson.dumps({"items": [{"verifier": "format", "completion": "", "ground_truth": ""}] * 65}),
            413,
            "65 items",
        ),
        (
            orjson.dumps(
                {"items": [{"verifier": "format", "completion": "x" * 250_000, "ground_truth": ""}]}
            ),
            413,
            "bytes",
        ),
    ],
    ids=[
        "broken_json",
        "not_utf8",
        "array",
        "items_not_list",
        "extra_key",
        "too_many_items",
        "too_many_bytes",
    ],
)
def test_bad_requests_get_a_clear_4xx(service: Service, body: bytes, status: int, words: str) -> None:
    resp = post(service, body)
    assert resp.status_code == status
    assert words in resp.json()["error"]
    assert service.health()["status"] == "ok"  # and the server is still fine


def test_unknown_route_and_method(service: Service) -> None:
    assert httpx.get(service.url + "/v1/score", timeout=5).status_code == 405
    assert httpx.get(service.url + "/judge", timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": TOKEN}, 401),
        ({"authorization": f"Bearer {TOKEN}"}, 200),
    ],
    ids=["none", "wrong", "no_scheme", "right"],
)
def test_bearer_token(token_service: Service, headers: dict[str, str], status: int) -> None:
    body = orjson.dumps({"items": [{"verifier": "format", "completion": THINK, "ground_truth": "3"}]})
    assert post(token_service, body, headers).status_code == status
    assert httpx.get(token_service.url + "/healthz", headers=headers, timeout=5).status_code == status


def test_token_is_never_logged(token_service: Service) -> None:
    post(token_service, b'{"items": []}', {"authorization": f"Bearer {TOKEN}"})
    log = token_service.log.read_text()
    assert "reward service on http://127.0.0.1" in log and "token required" in log
    assert TOKEN not in log


def test_no_token_means_open(service: Service) -> None:
    assert post(service, b'{"items": []}', {"authorization": "Bearer anything"}).status_code == 200
