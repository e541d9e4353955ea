"""HTTP endpoints of the policy server (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive).

    POST /act      {"observations": [2][24]} or [N][2][24] floats
                   -> {"actions": [2][2] or [N][2][2], "model_version": "3"}
    GET  /healthz  200 while the process runs
    GET  /readyz   200 once a model is loaded, else 503
    GET  /metrics  Prometheus exposition

Every rejected request gets a 4xx status and ``{"error": "..."}``; the server keeps serving.
The stdlib server meets the target (p99 <= 5 ms at 200 requests/s, bench/bench_policy_server.py):
a thread per connection with keep-alive avoids a handshake per request, and what remains is
Python (JSON, header parsing, the response write), about 0.3-0.6 ms of CPU per request, which a
framework would not remove.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from prometheus_client.exposition import choose_encoder

from .metrics import ServingMetrics
from .model_source import ChampionSource

log = logging.getLogger(__name__)

OBS_SHAPE = (2, 24)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1 << 20
    max_batch: int = 1024
    # Idle keep-alive connections are closed after this long, so a crowd of silent clients
    # cannot hold a thread each forever.
    idle_timeout_s: float = 60.0


class BadRequest(Exception):
    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message = status, outcome, message


def parse_observations(body: bytes, max_batch: int) -> tuple[np.ndarray, bool]:
    """Request body -> (obs float32 [N, 2, 24], single) or BadRequest naming what is wrong."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(400, "bad_request", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "bad_request", "body nests JSON too deeply") from None
    if not isinstance(doc, dict) or "observations" not in doc:
        raise BadRequest(400, "bad_request",
                         'expected a JSON object {"observations": [[24 floats], [24 floats]]}')
    try:
        # Without a dtype first: numpy would quietly parse "1.5" strings into numbers.
        arr = np.asarray(doc["observations"])
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "fiu":
        raise BadRequest(400, "bad_request", "observations must be a rectangular array of "
                         "numbers, shape [2, 24] or [N, 2, 24]")
    with np.errstate(over="ignore"):  # beyond float32 range becomes inf, rejected below
        obs = arr.astype(np.float32)
    single = obs.ndim == 2
    if single:
        obs = obs[None]
    if obs.ndim != 3 or obs.shape[1:] != OBS_SHAPE:
        shape = list(obs.shape[1:] if single else obs.shape)
        raise BadRequest(400, "bad_request", f"observations of shape {shape}; expected "
                         "[2, 24] (one court, both players) or [N, 2, 24]")
    if not 1 <= obs.shape[0] <= max_batch:
        raise BadRequest(400, "bad_request",
                         f"batch of {obs.shape[0]} observations; allowed 1 to {max_batch}")
    # JSON parsing accepts NaN and Infinity, and 1e39 overflows float32 to inf.
    if not np.isfinite(obs).all():
        raise BadRequest(400, "bad_request", "observations contain NaN or infinite values "
                         "(or values beyond float32 range)")
    return obs, single


_MAX_HEADERS, _MAX_HEADER_LINE = 100, 65536
# Bodies over the limit but under this many times it are read and dropped before the 413.
_DRAIN_FACTOR = 8


