"""Resource accounting of a block of work, measured on this process."""

import time

import numpy as np
import pytest

from tennis_assets.tracking.resource_usage import ResourceUsage


def test_busy_block_counts_cpu_and_memory():
    with ResourceUsage(interval_s=0.05) as usage:
        held = np.ones(64 * 2**20 // 8)  # 64 MiB that must show in the peak
        # Busy for 0.5 s of this process's own CPU time: on a loaded machine that takes longer
        # on the wall clock, and the share it got is what cpu_percent_mean must report.
        t0 = time.process_time()
        while time.process_time() - t0 < 0.5:
            np.sort(np.random.default_rng(0).random(100_000))
    summary = usage.summary()
    assert summary["wall_seconds"] >= 0.5
    assert summary["cpu_seconds"] >= 0.5
    share = 100.0 * summary["cpu_seconds"] / summary["wall_seconds"]
    assert summary["cpu_percent_mean"] == pytest.approx(share)
    assert 0 < summary["cpu_percent_mean"] <= 100 * summary["cpu_count"] + 20
    assert summary["memory_rss_peak_bytes"] >= held.nbytes
    assert "gpu_memory_peak_bytes" not in summary or summary["gpu_memory_peak_bytes"] >= 0


def test_idle_block_uses_little_cpu():
    with ResourceUsage(interval_s=0.05) as usage:
        time.sleep(0.4)
    summary = usage.summary()
    assert summary["cpu_seconds"] < 0.2
    assert summary["cpu_percent_mean"] < 50
