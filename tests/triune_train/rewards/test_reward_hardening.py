"""The reward service under hostile clients: bad items, idle and half-sent connections, hang-ups,
guessed routes, every spelling of the bearer scheme."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from _reward_testkit import SERVICE_ARGS, TOKEN, Service

from triune_train.rewards.service import bearer_matches

THINK = "<think>\nCount: 3.\n</think>\n<answer>\n\\boxed{3}\n</answer>"
GOOD = {"verifier": "format", "completion": THINK, "ground_truth": "3", "data_source": "ok"}
BOXES = {
    "verifier": "detection",
    "completion": '[{"bbox_2d": [1, 2, 30, 40], "label": "dog"}]',
    "ground_truth": [{"label": "dog", "bbox": [1, 2, 30, 40]}],
    "image_size": [100, 100],
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with short client limits: a request must arrive whole within 1 s, 64 connections."""
    s = Service(
        tmp_path_factory.mktemp("guarded"),
        *SERVICE_ARGS,
        "--request-timeout-s",
        "1",
        "--keep-alive-s",
        "1",
        "--max-connections",
        "64",
    )
    yield s.start()
    s.stop()


# ----------------------------------------------------------------------------------------------
# One bad item never sinks a batch.

SURROGATE = "\ud800"
BAD_ITEMS = {
    "completion": {**GOOD, "completion": "the answer is " + SURROGATE},
    "ground_truth": {**GOOD, "ground_truth": "3" + SURROGATE},
    "id": {**GOOD, "id": "item-" + SURROGATE},
    "data_source": {**GOOD, "data_source": "src" + SURROGATE},
    "verifier": {**GOOD, "verifier": "format" + SURROGATE},
    "params-key": {**GOOD, "params": {SURROGATE: 1}},
    "params-value": {**GOOD, "params": {"think": SURROGATE}},
    "box-label": {**BOXES, "ground_truth": [{"label": "dog" + SURROGATE, "bbox": [1, 2, 30, 40]}]},
    "nan-step": {**GOOD, "step": float("nan")},
    "infinite-weight": {**GOOD, "accuracy_weight": float("inf")},
    "nan-image-size": {**BOXES, "image_size": [float("nan"), 100]},
}


