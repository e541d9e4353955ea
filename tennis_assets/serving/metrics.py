"""Prometheus metrics of the policy server, in a registry of its own (not prometheus_client's
global one, so several servers in one test process never share counters).

Names follow Prometheus conventions: base units (seconds, bytes, ratios), counters end in
``_total``, every name starts with ``tennis_``. The hot path (one request) costs a few
microseconds here: two histogram observations, one counter, and the action statistics, which are
numpy bucket counts updated under one lock rather than one ``observe`` per action value (a batch
of 1000 observations would otherwise mean 4000 calls).
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from typing import Iterable

import numpy as np
from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Info,
                               GCCollector, PlatformCollector, ProcessCollector)
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)

log = logging.getLogger(__name__)

# Fine-grained below 10 ms, where the latency target (p99 <= 5 ms) lives.
INFERENCE_BUCKETS = (25e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,
                     1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 7.5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
                     1.0)
REQUEST_BUCKETS = (100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3,
                   5e-3, 7.5e-3, 10e-3, 15e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5)
# Actions are tanh outputs in [-1, 1]; the outer buckets isolate saturated values.
ACTION_BOUNDS = (-0.99, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 0.99, 1.0)
SATURATED = 0.99

ENDPOINTS = ("act", "invocations", "ping", "healthz", "readyz", "metrics", "other")
# outcome -> the status code it answers with; pre-created so rates exist before the first error.
OUTCOMES = {"ok": "200", "bad_request": "400", "not_found": "404", "method_not_allowed": "405",
            "timeout": "408", "too_large": "413", "unsupported_media_type": "415",
            "not_ready": "503", "error": "500"}


class ActionStats:
    """Histogram of action values per action dimension, and how many were saturated
    (|a| >= 0.99: the tanh output pinned at the edge, what a clipped action looks like)."""

    def __init__(self, dimensions: int = 2) -> None:
        self.dimensions = dimensions
        self._bounds = np.asarray(ACTION_BOUNDS, np.float64)
        self._lock = threading.Lock()
        # per dimension: counts per bucket (last = +Inf), sum, saturated count
        self._counts = np.zeros((dimensions, len(ACTION_BOUNDS) + 1), np.int64)
        self._sums = np.zeros(dimensions, np.float64)
        self._saturated = np.zeros(dimensions, np.int64)

    def observe(self, actions: np.ndarray) -> None:
        if actions.size <= 16:
            # One observation is 4 values: a Python loop with bisect costs ~3 us where the
            # numpy calls below cost ~20 us in fixed overhead.
            self._observe_few(actions.ravel().tolist())
            return
        values = np.asarray(actions, np.float64).reshape(-1, self.dimensions)
        buckets = len(self._bounds) + 1
        index = np.searchsorted(self._bounds, values, side="left")  # first le >= v
        index += np.arange(self.dimensions) * buckets
        counts = np.bincount(index.ravel(), minlength=self.dimensions * buckets)
        sums = values.sum(axis=0)
        saturated = (np.abs(values) >= SATURATED).sum(axis=0)
        with self._lock:
            self._counts += counts.reshape(self.dimensions, buckets)
            self._sums += sums
            self._saturated += saturated

    def _observe_few(self, values: list[float]) -> None:
        bounds, dims = ACTION_BOUNDS, self.dimensions
        with self._lock:
            counts, sums, saturated = self._counts, self._sums, self._saturated
            for i, v in enumerate(values):
                d = i % dims
                counts[d, bisect_left(bounds, v)] += 1
                sums[d] += v
                if abs(v) >= SATURATED:
                    saturated[d] += 1

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counts, sums, saturated = (self._counts.copy(), self._sums.copy(),
                                       self._saturated.copy())
        hist = HistogramMetricFamily("tennis_policy_action_value",
                                     "Greedy action values served, per action dimension",
                                     labels=["dimension"])
        total = CounterMetricFamily("tennis_policy_action_values",
                                    "Action values served, per action dimension",
                                    labels=["dimension"])
        sat = CounterMetricFamily("tennis_policy_action_saturated",
                                  f"Action values with |a| >= {SATURATED} (tanh saturated), per "
                                  "action dimension", labels=["dimension"])
        les = [repr(b) for b in ACTION_BOUNDS] + ["+Inf"]
        for d in range(self.dimensions):
            cumulative = np.cumsum(counts[d])
            hist.add_metric([str(d)], buckets=[(le, float(c)) for le, c in zip(les, cumulative)],
                            sum_value=float(sums[d]))
            total.add_metric([str(d)], float(cumulative[-1]))
            sat.add_metric([str(d)], float(saturated[d]))
        return [hist, total, sat]


class HostCollector:
    """psutil figures the standard process collector lacks: threads, and the CPU and memory
    of the machine (or container) the server shares."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        # cpu_percent measures since its previous call: prime it so the first scrape is sane.
        psutil.cpu_percent(interval=None)
        self._process.cpu_percent(interval=None)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        psutil = self._psutil
        try:
            memory = psutil.virtual_memory()
            with self._process.oneshot():
                threads = self._process.num_threads()
                # A ratio of the whole machine (0..1), like the host figure below.
                process_cpu = (self._process.cpu_percent(interval=None) / 100.0
                               / (psutil.cpu_count() or 1))
            host_cpu = psutil.cpu_percent(interval=None) / 100.0
        except Exception as exc:  # a scrape must never fail because /proc hiccuped
            log.debug("psutil collector: %s", exc)
            return []
        return [
            GaugeMetricFamily("tennis_policy_process_threads", "Threads of the server process",
                              value=threads),
            GaugeMetricFamily("tennis_policy_process_cpu_usage_ratio",
                              "Fraction of the machine's CPU used by the server process since the "
                              "previous scrape", value=process_cpu),
            GaugeMetricFamily("tennis_host_cpu_usage_ratio",
                              "CPU busy fraction of the whole machine since the previous scrape",
                              value=host_cpu),
            GaugeMetricFamily("tennis_host_memory_total_bytes", "Memory of the machine",
                              value=memory.total),
            GaugeMetricFamily("tennis_host_memory_available_bytes",
                              "Memory available to new processes", value=memory.available),
        ]


