"""The reward service: FastAPI + uvicorn in front of a `RewardPool`.

Endpoints (see `protocol`):

- ``POST /v1/score``  a batch of items → their results, in order;
- ``GET /healthz``    status, workers and their pids, queue depth, counters, version;
- ``GET /metrics``    the same plus ok/not_applicable/error/timeout counts per data_source × verifier.

Deliberate deviations from V-Triune's server (paper §3.2; docs/vtriune.md §2): one uvicorn process whose pool of
`workers` verifier processes gives the parallelism (V-Triune ran 16 uvicorn workers, each scoring
one sample per request in its event loop); batches instead of one sample per request; a hard
per-item timeout; errors reported per item, never as zero rewards; 127.0.0.1 unless told otherwise;
an optional bearer token (environment variable ``TRIUNE_REWARD_TOKEN``) required on every endpoint
(no OpenAPI or docs routes: the JSON Schemas are in `schemas/`).

One bad item never sinks a batch: an item the worker cannot validate, or one holding text that is
not UTF-8 (a lone-surrogate escape), is an `error` result and the rest are scored. Slow or idle
clients cannot hold the server's sockets (`connections`: a whole-request deadline, a connection
cap, uvicorn's keep-alive timeout), and a client that hangs up is one rate-limited log line.

`triune serve-rewards` is the one way to run it from a shell. FastAPI is imported lazily, so that
importing this module costs nothing to a process that only scores.
"""

import collections
import contextlib
import functools
import hmac
import logging
import os
import resource
import socket
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson

from triune_data import safe_json
from triune_data.verifiers import RewardResult
from triune_train.rewards.pool import RewardPool
from triune_train.rewards.protocol import (
    MAX_BODY_BYTES,
    MAX_ITEMS,
    PROTOCOL_VERSION,
    TOKEN_ENV,
    RewardServiceError,
    encode_results,
)

log = logging.getLogger("triune.rewards.service")

DEFAULT_PORT = 8192
_MAX_SOURCES = 10_000  # distinct data_source × verifier counters kept
REQUEST_TIMEOUT_S = 30.0  # a request must arrive whole within this (64 MiB at 10 MB/s takes 7 s)
KEEP_ALIVE_S = 5  # an idle kept-alive connection is closed after this (uvicorn's default)
MAX_CONNECTIONS = 1024  # open connections; the longest-waiting idle one makes room for a new one
DISCONNECT_LOG_EVERY_S = 60.0
_NOT_UTF8 = "the item holds text that is not valid UTF-8 (a lone-surrogate escape)"


def _text(value: Any) -> str | None:
    """`value` if it is text that can be encoded as UTF-8, else None."""
    if type(value) is not str:
        return None
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _wire_id(item: Any) -> str | int | None:
    """The item's id, when it can be echoed (an int, or a string that is valid UTF-8)."""
    i = item.get("id") if type(item) is dict else None
    return i if type(i) is int else _text(i)


def _sendable(item: Any) -> bool:
    """Can the item travel as JSON (no lone surrogates anywhere in it)?"""
    try:
        orjson.dumps(item)
    except TypeError:  # orjson refuses str with surrogates (and values JSON cannot hold)
        return False
    return True


class _RateLimitedLog:
    """One log line per event kind per `every_s` seconds, saying how many were not logged."""

    def __init__(self, every_s: float) -> None:
        self.every_s, self.last, self.quiet = every_s, -float("inf"), 0

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.quiet += 1
            return
        more = f" ({self.quiet} more since the last report)" if self.quiet else ""
        log.info("%s%s", message, more)
        self.last, self.quiet = now, 0


def bearer_matches(header: str | None, token: str) -> bool:
    """Does an Authorization header carry `token` as a bearer token? The scheme is matched in
    any case (RFC 6750 §2.1 via RFC 7235: auth schemes are case-insensitive), in constant time.

    >>> bearer_matches("bearer s3cret", "s3cret"), bearer_matches("Bearer  s3cret", "s3cret")
    (True, True)
    >>> bearer_matches("Basic s3cret", "s3cret"), bearer_matches("s3cret", "s3cret")
    (False, False)
    """
    scheme, _, credentials = (header or "").partition(" ")
    ok_scheme = scheme.lower() == "bearer"
    given = credentials.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, token.encode("utf-8")) and ok_scheme


@functools.cache
def _version() -> str:
    try:
        return version("triune")
    except PackageNotFoundError:
        return "0+unknown"