@pytest.mark.parametrize("bad", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_one_bad_item_is_an_error_and_the_rest_are_scored(service: Service, bad: dict) -> None:
    items = [{**GOOD, "id": 1}, bad, {**GOOD, "id": 3}, {**BOXES, "id": 4}]
    body = json.dumps({"items": items}).encode()  # json writes "\ud800" escapes and NaN / Infinity
    resp = httpx.post(service.url + "/v1/score", content=body, timeout=30)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["ok", "error", "ok", "ok"], results
    assert [results[i].get("id") for i in (0, 2, 3)] == [1, 3, 4]
    assert results[1]["message"] and service.health()["status"] == "ok"


def test_a_deep_or_huge_body_is_a_clear_400(service: Service) -> None:
    for body in (b'{"items": ' + b"[" * 2000 + b"]" * 2000 + b"}", b'{"items": [' + b"1" * 5000 + b"]}"):
        resp = httpx.post(service.url + "/v1/score", content=body, timeout=30)
        assert resp.status_code in (400, 422), resp.text
    assert service.health()["status"] == "ok"


# ----------------------------------------------------------------------------------------------
# Idle, half-sent and hung-up connections.


def _open(service: Service, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    if first:
        s.sendall(first)
    return s


def _closed_by_server(s: socket.socket) -> bool:
    """Has the server closed `s` (whatever it sent before is read and dropped)?"""
    s.settimeout(0.05)
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


HALF_HEADER = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: appl"
HALF_BODY = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b'{"items": ['


def test_idle_and_half_sent_connections_are_closed_and_real_requests_served(guarded: Service) -> None:
    flood = [_open(guarded) for _ in range(150)]
    flood += [_open(guarded, HALF_HEADER) for _ in range(75)]
    flood += [_open(guarded, HALF_BODY) for _ in range(75)]
    try:
        # While 300 connections sit there (the cap is 64), real requests still get through.
        for i in range(10):
            item = {**GOOD, "id": i}
            resp = httpx.post(guarded.url + "/v1/score", json={"items": [item]}, timeout=10)
            assert resp.status_code == 200 and resp.json()["results"][0]["status"] == "ok"
        time.sleep(2.5)  # past the 1 s whole-request deadline
        still_open = [s for s in flood if not _closed_by_server(s)]
        assert not still_open, f"{len(still_open)} of {len(flood)} connections still open"
        assert guarded.health()["status"] == "ok"
    finally:
        for s in flood:
            s.close()


def test_a_kept_alive_connection_is_closed_when_idle_not_while_used(guarded: Service) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        for i in range(5):  # requests 0.3 s apart on one connection: within the keep-alive timeout
            assert client.post("/v1/score", json={"items": [{**GOOD, "id": i}]}).status_code == 200
            time.sleep(0.3)
    s = _open(guarded, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    time.sleep(2.0)  # idle after a response: uvicorn's keep-alive timeout (1 s here)
    assert _closed_by_server(s)
    s.close()


def test_slow_but_steady_uploads_within_the_deadline_are_served(guarded: Service) -> None:
    body = json.dumps({"items": [{**GOOD, "id": 9}]}).encode()
    s = _open(guarded, b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    s.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode())
    for k in range(0, len(body), 20):
        s.sendall(body[k : k + 20])
        time.sleep(0.02)
    s.settimeout(10)
    reply = b""
    while b'"results"' not in reply:
        chunk = s.recv(65536)
        assert chunk, reply
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    s.close()


def test_clients_that_hang_up_are_one_rate_limited_line(guarded: Service) -> None:
    before = guarded.log.read_text()
    for _ in range(200):
        s = _open(guarded, HALF_BODY)
        s.close()
    time.sleep(1.0)
    assert guarded.health()["status"] == "ok"
    new = guarded.log.read_text()[len(before) :]
    assert "Traceback" not in new and "ClientDisconnect" not in new and "Exception in ASGI" not in new
    assert new.count("hung up") <= 1, new[-2000:]


# ----------------------------------------------------------------------------------------------
# Every route behind the token; the scheme in any case.


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"])
@pytest.mark.parametrize("with_token", [False, True])
def test_no_schema_or_docs_routes(token_service: Service, path: str, with_token: bool) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"} if with_token else {}
    resp = httpx.get(token_service.url + path, headers=headers, timeout=5)
    assert resp.status_code == 404 and "openapi" not in resp.text.lower()


@pytest.mark.parametrize(
    "header, ok",
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER {TOKEN}", True),
        (f"BeArEr {TOKEN}", True),
        (f"Bearer   {TOKEN}", True),
        (f"Bearer {TOKEN} ", True),
        (f"Basic {TOKEN}", False),
        (f"Bearer{TOKEN}", False),
        (TOKEN, False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        ("Bearer ", False),
        ("", False),
    ],
    ids=lambda v: repr(v).replace(TOKEN, "TOKEN") if isinstance(v, str) else str(v),
)
def test_the_bearer_scheme_is_matched_in_any_case(token_service: Service, header: str, ok: bool) -> None:
    assert bearer_matches(header, TOKEN) is ok
    if header != header.strip():
        return  # HTTP clients refuse to send a header value with trailing space; the server strips it
    body = json.dumps({"items": [GOOD]}).encode()
    resp = httpx.post(
        token_service.url + "/v1/score", content=body, headers={"authorization": header}, timeout=10
    )
    assert resp.status_code == (200 if ok else 401)
    assert httpx.get(
        token_service.url + "/healthz", headers={"authorization": header}, timeout=5
    ).status_code == (200 if ok else 401)
