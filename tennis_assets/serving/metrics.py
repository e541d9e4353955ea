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
import os
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

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

ENDPOINTS = ("act", "invocations", "ping", "version", "healthz", "readyz", "metrics",
             "other")
# outcome -> the status code it answers with; pre-created so rates exist before the first error.
OUTCOMES = {"ok": "200", "bad_request": "400", "not_found": "404", "method_not_allowed": "405",
            "timeout": "408", "too_large": "413", "unsupported_media_type": "415",
            "not_ready": "503", "error": "500"}


class ActionStats:
    """Histogram of action values per action dimension, and how many were saturated
    (|a| >= 0.99: the tanh output pinned at the edge, what a clipped action looks like).

    The dimensions are the served model's action values per agent (Tennis 2, MPE
    simple_spread 5): ``grow`` adds them when a model loads, and a batch with more grows them
    too. They never shrink: after a swap to a model with fewer, the extra dimensions keep their
    counts (counters never go down) and stop moving."""

    def __init__(self, dimensions: int = 0) -> None:
        self.dimensions = 0
        self._bounds = np.asarray(ACTION_BOUNDS, np.float64)
        self._lock = threading.Lock()
        # per dimension: counts per bucket (last = +Inf), sum, saturated count
        self._counts = np.zeros((0, len(ACTION_BOUNDS) + 1), np.int64)
        self._sums = np.zeros(0, np.float64)
        self._saturated = np.zeros(0, np.int64)
        self.grow(dimensions)

    def grow(self, dimensions: int) -> None:
        """At least ``dimensions`` action dimensions, each exported from now on."""
        with self._lock:
            extra = dimensions - self.dimensions
            if extra <= 0:
                return
            self._counts = np.vstack([self._counts,
                                      np.zeros((extra, self._counts.shape[1]), np.int64)])
            self._sums = np.concatenate([self._sums, np.zeros(extra, np.float64)])
            self._saturated = np.concatenate([self._saturated, np.zeros(extra, np.int64)])
            self._grown(dimensions)
            self.dimensions = dimensions  # last: a reader that sees it finds the arrays sized

    def _grown(self, dimensions: int) -> None:
        """Called under the lock when the dimensions grow (SharedActionStats adds series)."""

    def observe(self, actions: np.ndarray) -> None:
        """Actions [..., action_size]: each value counted in its dimension (the last axis)."""
        dims = int(actions.shape[-1]) if actions.ndim else 1
        if dims > self.dimensions:
            self.grow(dims)
        if actions.size <= 16:
            # One Tennis observation is 4 values: a Python loop with bisect costs ~3 us where
            # the numpy calls below cost ~20 us in fixed overhead.
            self._observe_few(actions.ravel().tolist(), dims)
            return
        values = np.asarray(actions, np.float64).reshape(-1, dims)
        buckets = len(self._bounds) + 1
        index = np.searchsorted(self._bounds, values, side="left")  # first le >= v
        index += np.arange(dims) * buckets
        counts = np.bincount(index.ravel(), minlength=dims * buckets)
        sums = values.sum(axis=0)
        saturated = (np.abs(values) >= SATURATED).sum(axis=0)
        with self._lock:
            self._counts[:dims] += counts.reshape(dims, buckets)
            self._sums[:dims] += sums
            self._saturated[:dims] += saturated

    def _observe_few(self, values: list[float], dims: int) -> None:
        bounds = ACTION_BOUNDS
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
        for d in range(len(counts)):
            cumulative = np.cumsum(counts[d])
            hist.add_metric([str(d)], buckets=[(le, float(c)) for le, c in zip(les, cumulative)],
                            sum_value=float(sums[d]))
            total.add_metric([str(d)], float(cumulative[-1]))
            sat.add_metric([str(d)], float(saturated[d]))
        return [hist, total, sat]


OBSERVATIONS_HELP = "Observations (court states) answered with actions"
ACTION_VALUES_HELP = "Action values served, per action dimension"


class _NotWritten:
    def inc(self, amount: float = 1) -> None:
        pass


