"""``tennis-assets serve --workers N``: N worker processes answering on one port, under
uvicorn's own supervisor, with prometheus-client's multiprocess mode for the metrics.

How it fits together, and why:

- uvicorn's ``Multiprocess`` supervisor binds nothing itself here: the socket is bound by the
  supervisor process (``server.bind_listener``, so ``--port 0`` can print the port it got) and
  handed to every worker, which all accept on it. It restarts a worker that dies or stops
  answering its health pings, and stops everything when a worker cannot start (the app factory
  failed).
- uvicorn *spawns* its workers (a fresh interpreter, not a fork), so a worker gets nothing from
  the supervisor's memory: the application comes from the factory ``worker_app`` named by import
  string, the settings from the JSON in ``$TENNIS_SERVE_WORKER``, the HTTP protocol (with its
  request deadline) from the module-level ``WorkerProtocol``.
- The workers run uvicorn's stock ``Server``, not ``PolicyServer``'s subclass. Its SIGTERM drain
  is the same (stop accepting, answer every request received, then the lifespan shutdown); after
  it the worker re-raises the signal and ends killed by SIGTERM, which the supervisor takes as a
  clean end. The drain line is logged by the supervisor when the signal arrives, each worker's
  end by its lifespan shutdown, and the supervisor exits 0 once every worker drained.
- ``$PROMETHEUS_MULTIPROC_DIR`` is a fresh private directory made by ``serve_workers``, set
  before any worker starts (so before any prometheus_client import in a worker) and removed at
  exit. Each worker writes its counters, histograms and gauges there; a scrape of any worker
  reads all the files (``ServingMetrics(multiprocess_dir=...)``). A worker marks itself dead at
  its lifespan shutdown, and the supervisor marks a worker dead when it died or was replaced, so
  the ``live*`` gauges drop its series.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import tempfile
import time

from uvicorn.supervisors.multiprocess import Multiprocess

from tennis_assets import settings as environment

from .protocol import DeadlineProtocol

log = logging.getLogger(__name__)

# A bound that catches a typo (--workers 80 for 8): every worker holds its own model and
# polls the registry; more workers than cores only adds memory and context switches.
MAX_WORKERS = 64
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class WorkerProtocol(DeadlineProtocol):
    """The request-deadline protocol of a worker; ``worker_app`` sets its deadline and its
    rejection counter (uvicorn imports this class by name in each worker)."""


def worker_app():
    """The ASGI application of one worker (uvicorn calls it in the worker process)."""
    from prometheus_client import Counter, disable_created_metrics, multiprocess

    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    from .access_log import AccessLog
    from .app import Limits, create_app
    from .capacity import RequestLimit
    from .metrics import ServingMetrics
    from .model_source import ChampionSource
    from .server import ServerConfig

    settings = environment.serve_worker_settings()
    logging.basicConfig(level=settings["log_level"].upper(), format=LOG_FORMAT)
    disable_created_metrics()
    cfg = ServerConfig(**settings["config"])
    metrics_dir = environment.prometheus_multiproc_dir()
    metrics = ServingMetrics(multiprocess_dir=metrics_dir)
    source = ChampionSource(MlflowTracker(settings["tracking_uri"]), settings["model_name"],
                            alias=settings["alias"], poll_interval_s=settings["poll_interval_s"])
    if settings.get("monitoring_file"):
        from .monitoring import MonitoringCollector

        errors = Counter("tennis_monitoring_read_errors",
                         "Monitoring result files that could not be parsed", registry=None)
        metrics.registry.register(MonitoringCollector(
            settings["monitoring_file"], errors=errors,
            served_version=lambda: source.current.version if source.current else None))
    source.subscribe(metrics.model_swapped, metrics.load_failed)

    def rejected(status: int, outcome: str) -> None:
        metrics.request("other", outcome, status, 0.0)

    WorkerProtocol.request_timeout_s = cfg.request_timeout_s
    WorkerProtocol.on_rejected = staticmethod(rejected)
    WorkerProtocol.max_connections = cfg.max_concurrency
    access = AccessLog(shared=True) if cfg.access_log else None

    async def sample_gc() -> None:
        while metrics.gc is not None:
            await asyncio.sleep(1.0)
            metrics.gc.sample()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        source.start()
        sampler = asyncio.get_running_loop().create_task(sample_gc())
        try:
            yield
        finally:
            # uvicorn runs this after answering every request it had received.
            sampler.cancel()
            source.stop()
            if metrics.gc is not None:
                metrics.gc.sample()
            if access is not None:
                access.flush()
            log.info("worker stopped: every request received was answered")
            multiprocess.mark_process_dead(os.getpid(), metrics_dir)

    return RequestLimit(create_app(source, metrics, Limits(cfg.max_body_bytes, cfg.max_batch),
                                   access, lifespan=lifespan), cfg.max_concurrency, rejected)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, plus: the drain log line, closing its own copy of the listening
    socket at once (else the kernel keeps queueing connections nobody will accept until the
    last worker is gone), dead workers' live gauges removed, and a bounded wait for the drain."""

    def __init__(self, config, sockets: list[socket.socket], metrics_dir: str,
                 drain_timeout_s: float) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir
        self.drain_timeout_s = drain_timeout_s
        self.clean = True
        self._draining_since: float | None = None
        self._known: set[int] = set()

    def _drain(self, sig: int) -> None:
        if self._draining_since is None:
            self._draining_since = time.monotonic()
            log.info("%s: draining: %d workers stop accepting, answer the requests received, "
                     "then exit", signal.Signals(sig).name, len(self.processes))
            for sock in self.sockets:
                sock.close()
        self.should_exit.set()

    def handle_term(self) -> None:
        self._drain(signal.SIGTERM)

    def handle_int(self) -> None:
        self._drain(signal.SIGINT)

    def _mark_dead(self) -> None:
        from prometheus_client import multiprocess

        live = {p.pid for p in self.processes if p.pid is not None}
        for pid in self._known - live:
            multiprocess.mark_process_dead(pid, self.metrics_dir)
        self._known = live

    def init_processes(self) -> None:
        super().init_processes()
        self._mark_dead()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._mark_dead()

    def handle_signals(self) -> None:
        super().handle_signals()  # SIGHUP replaces workers, SIGTTOU removes one
        self._mark_dead()

    def join_all(self) -> None:
        # Each worker gives its requests drain_timeout_s, then cancels them; a worker still
        # there well after that is stuck and is killed rather than waited for forever.
        deadline = time.monotonic() + self.drain_timeout_s + 10
        for process in self.processes:
            process.process.join(max(0.0, deadline - time.monotonic()))
            if process.process.exitcode is None:
                log.error("worker %s did not end %.0f s after the drain began; killed",
                          process.pid, self.drain_timeout_s + 10)
                process.kill()
                process.process.join()
            # A drained uvicorn worker re-raises the SIGTERM it drained on.
            if process.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT):
                self.clean = False
                log.error("worker %s ended with exit code %s", process.pid, process.exitcode)
        for process in self.processes:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(process.pid, self.metrics_dir)
        if self._draining_since is not None and self.clean:
            log.info("stopped: %d workers drained in %.2f s; every request received was "
                     "answered", len(self.processes), time.monotonic() - self._draining_since)


