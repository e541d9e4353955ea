"""`tennis-assets serve --workers 2`: two worker processes on one port under uvicorn's
supervisor, their metrics summed through any of them, a replaced worker's series dropped, and
the same SIGTERM drain as one process: every request received answered, then exit 0."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tennis_assets.cli import main

from .support import Client, sigterm_under_load, stop_process, wait_until
from .test_serving_http import VALID

pytestmark = pytest.mark.slow


class _Log:
    """The server's stderr through a pipe, as a container runtime or systemd reads it (two
    workers writing to one pipe can interleave writes larger than PIPE_BUF), copied to a file."""

    def __init__(self, proc: subprocess.Popen, path: Path) -> None:
        # Held open while the copying thread runs; close() closes it.
        self.path, self._file = path, open(path, "wb", buffering=0)  # noqa: SIM115
        self._thread = threading.Thread(target=self._copy, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _copy(self, pipe) -> None:
        while data := pipe.read1(65536):
            self._file.write(data)

    def close(self) -> None:
        self._thread.join(10)
        self._file.close()


def _start(registry, name: str, tmp_path: Path, *args: str):
    log_path = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0", "--workers", "2",
         "--tracking-uri", registry.tracker.tracking_uri, "--model-name", name,
         "--poll-interval", "0.5", "--monitoring-file", str(tmp_path / "latest.json"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = _Log(proc, log_path)
    line = proc.stdout.readline().decode()
    match = re.search(r"with 2 workers from .* on (http://127\.0\.0\.1:(\d+))$", line.strip())
    if not match:
        stop_process(proc)
        log.close()
        raise AssertionError((line, log_path.read_text()))
    return proc, log, log_path, match.group(1)


def _once(url: str, method: str, path: str, doc=None):
    """One request on a connection of its own: the kernel hands each new connection to
    whichever worker accepts first, so a keep-alive client would talk to one worker only."""
    client = Client(url)
    try:
        return client.json(method, path, doc)
    finally:
        client.close()


def _scrape(url: str, client: Client | None = None) -> dict:
    """/metrics through ``client``'s worker, else through any."""
    own = client is None
    client = client or Client(url)
    try:
        status, _, body = client.request("GET", "/metrics")
    finally:
        if own:
            client.close()
    assert status == 200
    families = list(text_string_to_metric_families(body.decode()))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "duplicate metric families"
    return {f.name: f for f in families}


def _value(families: dict, family: str, sample: str, default: float | None = None,
           **labels) -> float:
    found = [s.value for s in families[family].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    if not found and default is not None:
        return default  # a label set not counted yet
    assert len(found) == 1, (sample, labels, found)
    return found[0]


def _pids(families: dict, family: str) -> set[int]:
    return {int(s.labels["pid"]) for s in families[family].samples}


def _worker_pids(url: str) -> set[int]:
    """Both workers' pids, from /healthz on fresh connections, once both have a model."""
    seen: set[int] = set()

    def both() -> bool:
        try:
            _status, doc = _once(url, "GET", "/healthz")
        except TimeoutError:
            # Queued on the shared socket for a worker still starting (10 s and more on a
            # loaded machine): not an answer yet, ask again.
            return False
        seen.add(doc["pid"])
        return len(seen) == 2
    wait_until(both, 180, "both workers to answer", interval=0.01)
    wait_until(lambda: _value(_scrape(url), "tennis_policy_model_loaded",
                              "tennis_policy_model_loaded") == 1.0, 60, "both workers' model")
    return seen


@pytest.fixture(scope="module")
def workers(registry, champion, tmp_path_factory):
    proc, log, log_path, url = _start(registry, champion[0], tmp_path_factory.mktemp("workers"),
                                      "--request-timeout", "1", "--max-body-bytes", "4096")
    try:
        yield proc, log_path, url, _worker_pids(url)
    finally:
        stop_process(proc)
        log.close()


def _access(log_path: Path) -> list[dict]:
    """Every access line written so far (a line still being copied is left for later); each
    must be whole JSON, not two workers' writes interleaved."""
    text = log_path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()
            if line.startswith("{")]


