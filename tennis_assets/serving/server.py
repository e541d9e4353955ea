"""The policy server: the Starlette application (``app``) on uvicorn, with its limits.

uvicorn brings the event loop (uvloop), the HTTP parser (httptools/llhttp), keep-alive and the
graceful drain on SIGTERM: it stops accepting, answers every request already received, closes
idle connections, then exits. ``protocol`` adds what it lacks, a deadline for receiving a
request, and ``capacity`` the bound on connections and requests (past it the idlest idle
connections are closed first and requests get a JSON 503; health checks are always answered).
One process answers about
2,000 small requests a second here (bench/bench_policy_server.py), the inference itself is a
few microseconds, so requests are answered on the event loop without a thread hop.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from .access_log import AccessLog
from .app import Limits, create_app
from .capacity import RequestLimit, raise_descriptor_limit
from .metrics import ServingMetrics
from .model_source import ChampionSource

log = logging.getLogger(__name__)


MAX_TIMEOUT_S = 86_400


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1 << 20
    max_batch: int = 1024
    # From a request's first byte to the end of its body; a client slower than this (one byte
    # a second, a stalled body) gets a 408 and its connection is closed.
    request_timeout_s: float = 10.0
    # Idle keep-alive connections are closed after this long.
    idle_timeout_s: float = 60.0
    # Open connections, and requests in progress: past it the idlest idle connections are
    # closed first, and requests get a JSON 503 (health checks never do; capacity.py).
    max_concurrency: int = 1000
    # SIGTERM: how long requests already received may take to be answered.
    drain_timeout_s: float = 30.0
    access_log: bool = True

    def check(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"ServerConfig: host={self.host!r}: give an address to bind, e.g. "
                             "127.0.0.1 or 0.0.0.0")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or \
                not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig: port={self.port!r}: must be a whole number in "
                             "[0, 65535] (0 picks a free port)")
        for name in ("max_body_bytes", "max_batch", "max_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig: {name}={getattr(self, name)!r}: must be >= 1")
        for name in ("request_timeout_s", "idle_timeout_s", "drain_timeout_s"):
            # The event loop's timers take at most about 2**63 ns; a day is far beyond any use.
            if not 0 < getattr(self, name) <= MAX_TIMEOUT_S:
                raise ValueError(f"ServerConfig: {name}={getattr(self, name)!r}: must be "
                                 f"> 0 and at most {MAX_TIMEOUT_S} s")


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _uvicorn_server():
    import uvicorn

    class Server(uvicorn.Server):
        def __init__(self, on_signal, config) -> None:
            super().__init__(config)
            self.on_signal = on_signal

        def handle_exit(self, sig, frame) -> None:
            self.on_signal(sig)
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn's own re-raises the signal once drained, so the process would end killed
            # by SIGTERM; a drained server has done what SIGTERM asks and exits with 0.
            import signal

            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit)
                        for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    return Server


class PolicyServer:
    """The champion source, its metrics and the HTTP server, started and stopped together.

    ``start()`` runs everything in a background thread (tests, embedding); ``serve_forever()``
    blocks and drains on SIGTERM or SIGINT (the CLI). The socket is bound at construction, so
    port 0 picks a free port and ``url`` says which.
    """

    def __init__(self, source: ChampionSource, config: ServerConfig | None = None,
                 metrics: ServingMetrics | None = None, monitoring_file: Any = None) -> None:
        import uvicorn

        from .protocol import deadline_protocol

        self.config = config or ServerConfig()
        self.config.check()
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
        cfg = self.config
        self.access = AccessLog() if cfg.access_log else None
        self.app = create_app(source, self.metrics, Limits(cfg.max_body_bytes, cfg.max_batch),
                              self.access, lifespan=self._lifespan)
        self.socket = bind_listener(cfg.host, cfg.port)
        raise_descriptor_limit(cfg.max_concurrency)

        def rejected(status: int, outcome: str) -> None:
            self.metrics.request("other", outcome, status, 0.0)

        # No uvicorn limit_concurrency: it counts idle connections and answers plain text,
        # health checks included; capacity.py sheds idle connections and answers JSON instead.
        self.protocol = deadline_protocol(cfg.request_timeout_s, rejected, cfg.max_concurrency)
        self.uvicorn = _uvicorn_server()(self._draining, uvicorn.Config(
            RequestLimit(self.app, cfg.max_concurrency, rejected), http=self.protocol,
            ws="none", lifespan="on", log_config=None, access_log=False, server_header=False,
            # uvicorn annotates both as int but hands them to loop.call_later and
            # asyncio.timeout, which take seconds as a float.
            timeout_keep_alive=cfg.idle_timeout_s,  # type: ignore[arg-type]
            timeout_graceful_shutdown=cfg.drain_timeout_s))  # type: ignore[arg-type]
        self._thread: threading.Thread | None = None
        self._draining_since: float | None = None

    def _draining(self, signum: int) -> None:
        import signal

        if self._draining_since is None:
            self._draining_since = time.monotonic()
            log.info("%s: draining: no new connections; answering the requests received, then "
                     "exiting", signal.Signals(signum).name)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self.source.start()
        try:
            yield
        finally:
            # Runs after uvicorn has answered every request it had received.
            drained = (f" in {time.monotonic() - self._draining_since:.2f} s"
                       if self._draining_since else "")
            if self.access is not None:
                self.access.flush()
            log.info("stopped: every request received was answered%s; %d requests served",
                     drained, self.uvicorn.server_state.total_requests)
            self.source.stop()

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = self.socket.getsockname()[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def _run(self) -> None:
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> PolicyServer:
        self._thread = threading.Thread(target=self._run, name="policy-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("policy server did not start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this (the main) thread until SIGTERM or SIGINT, then drain and return."""
        self._run()

    def stop(self) -> None:
        if self._thread is not None:
            self._draining_since = time.monotonic()
            self.uvicorn.should_exit = True
            self._thread.join(self.config.drain_timeout_s + 10)
            self._thread = None
        else:
            self.socket.close()
        self.source.stop()

    close = stop
