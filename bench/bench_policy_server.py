"""Latency and throughput of the policy server (`tennis-assets serve`) under concurrent clients,
the current server and the one it replaced side by side in one run.

    python bench/bench_policy_server.py [--rate 500] [--seconds 10] [--repeats 3]
    python bench/bench_policy_server.py --workers 1,2    # one worker process against two

The server runs as its own process, exactly as `tennis-assets serve` starts it, answering for a
champion registered in a temporary MLflow SQLite registry (an untrained learner with the
default network sizes: serving cost does not depend on how well it plays), or for an existing
registry with --tracking-uri/--model-name. Clients are separate processes (so their Python does
not compete with the server's for one GIL), each holding keep-alive connections:

- open loop: requests at a fixed total rate (--rate, default 200/s) spread evenly over the
  connections, each sent at its scheduled time whatever happened before. Latency is measured
  from the send, and also from the scheduled time: if the server falls behind, the second figure
  grows (no coordinated omission hiding a stall).
- closed loop: every connection sends its next request as soon as the previous one is answered;
  the maximum throughput this machine gives.

The replaced server (stdlib ``http.server`` with a hand-written header parser) is read from git
history at LEGACY_COMMIT rather than kept in the package: the package carries one server, and the
comparison stays reproducible as long as the repository's history does. Runs alternate between
the servers (old, new, old, new...) so a change in the machine's load hits both alike.

Servers ``new-wN`` (or ``--workers 1,N``) run `tennis-assets serve --workers N`; their figures
are printed as ratios to ``new`` (one process), and the CPU per request is that of all workers.

Each figure is the median over --repeats runs; errors (non-200 or failed connections) must be 0.
--baseline also runs the open-loop load against a stdlib HTTP server that answers a constant:
the floor the machine gives at that moment (on a shared machine, most of the p99 is waiting for
a core, not the policy server's own work).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The last commit with the stdlib server (tennis_assets/serving/server.py).
LEGACY_COMMIT = "fef5967"


# ---- clients (run in child processes; only the standard library) ------------------------------
def _client(url: str, connections: int, rate_per_conn: float | None, start: float,
            seconds: float, seed: int, out) -> None:
    import http.client
    import random
    import threading

    host, port = url.removeprefix("http://").rsplit(":", 1)
    rng = random.Random(seed)
    body = json.dumps({"observations": [[rng.gauss(0, 1) for _ in range(24)]
                                        for _ in range(2)]}).encode()
    headers = {"Content-Type": "application/json"}
    results = []  # per connection: (latencies from send, latencies from schedule, errors)

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        sent, scheduled_lat, errors = [], [], 0
        period = 1.0 / rate_per_conn if rate_per_conn else 0.0
        # Connections of one process are staggered so their sends do not coincide.
        offset = period * index / connections if period else 0.0
        k = 0
        end = start + seconds
        while True:
            due = start + offset + k * period if period else time.monotonic()
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.monotonic()
            try:
                conn.request("POST", "/act", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            t1 = time.monotonic()
            if ok:
                sent.append(t1 - t0)
                scheduled_lat.append(t1 - due)
            else:
                errors += 1
            k += 1
        conn.close()
        results.append((sent, scheduled_lat, errors))

    while time.monotonic() < start - 0.05:
        time.sleep(0.01)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put([[lat for r in results for lat in r[0]], [lat for r in results for lat in r[1]],
             sum(r[2] for r in results)])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def load(url: str, processes: int, connections: int, rate: float | None,
         seconds: float) -> dict:
    """One run: ``processes`` x ``connections`` clients; rate None = closed loop."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    total = processes * connections
    start = time.monotonic() + 1.5  # time for the children to start
    procs = [ctx.Process(target=_client, args=(url, connections,
                                               rate / total if rate else None, start, seconds,
                                               i, out)) for i in range(processes)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(10)
    sent = [lat for p in parts for lat in p[0]]
    scheduled = [lat for p in parts for lat in p[1]]
    errors = sum(p[2] for p in parts)
    return {"requests": len(sent) + errors, "errors": errors, "rps": len(sent) / seconds,
            "p50_ms": _percentile(sent, 50) * 1e3, "p99_ms": _percentile(sent, 99) * 1e3,
            "max_ms": max(sent) * 1e3 if sent else float("nan"),
            "p99_from_schedule_ms": _percentile(scheduled, 99) * 1e3}


# ---- the server under test --------------------------------------------------------------------
def register_champion(root: Path) -> tuple[str, str]:
    from tennis_assets.agents import AgentConfig, make_learner
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker
    from tennis_assets.training import save_checkpoint

    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MlflowTracker(uri, experiment="bench", artifact_root=(root / "art").as_uri())
    learner = make_learner(AgentConfig(device="cpu", buffer_size=1_000))
    path = save_checkpoint(root / "policy.safetensors", learner, include_buffer=False)
    with tracker.start_run("bench") as run:
        source = run.log_policy_model(path)
    tracker.register_champion("bench-policy", source, run.run_id)
    return uri, "bench-policy"


LEGACY_MAIN = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("tennis_assets.serving.legacy_server", sys.argv[1])
legacy = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = legacy
spec.loader.exec_module(legacy)
from tennis_assets.serving import ChampionSource
from tennis_assets.tracking.mlflow_tracking import MlflowTracker
source = ChampionSource(MlflowTracker(sys.argv[2]), sys.argv[3])
server = legacy.PolicyServer(source, legacy.ServerConfig(port=0))
print(f"legacy server on {server.url}", flush=True)
server.serve_forever()
"""


def legacy_server_file(root: Path) -> Path:
    path = root / "legacy_server.py"
    path.write_bytes(subprocess.run(
        ["git", "show", f"{LEGACY_COMMIT}:tennis_assets/serving/server.py"], cwd=ROOT,
        check=True, capture_output=True).stdout)
    return path


def start_server(uri: str, name: str, log_path: Path, legacy: Path | None = None,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    with open(log_path, "wb") as log:  # the child holds its own copy
        if legacy is not None:
            cmd = [sys.executable, "-c", LEGACY_MAIN, str(legacy), uri, name]
        else:
            cmd = [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
                   "--tracking-uri", uri, "--model-name", name, "--log-level", "warning",
                   "--monitoring-file", str(log_path.with_name("latest.json")), *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    match = re.search(r"on (http://\S+)$", line.strip())
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}\n{log_path.read_text()}")
    url = match.group(1)
    import urllib.request

    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200 and _all_workers_ready(url, extra):
                    return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"server never became ready\n{log_path.read_text()}")
        time.sleep(0.2)


def _all_workers_ready(url: str, extra: tuple[str, ...]) -> bool:
    """/readyz answered for one worker; with --workers N, all N have a model (the smallest
    model_loaded over live workers is 1) and report their process figures."""
    if "--workers" not in extra:
        return True
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    workers = int(extra[extra.index("--workers") + 1])
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    loaded = families["tennis_policy_model_loaded"].samples[0].value == 1.0
    pids = {s.labels["pid"] for s in families["process_resident_memory_bytes"].samples}
    return loaded and len(pids) == workers


NULL_SERVER = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"actions": [[0.1, 0.2], [0.3, 0.4]], "model_version": "0"}'
        self.wfile.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                         b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
server = Server(("127.0.0.1", 0), Handler)
print(f"null server on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
"""


def start_null_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", NULL_SERVER], stdout=subprocess.PIPE,
                            text=True)
    return proc, re.search(r"on (http://\S+)$", proc.stdout.readline().strip()).group(1)