class GpuCollector:
    """GPU figures where CUDA exists; on a CPU-only machine it yields nothing (never an error).
    Memory allocated by this process comes from torch; device utilisation and used memory from
    NVML (pynvml), when that is installed."""

    def __init__(self) -> None:
        self._nvml = None
        self._cuda = False
        try:
            import torch

            self._torch = torch
            self._cuda = bool(torch.cuda.is_available())
        except Exception as exc:
            log.debug("GPU collector: torch unavailable (%s)", exc)
        if self._cuda:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception as exc:
                log.info("GPU utilisation not exported: NVML unavailable (%s)", exc)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        if not self._cuda:
            return []
        allocated = GaugeMetricFamily("tennis_gpu_memory_allocated_bytes",
                                      "GPU memory allocated by torch in the server process",
                                      labels=["gpu"])
        util = GaugeMetricFamily("tennis_gpu_utilization_ratio",
                                 "Fraction of the last sample period the GPU was busy (NVML)",
                                 labels=["gpu"])
        used = GaugeMetricFamily("tennis_gpu_memory_used_bytes",
                                 "GPU memory used by all processes (NVML)", labels=["gpu"])
        total = GaugeMetricFamily("tennis_gpu_memory_total_bytes", "GPU memory (NVML)",
                                  labels=["gpu"])
        try:
            for i in range(self._torch.cuda.device_count()):
                allocated.add_metric([str(i)], float(self._torch.cuda.memory_allocated(i)))
                if self._nvml is not None:
                    handle = self._nvml.nvmlDeviceGetHandleByIndex(i)
                    rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                    mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                    util.add_metric([str(i)], rates.gpu / 100.0)
                    used.add_metric([str(i)], float(mem.used))
                    total.add_metric([str(i)], float(mem.total))
        except Exception as exc:
            log.debug("GPU collector: %s", exc)
            return []
        return [allocated] + ([util, used, total] if self._nvml is not None else [])