def serve_workers(workers: int, sock: socket.socket, config, settings: dict) -> int:
    """Run ``workers`` worker processes on the bound ``sock`` until SIGTERM or SIGINT; the exit
    status: 0 once every worker drained, 1 when one had to be killed or failed."""
    import uvicorn

    if not 1 < workers <= MAX_WORKERS:
        raise ValueError(f"workers={workers}: must be 2 to {MAX_WORKERS} here")
    from .capacity import raise_descriptor_limit

    raise_descriptor_limit(config.max_concurrency)  # the workers inherit it
    metrics_dir = tempfile.mkdtemp(prefix="tennis-serve-metrics-")  # fresh, empty, mode 0700
    environment.use_serve_workers(metrics_dir,
                                  {**settings, "config": dataclasses.asdict(config)})
    log.info("%d workers; their metrics in %s (prometheus-client multiprocess mode)", workers,
             metrics_dir)
    try:
        supervisor = Supervisor(uvicorn.Config(
            f"{__name__}:worker_app", factory=True, http=f"{__name__}:WorkerProtocol",
            ws="none", lifespan="on", log_config=None, access_log=False, server_header=False,
            timeout_keep_alive=config.idle_timeout_s,
            timeout_graceful_shutdown=config.drain_timeout_s, workers=workers,
            # A worker that misses a health ping is killed as hung, with the requests it
            # holds: uvicorn's 5 s is short for a worker importing torch on two busy cores. A
            # hung worker also holds up the supervisor's loop this long per ping.
            timeout_worker_healthcheck=10),
            [sock], metrics_dir, config.drain_timeout_s)
        supervisor.run()
        return 0 if supervisor.clean else 1
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        environment.use_serve_workers(None, None)