class SharedCollector:
    """prometheus-client's MultiProcessCollector (every worker's file, summed), plus two
    counters that equal a histogram's count or sum, derived here rather than written to the
    files on every request (each write takes a lock and a store into the shared file, ~1 us):
    tennis_policy_observations_total is the batch-size histogram's sum, and
    tennis_policy_action_values_total the action histogram's count."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        from prometheus_client import multiprocess

        self._files = multiprocess.MultiProcessCollector(None, path=path)
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        for metric in self._files.collect():
            yield metric
            if metric.name == "tennis_policy_batch_size":
                total = sum(s.value for s in metric.samples if s.name.endswith("_sum"))
                yield CounterMetricFamily("tennis_policy_observations", OBSERVATIONS_HELP,
                                          value=total)
            elif metric.name == "tennis_policy_action_value":
                values = CounterMetricFamily("tennis_policy_action_values", ACTION_VALUES_HELP,
                                             labels=["dimension"])
                for s in metric.samples:
                    if s.name.endswith("_count"):
                        values.add_metric([s.labels["dimension"]], s.value)
                yield values


class SharedActionStats(ActionStats):
    """ActionStats in prometheus-client's multiprocess mode: the same three metrics, a
    Histogram and a Counter whose values live in this worker's file, summed over workers at
    scrape time, and the count of values, which is the histogram's count (SharedCollector).
    A batch's bucket counts are still computed by ActionStats (numpy) and each non-empty bucket
    is added once, rather than one ``observe`` per action value."""

    def __init__(self, dimensions: int = 0) -> None:
        self._one_at_a_time = threading.Lock()
        self._hist = Histogram("tennis_policy_action_value",
                               "Greedy action values served, per action dimension",
                               ["dimension"], buckets=ACTION_BOUNDS, registry=None)
        self._sat = Counter("tennis_policy_action_saturated",
                            f"Action values with |a| >= {SATURATED} (tanh saturated), per action "
                            "dimension", ["dimension"], registry=None)
        self._shared: list = []
        super().__init__(dimensions)

    def _grown(self, dimensions: int) -> None:
        # Histogram.observe adds to one bucket's value and to the sum; adding a whole bucket
        # count at once needs those values themselves (prometheus-client has no public call
        # for it). Non-cumulative per bucket, as observe stores them.
        for d in range(len(self._shared), dimensions):
            child = self._hist.labels(str(d))
            self._shared.append((child._buckets, child._sum, self._sat.labels(str(d))))

    def observe(self, actions: np.ndarray) -> None:
        dims = int(actions.shape[-1]) if actions.ndim else 1
        if dims > self.dimensions:
            self.grow(dims)
        if actions.size <= 16:
            self._add_few(actions.ravel().tolist(), dims)
            return
        # The in-process counts hold one batch at a time: filled by ActionStats, added to the
        # shared values, cleared.
        with self._one_at_a_time:
            super().observe(actions)
            for d, (buckets, total, sat) in enumerate(self._shared[:dims]):
                for i, c in enumerate(self._counts[d].tolist()):
                    if c:
                        buckets[i].inc(c)
                total.inc(float(self._sums[d]))
                if self._saturated[d]:
                    sat.inc(int(self._saturated[d]))
            self._counts[:] = 0
            self._sums[:] = 0
            self._saturated[:] = 0

    def _add_few(self, values: list[float], dims: int) -> None:
        # A handful of values: straight to the shared values, one write per value and one sum
        # per dimension (numpy's fixed costs would dominate, as in ActionStats).
        shared = self._shared
        sums = [0.0] * dims
        for i, v in enumerate(values):
            d = i % dims
            buckets, _, sat = shared[d]
            buckets[bisect_left(ACTION_BOUNDS, v)].inc(1)
            sums[d] += v
            if abs(v) >= SATURATED:
                sat.inc(1)
        for d in range(dims):
            shared[d][1].inc(sums[d])

    def collect(self) -> Iterable[Metric]:
        return []  # exported by the MultiProcessCollector


class HostCollector:
    """psutil figures the standard process collector lacks: threads, and the CPU and memory
    of the machine (or container) the server shares.

    ``pids``: with several workers, a callable giving the live workers' pids; each worker's
    figures then carry a ``pid`` label, read from /proc by whichever worker is scraped, so every
    scrape shows every worker (CPU since the scraped worker's previous look at that pid).
    """

    def __init__(self, pids: Callable[[], Iterable[int]] | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._pids = pids
        self._processes: dict[int, object] = {}
        # cpu_percent measures since its previous call: prime it so the first scrape is sane.
        psutil.cpu_percent(interval=None)
        if pids is None:
            self._process(os.getpid())

    def _process(self, pid: int):
        """(the psutil process, whether its CPU figure was primed before this call)."""
        process = self._processes.get(pid)
        if process is not None:
            return process, True
        process = self._processes[pid] = self._psutil.Process(pid)
        process.cpu_percent(interval=None)
        return process, False

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        psutil = self._psutil
        labels = ["pid"] if self._pids is not None else []
        threads = GaugeMetricFamily("tennis_policy_process_threads",
                                    "Threads of the server process", labels=labels)
        process_cpu = GaugeMetricFamily(
            "tennis_policy_process_cpu_usage_ratio",
            "Fraction of the machine's CPU used by the server process since the previous scrape",
            labels=labels)
        pids = list(self._pids()) if self._pids is not None else [os.getpid()]
        for gone in set(self._processes) - set(pids):
            del self._processes[gone]
        try:
            memory = psutil.virtual_memory()
            host_cpu = psutil.cpu_percent(interval=None) / 100.0
            cpus = psutil.cpu_count() or 1
            for pid in pids:
                try:
                    process, primed = self._process(pid)
                    with process.oneshot():
                        count = process.num_threads()
                        # A ratio of the whole machine (0..1), like the host figure below;
                        # none for a worker first seen now (nothing measured yet).
                        cpu = (process.cpu_percent(interval=None) / 100.0 / cpus
                               if primed else None)
                except psutil.NoSuchProcess:  # a worker that exited since the listing
                    self._processes.pop(pid, None)
                    continue
                value = [str(pid)] if labels else []
                threads.add_metric(value, count)
                if cpu is not None:
                    process_cpu.add_metric(value, cpu)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail because /proc hiccuped
            log.debug("psutil collector: %s", exc)
            return []
        return [
            threads, process_cpu,
            GaugeMetricFamily("tennis_host_cpu_usage_ratio",
                              "CPU busy fraction of the whole machine since the previous scrape",
                              value=host_cpu),
            GaugeMetricFamily("tennis_host_memory_total_bytes", "Memory of the machine",
                              value=memory.total),
            GaugeMetricFamily("tennis_host_memory_available_bytes",
                              "Memory available to new processes", value=memory.available),
        ]


_LIVE_FILE = re.compile(r"gauge_livemin_(\d+)\.db$")


def live_worker_pids(multiprocess_dir: str) -> list[int]:
    """The workers alive now: each has the file of its ``livemin`` gauge (model_loaded) from its
    start until it is marked dead (at its exit, or by the supervisor when it died)."""
    try:
        names = os.listdir(multiprocess_dir)
    except OSError:
        return [os.getpid()]
    return sorted(int(m.group(1)) for m in map(_LIVE_FILE.match, names) if m)


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


class WorkerProcessCollector:
    """prometheus-client's process metrics (CPU seconds, memory, fds, start time) of every live
    worker, each with a ``pid`` label: its ProcessCollector reads /proc/<pid>, so the scraped
    worker can report its siblings."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids
        self._collectors: dict[int, ProcessCollector] = {}

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        pids = list(self._pids())
        for gone in set(self._collectors) - set(pids):
            del self._collectors[gone]
        for pid in pids:
            collector = self._collectors.get(pid)
            if collector is None:
                collector = self._collectors[pid] = ProcessCollector(
                    pid=_constant(pid), registry=None)
            for family in collector.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation,
                                                            family.type, family.unit)
                merged.samples.extend(sample._replace(labels={**sample.labels, "pid": str(pid)})
                                      for sample in family.samples)
        return list(families.values())