def test_both_workers_answer_and_every_scrape_sums_them(workers, champion):
    _proc, log_path, url, pids = workers
    before = _scrape(url)
    ok = {"sample": "tennis_policy_requests_total", "endpoint": "act", "outcome": "ok",
          "code": "200"}
    acts0 = _value(before, "tennis_policy_requests", **ok)
    values0 = _value(before, "tennis_policy_action_values", "tennis_policy_action_values_total",
                     dimension="0")
    k = 40
    for _ in range(k):
        status, doc = _once(url, "POST", "/act", VALID)
        assert status == 200 and doc["model_version"] == champion[1].version
    # Access lines are written within 0.2 s; each names the worker that answered.
    wait_until(lambda: len([a for a in _access(log_path) if a["path"] == "/act"]) >= k, 10,
               "access lines")
    assert {a["pid"] for a in _access(log_path) if a["path"] == "/act"} == pids

    # Whichever worker answers the scrape, it counts both workers' requests: one keep-alive
    # connection to each worker (the pid in /healthz says which), a scrape through each.
    connections: dict[int, Client] = {}

    def one_per_worker() -> bool:
        client = Client(url)
        pid = client.json("GET", "/healthz")[1]["pid"]
        if pid in connections:
            client.close()
        else:
            connections[pid] = client
        return len(connections) == 2
    wait_until(one_per_worker, 30, "a connection to each worker", interval=0.01)
    for pid, client in connections.items():
        after = _scrape(url, client)
        assert client.json("GET", "/healthz")[1]["pid"] == pid
        client.close()
        assert _value(after, "tennis_policy_requests", **ok) == acts0 + k
        # Two players, one value per dimension each, per request (shared action statistics).
        assert _value(after, "tennis_policy_action_values", "tennis_policy_action_values_total",
                      dimension="0") == values0 + 2 * k
        assert _value(after, "tennis_policy_action_value", "tennis_policy_action_value_count",
                      dimension="0") == values0 + 2 * k
        # Per-process figures carry the worker's pid, every worker's in every scrape.
        for family in ("process_resident_memory_bytes", "tennis_policy_process_threads",
                       "tennis_policy_model_version", "tennis_policy_model_info"):
            assert _pids(after, family) == pids, family
    assert "tennis_policy_model_loaded" in after and "python_gc_collections" in after
    assert "Traceback" not in log_path.read_text()


