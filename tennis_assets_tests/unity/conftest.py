"""Fixtures for the Unity adapter tests: free loopback ports, protocol peers (in a thread of
this process, or as a launched stand-in build), and the no-leftovers check every test makes."""

from __future__ import annotations

import socket
import time

import psutil
import pytest

from tennis_assets.unity.peer import start_in_thread, write_launcher


def free_port() -> int:
    # Ask the kernel for a port nobody holds; UnityEnvironment then binds it as its server.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on the port: a new trainer could bind it. Connections that were closed
    linger in TIME_WAIT for a minute; SO_REUSEADDR (as mlagents-envs' own check uses) looks
    past those, not past a listening socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("localhost", port))
            s.listen()
        except OSError:
            return False
    return not any(c.laddr.port == port and c.status == psutil.CONN_LISTEN
                   for c in psutil.Process().net_connections(kind="tcp"))


def live_children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture
def port():
    """A free port, and after the test: the port is free and no child process is left."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    p = free_port()
    yield p
    deadline = time.monotonic() + 5.0
    while not port_is_free(p) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_is_free(p), f"port {p} is still bound after the test"
    left = {c.pid: c for c in psutil.Process().children(recursive=True)}
    new = {pid: c for pid, c in left.items() if pid not in before}
    assert not new, f"processes left behind: {[(c.pid, c.status()) for c in new.values()]}"


@pytest.fixture
def peer_thread():
    """start(port, **options) -> (peer, thread); every peer is stopped and joined afterwards."""
    started = []

    def start(port: int, **options):
        options.setdefault("connect_timeout", 10.0)
        peer, thread = start_in_thread(port, **options)
        started.append((peer, thread))
        return peer, thread

    yield start
    for peer, thread in started:
        peer.stop()
        thread.join(10.0)
        assert not thread.is_alive(), "a peer thread did not end"


@pytest.fixture
def launcher(tmp_path):
    """make(**options) -> path of an executable stand-in build (the peer behind a script)."""

    def make(name: str = "Tennis.x86_64", **options):
        options.setdefault("connect_timeout", 10.0)
        return write_launcher(tmp_path / name, **options)

    return make
