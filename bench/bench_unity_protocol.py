"""Steps per second through the ML-Agents protocol (UnityTennis <-> peer over loopback gRPC)
against the same VecTennis stepped in-process.

    python bench/bench_unity_protocol.py [--quick] [--thread] [--repeats 5]

The peer runs as a separate process launched by UnityEnvironment, as a Unity build would be
(--thread: in a thread of this process, sharing its GIL). Each figure is the median of several
timed repeats of env.step with uniform random float32 actions drawn beforehand, after a warm-up;
launch and handshake time is printed separately. A step is one decision of every court.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def timed(env, pool, steps: int, repeats: int) -> float:
    """Median seconds per step."""
    for i in range(20):  # warm-up
        env.step(pool[i % len(pool)])
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(steps):
            env.step(pool[i % len(pool)])
        samples.append((time.perf_counter() - t) / steps)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, repeats and court counts")
    ap.add_argument("--thread", action="store_true", help="run the peer in a thread, not a process")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    # mlagents-envs compares versions with distutils, which warns on every connection.
    warnings.filterwarnings("ignore", message="distutils Version classes")

    import grpc
    import mlagents_envs

    from tennis_assets.sim import VecTennis
    from tennis_assets.unity import UnityTennis
    from tennis_assets.unity.peer import start_in_thread, write_launcher

    print("Unity protocol benchmark (UnityTennis over loopback gRPC vs in-process VecTennis)")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"usable cpus={len(os.sched_getaffinity(0))}")
    print(f"python {platform.python_version()}, mlagents-envs {mlagents_envs.__version__}, "
          f"grpcio {grpc.__version__}, numpy {np.__version__}")
    print(f"peer: {'a thread of this process' if args.thread else 'a launched process'}")
    print(f"load average before timing: {os.getloadavg()[0]:.2f} "
          "(other processes share these cores)")
    print()

    counts, steps, repeats = [1, 8, 32], 400, args.repeats
    if args.quick:
        counts, steps, repeats = [1, 8], 200, 3
    rng = np.random.default_rng(0)
    print(f"{'courts':>7} {'in-process steps/s':>19} {'protocol steps/s':>17} "
          f"{'ms/step':>8} {'court-decisions/s':>18} {'slowdown':>9} {'launch s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            pool = rng.uniform(-1.0, 1.0, size=(32, n, 2, 2)).astype(np.float32)
            local = timed(VecTennis(n, seed=1), pool, steps * 5, repeats)
            port = free_port()
            t0 = time.perf_counter()
            if args.thread:
                _peer, thread = start_in_thread(port, courts=n)
                env = UnityTennis(base_port=port, seed=1, timeout_s=30)
            else:
                build = write_launcher(Path(tmp) / f"Tennis{n}.x86_64", courts=n)
                env = UnityTennis(str(build), base_port=port, seed=1, timeout_s=30)
            launch = time.perf_counter() - t0
            try:
                remote = timed(env, pool, steps, repeats)
            finally:
                env.close()
                if args.thread:
                    thread.join(5)
            print(f"{n:>7} {1 / local:>19,.0f} {1 / remote:>17,.0f} {remote * 1e3:>8.2f} "
                  f"{n / remote:>18,.0f} {remote / local:>8.0f}x {launch:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
