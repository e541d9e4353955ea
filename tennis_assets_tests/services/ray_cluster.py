"""A real Ray cluster of several nodes on this machine: ``ray start --head`` and ``ray start
--address`` for each further node, as a user starts one across machines. Every port a node
opens is picked free (two engineers' clusters on one machine must not meet on Ray's default
ports), everything lives in a private temporary folder, token authentication uses a private
token (never ~/.ray/auth_token), and each node is stopped by its process id
(``processes.stop_session``: ``ray start --block`` stops its own processes on SIGTERM, and
whatever is left of its session is killed).

Ray advertises the machine's address, not 127.0.0.1 (``ray start`` maps a loopback
``--node-ip-address`` to it), so the nodes listen there: the private token is what keeps
others out."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .processes import free_port, session_members, stop_session

# Ports a node opens besides its worker ports (the head adds the GCS, client and dashboard).
NODE_PORTS = ("object-manager-port", "node-manager-port", "dashboard-agent-listen-port",
              "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")
HEAD_PORTS = ("port", "ray-client-server-port", "dashboard-port")
WORKER_PORTS = 12  # worker processes per node: a trial actor or two, plus Ray's own
STARTED = "Ray runtime started"


def _ray_binary() -> str:
    return str(Path(sys.executable).with_name("ray"))


class RayCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1,
                 object_store_bytes: int = 80 * 2**20) -> None:
        self.n_nodes, self.cpus, self.store = nodes, cpus_per_node, object_store_bytes
        # Short: Ray's Unix sockets live below it, and a socket path has at most 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="tray-", dir="/tmp"))
        self.token = self.root / "auth_token"
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        self.address = ""
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        """What a driver of this cluster needs in its environment (Ray's own variables)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token),
                "RAY_USAGE_STATS_ENABLED": "0"}

    def _start_node(self, index: int, head: bool) -> None:
        ports = {name: free_port() for name in NODE_PORTS + (HEAD_PORTS if head else ())}
        args = [_ray_binary(), "start", "--block", "--disable-usage-stats",
                f"--num-cpus={self.cpus}", f"--object-store-memory={self.store}",
                *(f"--{name}={port}" for name, port in ports.items()),
                "--worker-port-list=" + ",".join(str(free_port()) for _ in range(WORKER_PORTS))]
        if head:
            args += ["--head", "--include-dashboard=false", f"--temp-dir={self.root}"]
        else:
            args += [f"--address={self.address}"]
        log = self.root / f"node{index}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **self.env()}, start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + 180
        while STARTED not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {index} did not start (exit {proc.poll()}): "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        if head:
            self.address = _head_address(log)

    def start(self) -> RayCluster:
        try:
            for index in range(self.n_nodes):
                self._start_node(index, head=index == 0)
            self.nodes = self.alive_nodes(expect=self.n_nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def alive_nodes(self, expect: int, timeout: float = 60) -> list[dict]:
        """The cluster's alive nodes as Ray reports them (``ray.nodes()``, asked by a driver in
        a process of its own), once ``expect`` of them have registered with their CPUs."""
        script = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                  "print(json.dumps([{'id': n['NodeID'], 'cpus': n['Resources'].get('CPU', 0)}"
                  " for n in ray.nodes() if n['Alive']])); ray.shutdown()")
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                  text=True, env={**os.environ, **self.env()}, timeout=120,
                                  check=False)
            nodes = json.loads(done.stdout.strip().splitlines()[-1]) \
                if done.returncode == 0 and done.stdout.strip() else []
            if len(nodes) >= expect and all(n["cpus"] >= self.cpus for n in nodes):
                return nodes
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(nodes)} of {expect} Ray nodes alive: "
                                   f"{done.stderr[-2000:]}")
            time.sleep(1)

    def stop(self) -> set[int]:
        """Stop every node, the last one started first; the processes left (none if all went
        well). The folder goes too."""
        left: set[int] = set()
        for proc in reversed(self.procs):
            # `ray start --block` stops its node in order on SIGTERM (2-3 s here); a signal to
            # its whole group at once took 10 s a node. Whatever is left is killed by id.
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while session_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            left |= stop_session(proc, grace_s=5)
        shutil.rmtree(self.root, ignore_errors=True)
        return left

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)


def _head_address(head_log: Path) -> str:
    """The address other nodes join, from the line ``ray start --head`` prints for them
    (``ray start --address='IP:PORT'``)."""
    found = re.search(r"ray start --address='([^']+)'", head_log.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"the head printed no address to join: {head_log}")
    return found.group(1)
