"""Connection hygiene for the reward service: no client can hold the server's sockets for free.

uvicorn times out a keep-alive connection only after a response, so a client that connects and
sends nothing, half a request line, or headers and then a trickle of body holds its socket (and
a file descriptor) forever; about a thousand such clients exhaust the descriptors and real
requests are dropped. uvicorn's own `limit_concurrency` does not help: it counts idle connections
too and answers the real requests with 503 while they hold the slots.

`guarded_protocol(...)` returns uvicorn's httptools protocol with two rules added:

- a request must arrive whole (request line, headers and body) within `request_timeout_s` of
  its first byte, or of the connection opening; else the connection is closed. Idle keep-alive
  connections keep uvicorn's `timeout_keep_alive`.
- at most `max_connections` are open: a new connection beyond that closes the one that has
  waited longest without a complete request being worked on (idle, or still sending), and only
  if every connection is working on a request is the newcomer itself closed.

A connection working on a request (received whole, response not yet sent) is never closed by
either rule: scoring time is bounded by the pool's per-item timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a whole-request deadline and a connection cap."""

    request_timeout_s: float = 30.0
    max_connections: int = 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._working = False  # a complete request is being answered
        self._waiting_since = self.loop.time()
        super().connection_made(transport)
        self._arm()
        if len(self.connections) > self.max_connections:
            victim = min(
                (
                    c
                    for c in self.connections
                    if isinstance(c, GuardedHttpProtocol) and c is not self and not c._working
                ),
                key=lambda c: c._waiting_since,
                default=self,
            )
            victim.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and not self._working:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._working = self._answering()

    def on_response_complete(self) -> None:
        self._waiting_since = self.loop.time()
        super().on_response_complete()  # may start a pipelined request
        self._working = self._answering()

    def _answering(self) -> bool:
        # False when the app answered before the request was whole (a 413 for an oversize body).
        return self.cycle is not None and not self.cycle.response_complete and not self.cycle.more_body

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._waiting_since = self.loop.time()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._working and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(*, request_timeout_s: float, max_connections: int) -> type[Any]:
    """A `GuardedHttpProtocol` subclass with these limits (for `uvicorn.Config(http=...)`)."""
    if request_timeout_s <= 0 or max_connections < 1:
        raise ValueError("request_timeout_s must be > 0 and max_connections >= 1")
    attrs = {"request_timeout_s": float(request_timeout_s), "max_connections": int(max_connections)}
    return type("TriuneHttpProtocol", (GuardedHttpProtocol,), attrs)


__all__ = ["GuardedHttpProtocol", "guarded_protocol"]
