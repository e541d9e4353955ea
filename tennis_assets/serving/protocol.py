"""uvicorn's httptools protocol with a deadline per request and JSON rejections.

uvicorn parses HTTP with llhttp (the parser of Node.js), which refuses ambiguous framing such as
Content-Length together with Transfer-Encoding, so nothing here parses HTTP. What uvicorn lacks
is a limit on how long a client may take to send a request: its keep-alive timeout only runs
between requests, so a client sending one header byte a second holds a connection forever
(slowloris). Here a deadline runs from the connection's first byte (or the first byte of each
following request) to the end of the request's body; a client that misses it gets a 408 and the
connection is closed. The time the application takes to answer is not counted.

Parser rejections answer in JSON with llhttp's reason, like every other error of the server.

Past ``max_connections`` open connections, each new one closes the idlest idle ones
(``capacity.Shedder``): each connection knows when it was last active and whether a request of
it is being answered (``idle_since``), and how to be closed (``shed``).

uvicorn writes a response's head and body in two calls, so two TCP segments that each wake the
client; on this 2-core machine that second wake-up cost more than the whole application
(bench/bench_policy_server.py). ``_OneWrite`` hands the head over with the body, in one send.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .capacity import Shedder

log = logging.getLogger(__name__)

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}
# After a rejection the connection is half-closed and what the client still sends is read and
# dropped this long before the close: closing a socket with unread data sends a reset, which
# can destroy the rejection before the client reads it.
_LINGER_S = 2.0


class _OneWrite:
    """A connection's transport as its responses see it: a write waits for the next one (the
    body after the head) and both leave in one send; a write with nothing after it leaves at the
    loop's next turn, and before any close."""

    def __init__(self, transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = data
            self._loop.call_soon(self.flush)
        else:
            pending, self._pending = self._pending, None
            self._transport.write(pending + data)

    def flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._transport.write(pending)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class DeadlineProtocol(HttpToolsProtocol):
    request_timeout_s: float = 10.0
    on_rejected: Callable[[int, str], None] = staticmethod(lambda status, outcome: None)
    # Open connections past which the idlest idle ones are closed (None: no limit here).
    max_connections: int | None = None
    shedder: Shedder = Shedder()

    _deadline: asyncio.TimerHandle | None = None
    _refusal: str | None = None  # why a callback stopped the parser
    _lingering = False
    _in_request = False  # a request's first bytes are in, its last not yet
    _active_at = 0.0  # loop time of the last byte received or response finished
    _answered = False  # at least one response finished on this connection

    # As in uvicorn's own override: asyncio's stub types the argument as any BaseTransport,
    # while a stream server hands a stream protocol a Transport.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writer = _OneWrite(transport, self.loop)
        self._active_at = self.loop.time()
        self._arm()
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self.shedder.shed(self.connections, self.max_connections, self, self.loop.time())

    def idle_since(self) -> tuple[bool, float] | None:
        """If no request of this connection is being answered: (whether it was ever answered,
        when it was last active); connections never answered sort first, the idlest first."""
        if self.transport.is_closing() and not self._lingering:
            return None  # already going
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            return None
        return self._answered, self._active_at

    def shed(self) -> None:
        """Close this idle connection to make room: silently between requests (any HTTP client
        may find a kept-alive connection closed), with a JSON 503 part-way through a request."""
        if self._in_request and not self._lingering:
            self._reject(503, "shed", "server at its connection limit: this connection was the "
                         "idlest and is closed; retry")
        else:
            self._disarm()
            self.transport.close()

    def on_response_complete(self) -> None:
        self._active_at = self.loop.time()
        self._answered = True
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request = True
        self._arm()

    def on_headers_complete(self) -> None:
        # llhttp reads any HTTP/x.y; only HTTP/1.x has this framing.
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            self._refusal = f"HTTP/{version} is not served here; use HTTP/1.1"
            raise httptools.HttpParserError(self._refusal)
        super().on_headers_complete()
        if self.cycle is not None:
            # _OneWrite stands in for the transport: write/close its own, the rest delegated.
            self.cycle.transport = cast(asyncio.Transport, self._writer)

    def shutdown(self) -> None:
        self._writer.flush()  # a response's last bytes before uvicorn closes an idle connection
        super().shutdown()

    def on_message_complete(self) -> None:
        self._in_request = False
        self._disarm()
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        # uvicorn's own version, but the 400 names llhttp's reason.
        if self._lingering:
            return
        self._active_at = self.loop.time()
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._reject(400, "bad_request", self._refusal or f"malformed HTTP request: {exc}")
        except httptools.HttpParserUpgrade:
            pass  # no WebSocket here: the request was already started as plain HTTP

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning("closed the connection of %s: request not received within %g s",
                    client, self.request_timeout_s)
        self._reject(408, "timeout", f"request not received within {self.request_timeout_s:g} "
                     "s; the connection is closed")

    def _reject(self, status: int, outcome: str, message: str) -> None:
        """Answer ``status`` and close, unless a response is already on its way (then close)."""
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            # A request still being answered (one pipelined before the bad bytes) gets no
            # answer after this one: uvicorn drops the sends of a disconnected cycle.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.cycle is None or not self.cycle.response_started:
            body = json.dumps({"error": message}).encode()
            head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
            head += [name + b": " + value + b"\r\n"
                     for name, value in self.server_state.default_headers]
            head.append(b"content-type: application/json\r\ncontent-length: %d\r\n"
                        b"connection: close\r\n\r\n" % len(body))
            self.transport.write(b"".join(head) + body)
            self.on_rejected(status, outcome)
        if self.transport.can_write_eof():
            self._lingering = True
            self.transport.write_eof()
            self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


def deadline_protocol(request_timeout_s: float, on_rejected: Callable[[int, str], None],
                      max_connections: int | None = None) -> type[DeadlineProtocol]:
    """The protocol class for one server (uvicorn builds one instance per connection)."""
    return type("DeadlineProtocol", (DeadlineProtocol,),
                {"request_timeout_s": request_timeout_s,
                 "on_rejected": staticmethod(on_rejected), "max_connections": max_connections,
                 "shedder": Shedder()})