def server_metrics(url: str) -> dict:
    """The server's own /metrics (samples of the /act endpoint and the process)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values: dict = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("endpoint", "act") == "act":
                # Summed: with several workers the process figures come once per worker (pid).
                values[s.name] = values.get(s.name, 0.0) + s.value
    return values


def server_side(before: dict, after: dict) -> dict:
    """Per request inside the server between two /metrics readings: mean handling time,
    inference time and CPU time of the whole server process."""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    count = delta("tennis_policy_request_duration_seconds_count") or float("nan")
    return {"server_request_mean_us": delta("tennis_policy_request_duration_seconds_sum")
            / count * 1e6,
            "server_inference_mean_us": delta("tennis_policy_inference_duration_seconds_sum")
            / count * 1e6,
            "server_cpu_per_request_us": delta("process_cpu_seconds_total") / count * 1e6}


def inference_times(root: Path, calls: int = 3000, rounds: int = 3) -> dict:
    """Median seconds of one observation through each forward pass of the default network:
    ONNX Runtime on the exported file (what the server runs), the same three layers in numpy
    (the replaced server's path), and Learner.act (torch)."""
    import numpy as np

    from tennis_assets.agents import AgentConfig, make_learner
    from tennis_assets.agents.actor_module import ActorModule
    from tennis_assets.training.export import INPUT, export_actor_onnx, onnx_session

    learner = make_learner(AgentConfig(device="cpu", buffer_size=1_000))
    session = onnx_session(export_actor_onnx(learner, root / "actor.onnx"))
    w1, b1, w2, b2, w3, b3 = (b.numpy() for b in ActorModule.from_learner(learner).buffers())

    def numpy_act(obs):
        h = np.maximum(obs.reshape(-1, 24) @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return np.tanh(h @ w3 + b3).reshape(-1, 2, 2)

    obs = np.random.default_rng(0).standard_normal((1, 2, 24)).astype(np.float32)
    paths = {"onnxruntime": lambda: session.run(None, {INPUT: obs}),
             "numpy": lambda: numpy_act(obs), "torch (Learner.act)": lambda: learner.act(obs)}
    assert np.allclose(paths["onnxruntime"]()[0], numpy_act(obs), atol=1e-5)
    out: dict = {name: [] for name in paths}
    for _ in range(rounds):
        for name, call in paths.items():
            for _ in range(300):
                call()
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            out[name].append(statistics.median(times))
    return {name: statistics.median(values) for name, values in out.items()}


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s (500)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each run (10)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2, help="client processes (2)")
    ap.add_argument("--connections", type=int, default=4,
                    help="keep-alive connections per client process (4)")
    ap.add_argument("--servers", default="old,new",
                    help="which servers, in order: old (git history), new, new-quiet (without "
                         "access lines), new-wN (--workers N) (default old,new)")
    ap.add_argument("--workers", default=None, metavar="N,M",
                    help="instead of --servers: the new server with each of these worker counts, "
                         "e.g. 1,2 (the same as --servers new,new-w2)")
    ap.add_argument("--tracking-uri", default=None, help="serve this registry's model instead")
    ap.add_argument("--model-name", default=None)
    ap.add_argument("--baseline", action="store_true",
                    help="also load a stdlib server that answers a constant (the machine's floor)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return ap.parse_args()


def _measure_servers(args: argparse.Namespace, servers: list[str], uri: str, name: str,
                     root: Path, report: dict) -> None:
    """Starts each server, loads it open- and closed-loop, and stops it."""
    legacy = legacy_server_file(root) if "old" in servers else None
    procs = {}
    try:
        for server in servers:
            workers = re.fullmatch(r"new-w(\d+)", server)
            procs[server] = start_server(
                uri, name, root / f"{server}.log", legacy if server == "old" else None,
                ("--no-access-log",) if server == "new-quiet" else
                ("--workers", workers.group(1)) if workers else ())
        print(f"{os.cpu_count()} CPUs, load average {_load_average()}; clients: "
              f"{args.processes} processes x {args.connections} keep-alive connections")
        for server, (proc, url) in procs.items():
            print(f"  {server}: {url} (pid {proc.pid})")
            load(url, args.processes, args.connections, None, 2.0)  # warm-up
        for mode, rate in (("open loop", args.rate), ("closed loop", None)):
            _measure_mode(args, procs, mode, rate, report)
    finally:
        for proc, _ in procs.values():
            _stop(proc)


def _measure_mode(args: argparse.Namespace, procs: dict, mode: str, rate: float | None,
                  report: dict) -> None:
    """``args.repeats`` runs of every server in one mode, their medians into ``report``."""
    runs: dict = {server: [] for server in procs}
    before = {server: server_metrics(url) for server, (_, url) in procs.items()}
    for i in range(args.repeats):
        for server, (_, url) in procs.items():
            r = load(url, args.processes, args.connections, rate, args.seconds)
            runs[server].append(r)
            print(f"  {mode} run {i + 1} {server:>9}: {r['rps']:7.1f} req/s  p50 "
                  f"{r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  max "
                  f"{r['max_ms']:.1f} ms  p99 from schedule "
                  f"{r['p99_from_schedule_ms']:.2f} ms  errors {r['errors']}  "
                  f"(load {_load_average()})")
    for server, (_, url) in procs.items():
        med = {k: statistics.median(r[k] for r in runs[server])
               for k in runs[server][0]}
        med["errors"] = sum(r["errors"] for r in runs[server])
        med.update(server_side(before[server], server_metrics(url)))
        report[f"{server}, {mode}"] = med
        print(f"{server:>9} {mode} (median of {args.repeats} x {args.seconds:g} s): "
              f"{med['rps']:.1f} req/s, p50 {med['p50_ms']:.2f} ms, p99 "
              f"{med['p99_ms']:.2f} ms, errors {med['errors']}; inside the server "
              f"per request: {med['server_request_mean_us']:.0f} us handling, "
              f"{med['server_inference_mean_us']:.0f} us inference, "
              f"{med['server_cpu_per_request_us']:.0f} us CPU")


def _measure_baseline(args: argparse.Namespace, report: dict) -> None:
    """A stdlib server that answers a constant: the machine's floor."""
    null, null_url = start_null_server()
    try:
        runs = [load(null_url, args.processes, args.connections, args.rate,
                     args.seconds) for _ in range(args.repeats)]
    finally:
        null.terminate()
        null.wait(10)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    report["null server, open loop"] = med
    per_run = ", ".join(f"{r['p99_ms']:.2f}" for r in runs)
    print(f"null server, open loop (median of {args.repeats}): {med['rps']:.1f} req/s, "
          f"p50 {med['p50_ms']:.2f} ms, p99 {med['p99_ms']:.2f} ms (p99 per run: "
          f"{per_run} ms)")


def _print_ratios(args: argparse.Namespace, servers: list[str], report: dict) -> None:
    if "old" in servers:
        for server in servers:
            if server != "old":
                o, n = report["old, open loop"], report[f"{server}, open loop"]
                oc, nc = report["old, closed loop"], report[f"{server}, closed loop"]
                print(f"{server} / old: open-loop p99 x{n['p99_ms'] / o['p99_ms']:.2f}, "
                      f"p50 x{n['p50_ms'] / o['p50_ms']:.2f}; closed-loop throughput "
                      f"x{nc['rps'] / oc['rps']:.2f}, CPU per request "
                      f"x{nc['server_cpu_per_request_us'] / oc['server_cpu_per_request_us']:.2f}")
    if "new" in servers:
        for server in servers:
            if server.startswith("new-w"):
                o, n = report["new, open loop"], report[f"{server}, open loop"]
                oc, nc = report["new, closed loop"], report[f"{server}, closed loop"]
                cpu = nc["server_cpu_per_request_us"] / oc["server_cpu_per_request_us"]
                print(f"{server} / new (1 worker): closed-loop throughput "
                      f"x{nc['rps'] / oc['rps']:.2f} ({nc['rps']:.0f} / {oc['rps']:.0f} req/s); "
                      f"open-loop p99 x{n['p99_ms'] / o['p99_ms']:.2f} ({n['p99_ms']:.2f} / "
                      f"{o['p99_ms']:.2f} ms), p50 x{n['p50_ms'] / o['p50_ms']:.2f}; CPU per "
                      f"request x{cpu:.2f} (load average now {_load_average()})")


def main() -> int:
    args = _arguments()
    servers = args.servers.split(",")
    if args.workers:
        servers = ["new" if n.strip() == "1" else f"new-w{int(n)}"
                   for n in args.workers.split(",")]

    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.tracking_uri:
            uri, name = args.tracking_uri, args.model_name or "tennis-policy"
        else:
            uri, name = register_champion(root)
        times = inference_times(root)
        report["single observation inference, median seconds"] = times
        print("one observation through the network (median of 3 x 3000 calls): " + ", ".join(
            f"{name} {seconds * 1e6:.1f} us" for name, seconds in times.items()))
        _measure_servers(args, servers, uri, name, root, report)
        if args.baseline:
            _measure_baseline(args, report)
    errors = 0
    for server in servers:
        opened, closed = report[f"{server}, open loop"], report[f"{server}, closed loop"]
        errors += opened["errors"] + closed["errors"]
        print(f"{server:>9}: p99 {opened['p99_ms']:.2f} ms at {args.rate:g} req/s "
              f"({'met' if opened['p99_ms'] <= 5.0 else 'MISSED'} p99 <= 5 ms); closed loop "
              f"{closed['rps']:.0f} req/s ({'met' if closed['rps'] >= 2000 else 'MISSED'} "
              f">= 2,000); errors {opened['errors'] + closed['errors']}")
    _print_ratios(args, servers, report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
