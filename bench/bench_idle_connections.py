"""The policy server's latency for a well-behaved client while another client holds N idle
connections open (reopening each one the server closes), beside the same client with none:
what connection exhaustion costs everybody else.

    python bench/bench_idle_connections.py [--idle 0,1000,2000] [--seconds 8] [--repeats 3]
    python bench/bench_idle_connections.py --servers old,new    # also the server it replaced

The server runs as its own process, exactly as `tennis-assets serve` starts it (default
--max-concurrency 1000), answering for an untrained learner registered in a temporary MLflow
registry (bench_policy_server.register_champion). The hog is a separate process holding N
connections that never send a byte; each one the server closes is reopened at once (a client
reopening timed-out connections, as the hostile test did). The well-behaved client, a third
process, sends one request after another for --seconds: GET /healthz, GET /readyz and POST /act
each on a new connection, then POST /act on a kept-alive one. Each figure is the median over
--repeats runs; the conditions alternate (none, N, none, N, ...) so a change in the machine's
load hits all alike. "old" is the server before connection shedding (git history at
OLD_COMMIT: uvicorn's limit_concurrency, a plain-text 503 past it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_policy_server import ROOT, _load_average, _percentile, _stop, register_champion

# The last commit whose server.py bounded connections with uvicorn's limit_concurrency.
OLD_COMMIT = "808e54e"
ACT = json.dumps({"observations": [[0.1] * 24, [-0.1] * 24]}).encode()

OLD_MAIN = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("tennis_assets.serving.old_server", sys.argv[1])
old = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = old
spec.loader.exec_module(old)
from tennis_assets.serving import ChampionSource
from tennis_assets.tracking.mlflow_tracking import MlflowTracker
source = ChampionSource(MlflowTracker(sys.argv[2]), sys.argv[3])
server = old.PolicyServer(source, old.ServerConfig(port=0, access_log=False))
print(f"old server on {server.url}", flush=True)
server.serve_forever()
"""


def _hog(port: int, n: int, ready, stop) -> None:
    """Hold ``n`` silent connections to ``port``; reopen each one the server closes."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    # epoll, registered once: the hog should cost the machine as little as it can, so that what
    # is measured is the server.
    selector = selectors.DefaultSelector()

    def open_one() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    for _ in range(n):
        open_one()
    ready.set()
    reopened = 0
    while not stop.is_set():
        for key, _ in selector.select(0.05):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                continue  # a response (a 408 or 503): wait for the close
            selector.unregister(sock)
            sock.close()
            open_one()
            reopened += 1
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    print(f"    hog reopened {reopened} connections the server closed", flush=True)


def _client(url: str, seconds: float, out) -> None:
    """One request after another for ``seconds``; latencies by kind, and the failures."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lat: dict[str, list[float]] = {"healthz": [], "readyz": [], "act (new connection)": [],
                                   "act (kept alive)": []}
    failures: list[str] = []

    def one(conn, method, path, body, kind) -> None:
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{kind}: {type(exc).__name__}")
            conn.close()
            return
        if resp.status != 200:
            failures.append(f"{kind}: {resp.status} {data[:80]!r}")
            return
        lat[kind].append(time.perf_counter() - started)

    kept = http.client.HTTPConnection(host, int(port), timeout=10)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for method, path, body, kind in (("GET", "/healthz", None, "healthz"),
                                         ("GET", "/readyz", None, "readyz"),
                                         ("POST", "/act", ACT, "act (new connection)")):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            one(conn, method, path, body, kind)
            conn.close()
        one(kept, "POST", "/act", ACT, "act (kept alive)")
    kept.close()
    out.put((lat, failures))


def run_once(url: str, idle: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    port = int(url.rsplit(":", 1)[1])
    hog = ctx.Process(target=_hog, args=(port, idle, ready, stop)) if idle else None
    if hog is not None:
        hog.start()
        assert ready.wait(120), "the hog could not open its connections"
        time.sleep(1.5)  # past the server's SHED_AFTER_IDLE_S: the hog's connections are idle
    client = ctx.Process(target=_client, args=(url, seconds, out))
    client.start()
    lat, failures = out.get(timeout=seconds + 120)
    client.join(30)
    if hog is not None:
        stop.set()
        hog.join(60)
    figures = {f"{kind} p50 ms": _percentile(v, 50) * 1e3 for kind, v in lat.items()}
    figures.update({f"{kind} p99 ms": _percentile(v, 99) * 1e3 for kind, v in lat.items()})
    figures["requests"] = sum(len(v) for v in lat.values()) + len(failures)
    figures["failed"] = len(failures)
    figures["failures"] = sorted(set(failures))[:5]
    return figures


def start(kind: str, uri: str, name: str, root: Path, limit: int) -> tuple:
    if kind == "old":
        path = root / "old_server.py"
        path.write_bytes(subprocess.run(
            ["git", "show", f"{OLD_COMMIT}:tennis_assets/serving/server.py"], cwd=ROOT,
            check=True, capture_output=True).stdout)
        cmd = [sys.executable, "-c", OLD_MAIN, str(path), uri, name]
    else:
        cmd = [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
               "--tracking-uri", uri, "--model-name", name, "--log-level", "warning",
               "--no-access-log", "--max-concurrency", str(limit)]
    with open(root / f"{kind}.log", "wb") as log:  # the child holds its own copy
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    url = proc.stdout.readline().strip().rsplit(" on ", 1)[-1]
    import urllib.request

    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            raise SystemExit(f"{kind} server never became ready\n"
                             f"{(root / f'{kind}.log').read_text()[-3000:]}")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", default="0,1000,2000", help="idle connections held (0,1000,2000)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each run (8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--servers", default="new", help="new, or old,new")
    ap.add_argument("--max-concurrency", type=int, default=1000, help="the server's (1000)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The server process inherits this: it must be able to accept the hog's connections.
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idles = [int(n) for n in args.idle.split(",")]
    report: dict = {}
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load average {_load_average()}; "
          f"--max-concurrency {args.max_concurrency}; descriptors {hard}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri, name = register_champion(root)
        for kind in args.servers.split(","):
            proc, url = start(kind, uri, name, root, args.max_concurrency)
            try:
                runs: dict[int, list[dict]] = {n: [] for n in idles}
                for i in range(args.repeats):
                    for n in idles:
                        r = run_once(url, n, args.seconds)
                        runs[n].append(r)
                        print(f"  {kind} run {i + 1}, {n:5d} idle: {r['requests']} requests, "
                              f"{r['failed']} failed {r['failures']}; act p50 "
                              f"{r['act (new connection) p50 ms']:.2f} ms (new connection), "
                              f"{r['act (kept alive) p50 ms']:.2f} ms (kept alive); healthz "
                              f"p50 {r['healthz p50 ms']:.2f} ms (load {_load_average()})",
                              flush=True)
            finally:
                _stop(proc)
            for n in idles:
                med = {k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]
                       if k != "failures"}
                med["failed"] = sum(r["failed"] for r in runs[n])
                report[f"{kind}, {n} idle"] = med
                print(f"{kind:>4}, {n:5d} idle connections (median of {args.repeats} x "
                      f"{args.seconds:g} s): " + ", ".join(
                          f"{k} {v:.2f}" for k, v in med.items()
                          if k.endswith(("p50 ms", "p99 ms"))) +
                      f"; {med['failed']} of {sum(r['requests'] for r in runs[n])} requests "
                      f"failed")
    print(f"load average at the end {_load_average()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    failed = sum(v["failed"] for k, v in report.items() if k.startswith("new"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
