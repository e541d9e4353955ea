"""What a block of work cost the machine: CPU time and utilisation, memory, and the GPU's.

A background thread samples this process (and its children: numba and torch threads live in
the process, but a multiprocess executor's step is its own process) every ``interval_s``. CPU
seconds come from the kernel's counters at start and end, so short runs are exact even when
they fit between two samples; peaks come from the samples.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Self


def _gpu_sample() -> dict[str, float] | None:
    """Memory held by torch on the current CUDA device and, with NVML, its utilisation."""
    import sys

    # Only a process that already uses torch can hold GPU memory; importing it here would cost
    # a second of CPU inside the measurement.
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    sample = {"gpu_memory_bytes": float(torch.cuda.memory_allocated())}
    # NVML absent or refusing (its own error types): memory alone still says much.
    with contextlib.suppress(Exception):
        sample["gpu_utilization_percent"] = float(torch.cuda.utilization())
    return sample


class ResourceUsage:
    """Context manager; ``summary()`` after exit (or during, for progress)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        import psutil

        self.interval_s = interval_s
        self._process = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu_percent: list[float] = []
        self._rss_peak = 0
        self._gpu: list[dict[str, float]] = []
        self._t0 = self._t1 = 0.0
        self._cpu0 = self._cpu1 = 0.0

    def _cpu_seconds(self) -> float:
        t = self._process.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def _rss(self) -> int:
        import psutil

        rss = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child that just exited holds no memory
                rss += child.memory_info().rss
        return rss

    def _sample(self) -> None:
        self._cpu_percent.append(self._process.cpu_percent(interval=None))
        self._rss_peak = max(self._rss_peak, self._rss())
        gpu = _gpu_sample()
        if gpu:
            self._gpu.append(gpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # accounting must never stop the training
                self._sample()

    def __enter__(self) -> Self:
        self._t0, self._cpu0 = time.perf_counter(), self._cpu_seconds()
        self._process.cpu_percent(interval=None)  # primes psutil's delta
        self._rss_peak = self._rss()
        self._thread = threading.Thread(target=self._run, name="resource-usage", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._t1, self._cpu1 = time.perf_counter(), self._cpu_seconds()
        self._rss_peak = max(self._rss_peak, self._rss())

    def summary(self) -> dict[str, float]:
        end = self._t1 or time.perf_counter()
        cpu_end = self._cpu1 or self._cpu_seconds()
        wall = max(end - self._t0, 1e-9)
        cpu = cpu_end - self._cpu0
        out = {"wall_seconds": wall, "cpu_seconds": cpu,
               # 100 = one core busy for the whole run; the machine's cores cap it.
               "cpu_percent_mean": 100.0 * cpu / wall,
               "cpu_percent_peak": max(self._cpu_percent, default=100.0 * cpu / wall),
               "cpu_count": float(os.cpu_count() or 1),
               "memory_rss_peak_bytes": float(self._rss_peak)}
        if self._gpu:
            out["gpu_memory_peak_bytes"] = max(g["gpu_memory_bytes"] for g in self._gpu)
            utils = [g["gpu_utilization_percent"] for g in self._gpu
                     if "gpu_utilization_percent" in g]
            if utils:
                out["gpu_utilization_percent_mean"] = sum(utils) / len(utils)
        return out