class _Headers(dict):
    """Request headers by lower-case name (what the handler needs of email.message.Message)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())


class PolicyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Responses go out in one write (see _send), but BaseHTTPRequestHandler's own error replies
    # do not; without TCP_NODELAY a second segment can wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def setup(self) -> None:
        self.timeout = self.server.config.idle_timeout_s
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        # No access log: a line per request would cost more than the inference.
        pass

    def parse_request(self) -> bool:
        """BaseHTTPRequestHandler.parse_request with a plain header parser. The stdlib parses
        headers with the email package, the largest Python cost of a small request (~60 us of
        ~300); this accepts HTTP/1.0 and 1.1 only and refuses what could be ambiguous
        (folded lines, repeated Content-Length or Transfer-Encoding)."""
        self.command = None
        self.request_version = "HTTP/0.9"
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(400, f"bad request line {self.requestline[:200]!r}; expected "
                                 "'METHOD /path HTTP/1.1'")
            return False
        self.command, self.path, self.request_version = words
        headers = _Headers()
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE:
                self.send_error(431, "header line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = str(line, "iso-8859-1").partition(":")
            if not sep or not name or name != name.strip():
                self.send_error(400, f"malformed header line {line[:100]!r}")
                return False
            key, value = name.lower(), value.strip()
            if key in headers:
                if key in ("content-length", "transfer-encoding"):
                    self.send_error(400, f"repeated {name} header")
                    return False
                value = f"{headers[key]}, {value}"
            headers[key] = value
        else:
            self.send_error(431, f"more than {_MAX_HEADERS} headers")
            return False
        self.headers = headers
        connection = headers.get("connection", "").lower()
        self.close_connection = (connection == "close" or
                                 (self.request_version == "HTTP/1.0" and
                                  connection != "keep-alive"))
        if headers.get("expect", "").lower() == "100-continue" and \
                self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The stdlib's own rejections (bad request line, unsupported method...) as JSON like
        every other error, counted, and closing the connection: its state is unknown."""
        message = message or self.responses.get(code, ("error",))[0]
        self.server.metrics.request("other", "bad_request" if code < 500 else "error", code,
                                    0.0)
        try:
            self._json(code, {"error": message}, close=True)
        except OSError:
            self.close_connection = True

    # ---- responses --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              close: bool = False, extra: dict[str, str] | None = None) -> None:
        # Status line, headers and body in one write: send_response/end_headers plus a body
        # write are two sendall calls, and each wakes the client (measured: half the server's
        # time per request went into the second wake-up on a busy 2-core machine).
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                 "Server: tennis-assets", f"Date: {self.date_time_string()}",
                 f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        lines.extend(f"{key}: {value}" for key, value in (extra or {}).items())
        if close:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _json(self, status: int, doc: dict, **kw: Any) -> None:
        self._send(status, json.dumps(doc).encode(), **kw)

    def _reject(self, endpoint: str, started: float, status: int, outcome: str, message: str,
                **kw: Any) -> None:
        # Counted before the answer leaves: a client that got its response and then reads
        # /metrics must find it counted.
        self.server.metrics.request(endpoint, outcome, status, time.perf_counter() - started)
        self._json(status, {"error": message}, **kw)

    # ---- routing ----------------------------------------------------------------------------
    _ROUTES = {"/act": ("act", "POST"), "/healthz": ("healthz", "GET"),
               "/readyz": ("readyz", "GET"), "/metrics": ("metrics", "GET")}

    def _route(self) -> None:
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        endpoint, method = self._ROUTES.get(path, ("other", None))
        if method is None:
            self._discard_body()
            return self._reject("other", started, 404, "not_found",
                                f"no endpoint {path!r}; try POST /act, GET /healthz, "
                                "/readyz or /metrics")
        allowed = {method, "HEAD"} if method == "GET" else {method}
        if self.command not in allowed:
            self._discard_body()
            return self._reject(endpoint, started, 405, "method_not_allowed",
                                f"{self.command} {path}: use {method}",
                                extra={"Allow": ", ".join(sorted(allowed))})
        try:
            getattr(self, f"_{endpoint}")(started)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client left, or stalled mid-body past idle_timeout_s: nothing to answer.
            self.close_connection = True
        except Exception as exc:  # one bad request must never take the server down
            log.exception("%s %s failed", self.command, path)
            self._reject(endpoint, started, 500, "error",
                         f"internal error: {type(exc).__name__}: {exc}", close=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _route

    def _discard_body(self) -> None:
        """Read a small body we will not use so the connection stays in sync; a large or
        unknown-length one closes the connection instead."""
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
            return
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            return
        if 0 < n <= self.server.config.max_body_bytes:
            self.rfile.read(n)
        elif n:
            self.close_connection = True

    # ---- endpoints --------------------------------------------------------------------------
    def _act(self, started: float) -> None:
        server = self.server
        length = self.headers.get("Content-Length")
        if length is None:
            return self._reject("act", started, 411, "length_required",
                                "Content-Length required (chunked bodies are not accepted)",
                                close=True)
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            return self._reject("act", started, 400, "bad_request",
                                f"invalid Content-Length {length!r}", close=True)
        if n > server.config.max_body_bytes:
            message = f"body of {n} bytes; the limit is {server.config.max_body_bytes}"
            if n > _DRAIN_FACTOR * server.config.max_body_bytes:
                # Not read: answering and closing beats swallowing a huge body, though a client
                # still sending may see the connection reset before it reads the 413.
                return self._reject("act", started, 413, "too_large", message, close=True)
            # Read and dropped, so the client reads the 413 instead of a reset connection (the
            # kernel resets a socket closed with unread data).
            remaining = n
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    self.close_connection = True
                    return
                remaining -= len(chunk)
            return self._reject("act", started, 413, "too_large", message)
        body = self.rfile.read(n)
        if len(body) < n:
            self.close_connection = True
            return self._reject("act", started, 400, "bad_request", "body shorter than "
                                "Content-Length", close=True)
        model = server.source.current
        if model is None:
            return self._reject("act", started, 503, "not_ready", "no model loaded yet")
        try:
            obs, single = parse_observations(body, server.config.max_batch)
        except BadRequest as exc:
            return self._reject("act", started, exc.status, exc.outcome, exc.message)
        t0 = time.perf_counter()
        actions = model.act(obs)
        inference = time.perf_counter() - t0
        out = actions[0] if single else actions
        payload = json.dumps({"actions": out.tolist(), "model_version": model.version}).encode()
        server.metrics.act_ok(time.perf_counter() - started, inference, actions)
        self._send(200, payload)

    def _healthz(self, started: float) -> None:
        self.server.metrics.request("healthz", "ok", 200, time.perf_counter() - started)
        self._json(200, {"status": "ok"})

    def _readyz(self, started: float) -> None:
        model = self.server.source.current
        if model is None:
            return self._reject("readyz", started, 503, "not_ready", "no model loaded yet")
        self.server.metrics.request("readyz", "ok", 200, time.perf_counter() - started)
        self._json(200, {"status": "ready", "model": model.name, "version": model.version,
                         "alias": model.alias})

    def _metrics(self, started: float) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self.server.metrics.request("metrics", "ok", 200, time.perf_counter() - started)
        body = encoder(self.server.metrics.registry)
        self._send(200, body, content_type=content_type)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when many clients connect at once.
    request_queue_size = 128

    def __init__(self, config: ServerConfig, source: ChampionSource,
                 metrics: ServingMetrics) -> None:
        self.config, self.source, self.metrics = config, source, metrics
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.address_family = family
        super().__init__((config.host, config.port), PolicyHandler)


class PolicyServer:
    """The champion source, its metrics and the HTTP server, started and stopped together.

    ``start()`` runs everything in background threads (tests, embedding); ``serve_forever()``
    blocks (the CLI). Port 0 picks a free port; ``url`` says which.
    """

    def __init__(self, source: ChampionSource, config: ServerConfig | None = None,
                 metrics: ServingMetrics | None = None, monitoring_file: Any = None) -> None:
        self.config = config or ServerConfig()
        if self.config.max_body_bytes < 1 or self.config.max_batch < 1:
            raise ValueError("ServerConfig: max_body_bytes and max_batch must be >= 1")
        self.metrics = metrics or ServingMetrics()
        self.source = source
        if monitoring_file is not None:
            from .monitoring import MonitoringCollector

            # Drift gauges describe the served version only: a result about the model this
            # server replaced would keep its alert firing against the new champion.
            self.metrics.registry.register(MonitoringCollector(
                monitoring_file,
                served_version=lambda: source.current.version if source.current else None))
        source.subscribe(self.metrics.model_swapped, self.metrics.load_failed)
        if source.current is not None:
            self.metrics.model_swapped(source.current)
        self.httpd = _HTTPServer(self.config, source, self.metrics)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def start(self) -> "PolicyServer":
        self.source.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="policy-http",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.source.start()
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for a serve_forever loop to end
            self.httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self.close()

    def close(self) -> None:
        self.source.stop()
        self.httpd.server_close()

