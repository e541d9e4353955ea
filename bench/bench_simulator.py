"""Throughput of the built-in Tennis simulator: court-decisions per second by court count.

    python bench/bench_simulator.py [--quick] [--parallel]

Each figure is the median of several timed repeats of VecTennis.step with uniform random
actions (drawn beforehand from a pool, so the generator's cost is not counted), after a warm-up
that excludes numba's compile or cache-load time, which is printed separately. The serial kernel
(VecTennis's default) is always timed; --parallel also times the numba-parallel one.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and court counts")
    ap.add_argument("--parallel", action="store_true", help="also time VecTennis(parallel=True)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    import numba

    from tennis_assets.sim import VecTennis

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    modes = (False, True) if args.parallel else (False,)
    for parallel in modes:
        env = VecTennis(4, seed=0, parallel=parallel)
        env.step(np.zeros((4, 2, 2)))
    t_compile = time.perf_counter() - t0

    print("Tennis simulator benchmark")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"os.cpu_count()={os.cpu_count()}, usable cpus={len(os.sched_getaffinity(0))}, "
          f"numba threads={numba.get_num_threads()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    print(f"import: {t_import:.2f} s; numba compile or cache load (first construction and step): "
          f"{t_compile:.2f} s")
    print(f"load average before timing: {os.getloadavg()[0]:.2f} "
          "(other processes share these cores)")
    print()

    counts = [1, 8, 64, 256, 1024, 4096, 16384]
    repeats = args.repeats
    target = 200_000  # court-decisions per timed repeat
    if args.quick:
        counts = [1, 8, 256, 4096]
        repeats = 3
        target = 100_000

    rng = np.random.default_rng(0)
    header = f"{'courts':>7} {'us/step':>10} {'court-decisions/s':>18}"
    if args.parallel:
        header += f" {'us/step par':>12} {'parallel c-d/s':>15}"
    print(header)
    for n in counts:
        pool = rng.uniform(-1.0, 1.0, size=(32, n, 2, 2))
        steps = max(100, target // n)
        rates = {}
        per_step = {}
        for parallel in modes:
            env = VecTennis(n, seed=1, parallel=parallel)
            for i in range(20):  # warm-up
                env.step(pool[i % 32])
            samples = []
            for _ in range(repeats):
                t = time.perf_counter()
                for i in range(steps):
                    env.step(pool[i % 32])
                samples.append(time.perf_counter() - t)
            med = statistics.median(samples)
            rates[parallel] = n * steps / med
            per_step[parallel] = med / steps * 1e6
        line = f"{n:>7} {per_step[False]:>10.1f} {rates[False]:>18,.0f}"
        if args.parallel:
            line += f" {per_step[True]:>12.1f} {rates[True]:>15,.0f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