class SharedGcStats:
    """The garbage collector's counts (what GCCollector exports for one process) as counters
    summed over the workers. gc.get_stats() is cumulative per process; the increase since the
    previous ``sample()`` is added, once a second and at the worker's exit (a counter updated
    inside a gc callback could deadlock on the value lock the collecting thread holds)."""

    def __init__(self) -> None:
        import gc

        self._gc = gc
        labels = ["generation"]
        self._counters = (
            Counter("python_gc_objects_collected", "Objects collected during gc", labels,
                    registry=None),
            Counter("python_gc_objects_uncollectable", "Uncollectable objects found during GC",
                    labels, registry=None),
            Counter("python_gc_collections", "Number of times this generation was collected",
                    labels, registry=None))
        self._keys = ("collected", "uncollectable", "collections")
        self._last = [dict.fromkeys(self._keys, 0) for _ in gc.get_stats()]
        self.sample()

    def sample(self) -> None:
        for generation, (stats, last) in enumerate(zip(self._gc.get_stats(), self._last)):
            for counter, key in zip(self._counters, self._keys):
                increase = stats[key] - last[key]
                if increase > 0:
                    counter.labels(str(generation)).inc(increase)
                    last[key] = stats[key]


class GpuCollector:
    """GPU figures where CUDA exists; on a CPU-only machine it yields nothing (never an error).
    Memory allocated by this process comes from torch; device utilisation and used memory from
    NVML (pynvml), when that is installed."""

    def __init__(self, per_process: bool = True) -> None:
        # per_process=False (several workers): no torch figure, which only the worker holding
        # the memory could read; the NVML figures are the device's, the same from any worker.
        self._per_process = per_process
        self._nvml = None
        self._cuda = False
        try:
            import torch

            self._torch = torch
            self._cuda = bool(torch.cuda.is_available())
        except ImportError as exc:
            log.debug("GPU collector: torch unavailable (%s)", exc)
        if self._cuda:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception as exc:  # noqa: BLE001 - pynvml's own errors, or none installed
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
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail for a driver hiccup
            log.debug("GPU collector: %s", exc)
            return []
        return (([allocated] if self._per_process else [])
                + ([util, used, total] if self._nvml is not None else []))