class ServingMetrics:
    """Every metric the server exports, and the few calls the server makes to update them."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 process_metrics: bool = True) -> None:
        self.registry = reg = registry or CollectorRegistry()
        if process_metrics:
            # process_cpu_seconds_total, process_resident_memory_bytes, open fds, start time.
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
            reg.register(HostCollector())
            reg.register(GpuCollector())
        self.inference = Histogram(
            "tennis_policy_inference_duration_seconds",
            "Time in the policy network for one request (the whole batch)",
            buckets=INFERENCE_BUCKETS, registry=reg)
        self.request_duration = Histogram(
            "tennis_policy_request_duration_seconds",
            "Time from a parsed request line to the response written, per endpoint",
            ["endpoint"], buckets=REQUEST_BUCKETS, registry=reg)
        self.requests = Counter(
            "tennis_policy_requests", "HTTP requests by endpoint, outcome and status code",
            ["endpoint", "outcome", "code"], registry=reg)
        self.observations = Counter(
            "tennis_policy_observations", "Observations (court states) answered with actions",
            registry=reg)
        self.batch_size = Histogram(
            "tennis_policy_batch_size", "Observations per action request",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=reg)
        self.actions = ActionStats()
        reg.register(self.actions)

        self.model_info = Info("tennis_policy_model", "The model being served",
                               registry=reg)
        self.model_version = Gauge(
            "tennis_policy_model_version",
            "Registry version of the model being served (NaN until one is loaded)", registry=reg)
        self.model_loaded = Gauge("tennis_policy_model_loaded",
                                  "1 when a model is loaded and requests can be answered",
                                  registry=reg)
        self.model_loaded_at = Gauge(
            "tennis_policy_model_loaded_timestamp_seconds",
            "Unix time the served model was loaded", registry=reg)
        self.model_load_seconds = Gauge(
            "tennis_policy_model_load_duration_seconds",
            "How long loading the served model took (download, build, test inference)",
            registry=reg)
        self.reloads = Counter("tennis_policy_model_reloads",
                               "Model loads by result; a failure keeps the old model serving",
                               ["result"], registry=reg)
        self.registry_failures = Counter(
            "tennis_policy_registry_poll_failures",
            "Registry lookups of the model alias that failed (registry unreachable or erroring)",
            registry=reg)
        self.model_version.set(math.nan)
        for result in ("success", "failure"):
            self.reloads.labels(result)
        for outcome, code in OUTCOMES.items():
            if outcome not in ("not_found", "timeout"):  # counted under endpoint="other"
                self.requests.labels("act", outcome, code)
        # Resolved label children: looking them up per request would cost a dict lookup and a
        # lock on every call.
        self._ok = {e: (self.requests.labels(e, "ok", "200"), self.request_duration.labels(e))
                    for e in ("act", "invocations")}

    # ---- called by the server ---------------------------------------------------------------
    def act_ok(self, seconds: float, inference_seconds: float, actions: np.ndarray,
               endpoint: str = "act") -> None:
        """An answered inference request (``/act`` or ``/invocations``)."""
        count, duration = self._ok[endpoint]
        count.inc()
        duration.observe(seconds)
        self.inference.observe(inference_seconds)
        n = actions.shape[0] if actions.ndim == 3 else 1
        self.observations.inc(n)
        self.batch_size.observe(n)
        self.actions.observe(actions)

    def request(self, endpoint: str, outcome: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, outcome, str(code)).inc()
        self.request_duration.labels(endpoint).observe(seconds)

    # ---- called by the model source ---------------------------------------------------------
    def model_swapped(self, model) -> None:
        self.model_info.info({"name": model.name, "version": model.version,
                              "alias": model.alias, "run_id": model.run_id or "",
                              "implementation": model.implementation})
        try:
            self.model_version.set(float(model.version))
        except ValueError:
            self.model_version.set(math.nan)
        self.model_loaded.set(1)
        self.model_loaded_at.set(model.loaded_at)
        self.model_load_seconds.set(model.load_seconds)
        self.reloads.labels("success").inc()

    def load_failed(self, kind: str, exc: BaseException) -> None:
        if kind == "registry":
            self.registry_failures.inc()
        else:
            self.reloads.labels("failure").inc()