def build_app(
    pool: RewardPool,
    *,
    token: str | None = None,
    max_items: int = MAX_ITEMS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Any:
    """The ASGI app serving `pool`. `token`, if set, is required as ``Authorization: Bearer``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.requests import ClientDisconnect

    # No OpenAPI document or docs pages: they would be the only routes without the token.
    app = FastAPI(
        title="triune reward service", version=_version(), openapi_url=None, docs_url=None, redoc_url=None
    )
    by_source: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    requests: collections.Counter[str] = collections.Counter()
    disconnected = _RateLimitedLog(DISCONNECT_LOG_EVERY_S)

    def error(status: int, message: str) -> Response:
        return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")

    def authorized(request: Request) -> bool:
        return token is None or bearer_matches(request.headers.get("authorization"), token)

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return None
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > max_body_bytes:
                return None
            parts.append(part)
        return b"".join(parts)

    def count(items: list[Any], results: list[Any]) -> None:
        for item, result in zip(items, results, strict=True):
            ds, v = (item.get("data_source"), item.get("verifier")) if type(item) is dict else (None, None)
            key = (_text(ds) or "", _text(v) or "(invalid)")
            if key not in by_source and len(by_source) >= _MAX_SOURCES:
                key = ("(other)", "(other)")  # bound memory against clients inventing names
            by_source[key][result.status] += 1

    @app.post(f"/{PROTOCOL_VERSION}/score")
    async def score(request: Request) -> Response:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        started = time.perf_counter()
        try:
            body = await read_body(request)
        except ClientDisconnect:  # nobody to answer: one line now and then, no traceback
            disconnected("a client hung up before its request body arrived")
            return Response(status_code=400)
        if body is None:
            return error(413, f"request body exceeds {max_body_bytes} bytes")
        try:
            req, checked = orjson.loads(body), True  # orjson bounds depth (1,024) and numbers itself
        except orjson.JSONDecodeError:
            try:  # lone surrogates, NaN: parsed within safe_json's bounds, judged item by item
                req, checked = safe_json.loads(body), False
            except ValueError as exc:
                return error(400, f"body is not valid JSON: {exc}")
        # Only the envelope is checked here; each item is validated in a worker (an invalid one
        # gets status error), so this one process only parses and forwards.
        if type(req) is not dict or type(req.get("items")) is not list or set(req) != {"items"}:
            return error(422, 'body must be an object {"items": [item, ...]} and nothing else')
        items = req["items"]
        if len(items) > max_items:
            return error(413, f"{len(items)} items exceed the limit of {max_items} per request")
        try:
            results = await score_items(items, checked=checked)
        except RewardServiceError as exc:  # the pool is closing (server shutdown)
            return error(503, str(exc))
        for item, result in zip(items, results, strict=True):
            if result.id is None:  # an item too broken to validate still gets its id back
                result.id = _wire_id(item)
        count(items, results)
        requests["score"] += 1
        log.debug("scored %d items in %.1f ms", len(items), 1000 * (time.perf_counter() - started))
        content = encode_results(results)
        return Response(content, media_type="application/json")

    async def score_items(items: list[Any], *, checked: bool) -> list[RewardResult]:
        """Results of `items`; when the body needed the lenient parser, items holding text that is
        not UTF-8 get an error result here (they could not be answered as JSON) and the rest go on."""
        bad = [] if checked else [i for i, item in enumerate(items) if not _sendable(item)]
        if not bad:
            return await pool.ascore(items)
        skip = set(bad)
        scored = iter(await pool.ascore([x for i, x in enumerate(items) if i not in skip]))
        return [
            RewardResult.failed("error", _NOT_UTF8, id=_wire_id(x)) if i in skip else next(scored)
            for i, x in enumerate(items)
        ]

    def health() -> dict[str, Any]:
        stats = pool.stats()
        return {
            "status": "broken" if stats["broken"] else "ok",
            "version": _version(),
            "protocol": PROTOCOL_VERSION,
            "workers": stats["workers"],
            "pids": stats["pids"],
            "queue_depth": stats["queue_depth"],
            "timeout_s": pool.timeout_s,
            "max_items": max_items,
            "counts": {
                "requests": requests["score"],
                "scored": stats["scored"],
                "errors": stats["error"],
                "timeouts": stats["timeout"],
                "worker_restarts": stats["restarts"],
                "worker_crashes": stats["crashes"],
            },
        }

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        body = health()
        code = 200 if body["status"] == "ok" else 503
        return Response(orjson.dumps(body), status_code=code, media_type="application/json")

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        rows = [
            {
                "data_source": ds,
                "verifier": v,
                **{s: c[s] for s in ("ok", "not_applicable", "error", "timeout")},
            }
            for (ds, v), c in sorted(by_source.items())
        ]
        return Response(orjson.dumps({**health(), "by_source": rows}), media_type="application/json")

    return app


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workers: int = 2,
    *,
    timeout_s: float = 10.0,
    preload: Sequence[str] = (),
    token: str | None = None,
    max_items: int = MAX_ITEMS,
    max_body_bytes: int = MAX_BODY_BYTES,
    log_level: str = "info",
    request_timeout_s: float = REQUEST_TIMEOUT_S,
    keep_alive_s: int = KEEP_ALIVE_S,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Run the reward service until interrupted (blocking).

    `workers` is the number of verifier processes behind ONE uvicorn process. `token` defaults to
    the ``TRIUNE_REWARD_TOKEN`` environment variable; without one, anyone who can reach the port
    can use the service, so a non-loopback `host` without a token logs a warning.
    `request_timeout_s`, `keep_alive_s` and `max_connections` bound what clients can hold
    (`triune_train.rewards.connections`); `max_connections` is kept below the process's limit of
    open files.
    """
    import uvicorn

    from triune_train.rewards.connections import guarded_protocol

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and max_connections > soft - 64:
        max_connections = max(1, soft - 64)  # leave descriptors for workers, pipes and logs
        log.warning("max_connections lowered to %d (the open-files limit is %d)", max_connections, soft)
    protocol = guarded_protocol(request_timeout_s=request_timeout_s, max_connections=max_connections)
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        log.warning("serving on %s without a bearer token (set %s)", host, TOKEN_ENV)
    sock = bind(host, port)  # before the workers start: a port in use is one line, at once
    port = sock.getsockname()[1]
    with sock, RewardPool(workers, timeout_s=timeout_s, preload=preload) as pool:
        app = build_app(pool, token=token, max_items=max_items, max_body_bytes=max_body_bytes)
        log.info(
            "reward service on http://%s:%d (%d verifier workers, timeout %gs, token %s)",
            host,
            port,
            workers,
            timeout_s,
            "required" if token else "off",
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            workers=1,
            http=protocol,
            timeout_keep_alive=keep_alive_s,
        )
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after a clean shutdown
            uvicorn.Server(config).run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn binds one; RewardServiceError (one line) when
    the host does not resolve or the port is taken or not ours to take."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise RewardServiceError(f"cannot serve on {host}:{port}: unknown host ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT, not a live listener
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise RewardServiceError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