class ServingMetrics:
    """Every metric the server exports, and the few calls the server makes to update them."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 process_metrics: bool = True, multiprocess_dir: str | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess = multiprocess_dir is not None
        self.gc: SharedGcStats | None = None
        # Where the metric objects below register: the exposition registry, or none at all in
        # multiprocess mode (see _share).
        reg: CollectorRegistry | None = self.registry
        if multiprocess_dir is not None:
            self._share(multiprocess_dir)
            reg = None
            if process_metrics:
                self._add_worker_collectors(multiprocess_dir)
        elif process_metrics:
            # process_cpu_seconds_total, process_resident_memory_bytes, open fds, start time.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
            self.registry.register(HostCollector())
            self.registry.register(GpuCollector())
        self._add_request_metrics(reg)
        self._add_model_metrics(reg)
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

    def _share(self, multiprocess_dir: str) -> None:
        """prometheus-client's multiprocess mode (``workers``): every counter, histogram and
        gauge lives in a file of this process under ``multiprocess_dir``; the exposition
        registry reads all the workers' files, so the metric objects themselves must stay out
        of it (or each would be exported twice): they register nowhere (None)."""
        from prometheus_client import values

        from tennis_assets.settings import prometheus_multiproc_dir

        # prometheus_client picks where values live when it is first imported; imported
        # before the variable was set, this process's values would silently be missing
        # from every scrape.
        if (prometheus_multiproc_dir() != multiprocess_dir
                or values.ValueClass.__name__ != "MmapedValue"):
            raise RuntimeError(f"multiprocess metrics in {multiprocess_dir}: "
                               "$PROMETHEUS_MULTIPROC_DIR must name it before "
                               "prometheus_client is first imported")
        SharedCollector(self.registry, path=multiprocess_dir)

    def _add_worker_collectors(self, multiprocess_dir: str) -> None:
        """The process, host and GPU figures of every live worker, read at scrape time."""
        def pids() -> list[int]:
            return live_worker_pids(multiprocess_dir)

        PlatformCollector(registry=self.registry)
        self.registry.register(WorkerProcessCollector(pids))
        self.registry.register(HostCollector(pids))
        self.registry.register(GpuCollector(per_process=False))
        self.gc = SharedGcStats()

    def _add_request_metrics(self, reg: CollectorRegistry | None) -> None:
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
        # Several workers: derived from batch_size at scrape time (SharedCollector), one file
        # write less per request.
        self.observations = _NotWritten() if self.multiprocess else Counter(
            "tennis_policy_observations", OBSERVATIONS_HELP, registry=reg)
        self.batch_size = Histogram(
            "tennis_policy_batch_size", "Observations per action request",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=reg)
        self.actions: ActionStats
        if reg is None:
            self.actions = SharedActionStats()
        else:
            self.actions = ActionStats()
            reg.register(self.actions)

    def _add_model_metrics(self, reg: CollectorRegistry | None) -> None:
        # Each worker loads the champion on its own, so with several workers the model gauges
        # are per worker (a ``pid`` label, dropped when the worker exits), except
        # model_loaded: the smallest over the live workers, so "no model" alerts while any
        # worker cannot answer. The multiprocess_mode arguments do nothing in one process.
        self.model_info: Info | None = None
        self.model_info_gauge: Gauge | None = None
        self._info_labels: tuple | None = None
        if self.multiprocess:
            # Info does not work in multiprocess mode: the same series as a gauge, 1 for the
            # model served and 0 for one this worker served before.
            self.model_info_gauge = Gauge(
                "tennis_policy_model_info", "The model being served",
                ["name", "version", "alias", "run_id", "implementation"],
                registry=reg, multiprocess_mode="liveall")
        else:
            self.model_info = Info("tennis_policy_model", "The model being served",
                                   registry=reg)
        self.model_version = Gauge(
            "tennis_policy_model_version",
            "Registry version of the model being served (NaN until one is loaded)", registry=reg,
            multiprocess_mode="liveall")
        self.model_loaded = Gauge("tennis_policy_model_loaded",
                                  "1 when a model is loaded and requests can be answered",
                                  registry=reg, multiprocess_mode="livemin")
        self.model_loaded_at = Gauge(
            "tennis_policy_model_loaded_timestamp_seconds",
            "Unix time the served model was loaded", registry=reg, multiprocess_mode="liveall")
        self.model_load_seconds = Gauge(
            "tennis_policy_model_load_duration_seconds",
            "How long loading the served model took (download, build, test inference)",
            registry=reg, multiprocess_mode="liveall")
        self.reloads = Counter("tennis_policy_model_reloads",
                               "Model loads by result; a failure keeps the old model serving",
                               ["result"], registry=reg)
        self.registry_failures = Counter(
            "tennis_policy_registry_poll_failures",
            "Registry lookups of the model alias that failed (registry unreachable or erroring)",
            registry=reg)

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
        info = {"name": model.name, "version": model.version, "alias": model.alias,
                "run_id": model.run_id or "", "implementation": model.implementation}
        if self.model_info_gauge is not None:
            if self._info_labels is not None:
                self.model_info_gauge.labels(*self._info_labels).set(0)
            self._info_labels = tuple(info.values())
            self.model_info_gauge.labels(*self._info_labels).set(1)
        elif self.model_info is not None:
            self.model_info.info(info)
        try:
            self.model_version.set(float(model.version))
        except ValueError:
            self.model_version.set(math.nan)
        # The action series of the model's dimensions exist from its load on.
        self.actions.grow(model.action_shape[-1])
        self.model_loaded.set(1)
        self.model_loaded_at.set(model.loaded_at)
        self.model_load_seconds.set(model.load_seconds)
        self.reloads.labels("success").inc()

    def load_failed(self, kind: str, exc: BaseException) -> None:
        if kind == "registry":
            self.registry_failures.inc()
        else:
            self.reloads.labels("failure").inc()