def test_every_worker_keeps_the_limits(workers):
    """The deadline (the worker's protocol class, set up in each spawned worker) and the body
    limit hold in both workers, and their rejections are counted in the shared metrics."""
    _proc, log_path, url, pids = workers
    port = int(url.rsplit(":", 1)[1])
    timeout = {"sample": "tennis_policy_requests_total", "endpoint": "other", "outcome": "timeout",
               "code": "408"}
    large = {"sample": "tennis_policy_requests_total", "endpoint": "act", "outcome": "too_large",
             "code": "413"}
    before = _scrape(url)
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(6)]
    started = time.monotonic()
    for s in slow:
        s.sendall(b"POST /act HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    for s in slow:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        assert data.startswith(b"HTTP/1.1 408 "), data
    # --request-timeout 1, not the protocol class's default of 10 s, in whichever worker.
    assert time.monotonic() - started < 5
    too_large = {"observations": [[[0.1] * 24] * 2] * 40}  # over 4,096 bytes
    for _ in range(6):
        status, doc = _once(url, "POST", "/act", too_large)
        assert status == 413 and "4096" in doc["error"]
    after = _scrape(url)
    assert _value(after, "tennis_policy_requests", **timeout) == _value(
        before, "tennis_policy_requests", default=0.0, **timeout) + 6
    assert _value(after, "tennis_policy_requests", **large) == _value(
        before, "tennis_policy_requests", **large) + 6
    assert {a["pid"] for a in _access(log_path) if a["status"] == 413} <= pids


def test_a_worker_that_dies_is_replaced_and_its_series_dropped(workers):
    proc, _log_path, url, pids = workers
    ok = {"sample": "tennis_policy_requests_total", "endpoint": "act", "outcome": "ok",
          "code": "200"}
    acts = _value(_scrape(url), "tennis_policy_requests", **ok)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    survivor = (pids - {victim}).pop()

    def replaced():
        families = _scrape(url)
        live = _pids(families, "process_resident_memory_bytes")
        return victim not in live and len(live) == 2 and families
    families = wait_until(replaced, 60, "the supervisor to replace the killed worker")
    assert survivor in _pids(families, "tennis_policy_model_version")
    assert victim not in _pids(families, "tennis_policy_model_version")
    # Counters keep what the dead worker counted.
    assert _value(families, "tennis_policy_requests", **ok) >= acts
    assert proc.poll() is None


def test_every_worker_follows_the_alias(registry, tmp_path):
    """Each worker polls the registry and loads the new champion itself: soon every worker
    answers with it, and the per-worker version gauges show each one's move."""
    name = registry.new_name()
    registry.register(name, seed=3)
    proc, log, _log_path, url = _start(registry, name, tmp_path)
    try:
        pids = _worker_pids(url)
        second, _ = registry.register(name, seed=4)

        def moved() -> bool:
            versions = _scrape(url)["tennis_policy_model_version"].samples
            return ({int(s.labels["pid"]) for s in versions} == pids
                    and all(s.value == float(second.version) for s in versions))
        wait_until(moved, 30, "both workers to serve the new champion")
        for _ in range(20):
            status, doc = _once(url, "POST", "/act", VALID)
            assert status == 200 and doc["model_version"] == second.version
        families = _scrape(url)
        assert _value(families, "tennis_policy_model_reloads", "tennis_policy_model_reloads_total",
                      result="success") == 4  # two loads in each worker
        info = families["tennis_policy_model_info"].samples
        assert {(int(s.labels["pid"]), s.labels["version"]) for s in info if s.value == 1} == {
            (pid, second.version) for pid in pids}
    finally:
        stop_process(proc)
        log.close()


def test_sigterm_drains_every_worker_then_exits_0(registry, champion, tmp_path):
    name, info, _ = champion
    proc, log, log_path, url = _start(registry, name, tmp_path)
    try:
        pids = _worker_pids(url)
        metrics_dir = Path(re.search(r"metrics in (\S+)", log_path.read_text()).group(1))
        assert metrics_dir.is_dir() and (metrics_dir.stat().st_mode & 0o777) == 0o700

        # Requests in flight on several connections (so on both workers, most likely): headers
        # and half a body sent before SIGTERM, the rest after.
        run = sigterm_under_load(proc, url, VALID, in_flight=6)
        assert run.exit_code == 0
        answers = run.answers
        assert answers and all(status == 200 and doc["model_version"] == info.version
                               for status, doc in answers)
        assert len(run.failures) <= run.connections, run.failures
        assert not any(psutil.pid_exists(pid) for pid in pids)
        assert not metrics_dir.exists()
        text = log_path.read_text()
        assert "SIGTERM: draining: 2 workers" in text and "stopped: 2 workers drained" in text
        assert text.count("worker stopped: every request received was answered") == 2
        assert "Traceback" not in text
        acts = [a for a in _access(log_path) if a["path"] == "/act" and a["status"] == 200]
        assert len(acts) == len(answers) + run.in_flight
        assert {a["pid"] for a in acts} <= pids
    finally:
        stop_process(proc)
        log.close()


@pytest.mark.parametrize("value,why", [("0", "must be >= 1"), ("-2", "must be >= 1"),
                                       ("65", "at most 64"), ("two", "not a whole number"),
                                       ("1.5", "not a whole number")])
def test_bad_worker_counts_are_refused(value, why, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "0", "--workers", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "error: argument --workers" in err and why in err, err


SHARED_VS_SINGLE = """
import os, sys, tempfile
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tennis_assets.serving.metrics import ActionStats, ServingMetrics

single = ActionStats()
shared = ServingMetrics(multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"],
                        process_metrics=False)
rng = np.random.default_rng(0)
for k in range(200):  # single observations (the bisect path) and batches (numpy)
    x = np.clip(rng.normal(0, 0.7, (rng.integers(1, 40), 2, 2)), -1, 1).astype(np.float32)
    x[0, 0, 0] = 1.0  # saturated, and on the last bound
    single.observe(x[0] if k % 2 else x)
    shared.act_ok(1e-3, 1e-4, x[0] if k % 2 else x)
samples = lambda families: {(s.name, tuple(sorted(s.labels.items()))): s.value
                            for f in families for s in f.samples}
want = samples(single.collect())
got = samples(text_string_to_metric_families(generate_latest(shared.registry).decode()))
assert len(want) == 26 and all(abs(got[k] - v) < 1e-9 * max(1, abs(v))
                                for k, v in want.items()), (want, got)
print("same")
"""


def test_shared_action_statistics_equal_the_single_process_ones():
    """The workers' action statistics (shared files) export what one process's would; in a
    fresh interpreter, as the variable must be set before prometheus_client is imported."""
    out = subprocess.run([sys.executable, "-c", SHARED_VS_SINGLE], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "same", out.stderr


ACCESS_WRITER = """
import asyncio, sys
from tennis_assets.serving.access_log import AccessLog

async def main():
    log = AccessLog(shared=True)
    for i in range(20):
        for j in range(300):  # ~70 kB a flush, as at 1,500 requests/s
            log.write({"writer": sys.argv[1], "i": i, "j": j, "pad": "p" * 200})
        log.flush()
asyncio.run(main())
"""


def test_access_lines_of_two_workers_stay_whole_on_one_slow_pipe():
    """A pipe read slowly (a busy log collector) fills; a worker's write larger than PIPE_BUF
    is then split and the other worker's bytes land inside a line (99 of 12,000 lines broken
    here before the writes were cut at line ends)."""
    read, write = os.pipe()
    procs = [subprocess.Popen([sys.executable, "-c", ACCESS_WRITER, str(k)], stderr=write)
             for k in range(2)]
    os.close(write)
    data = b""
    try:
        while chunk := os.read(read, 4096):
            data += chunk
            time.sleep(0.0005)
    finally:
        os.close(read)
        for proc in procs:
            stop_process(proc)
    lines = [json.loads(line) for line in data.splitlines()]
    assert len(lines) == 2 * 20 * 300
    assert [(d["i"], d["j"]) for d in lines if d["writer"] == "1"] == [
        (i, j) for i in range(20) for j in range(300)]
