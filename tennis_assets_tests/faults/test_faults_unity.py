"""A Unity build that cannot run gives an error naming the file and its problem, and leaves the
port free and no process behind, so a second try on the same port says the same thing instead
of "port in use". Each bad build is real: a file on disk that the kernel is asked to run."""

from __future__ import annotations

import random
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psutil
import pytest

from tennis_assets.unity import (
    UnityBuildError,
    UnityConnectionError,
    UnityTennis,
    UnityTimeoutError,
)

pytestmark = pytest.mark.filterwarnings("ignore:distutils Version classes:DeprecationWarning")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """A new server could bind the port right now, on every address gRPC's server uses ([::],
    dual-stack). No SO_REUSEADDR/SO_REUSEPORT here: a socket the server still holds, listening or
    only bound, makes the bind fail."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def children() -> set[int]:
    """Every child of this process, zombies included: an unreaped build is one too."""
    return {p.pid for p in psutil.Process().children(recursive=True)}


def write(path: Path, content: bytes, mode: int) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


# name -> (make the build in a folder, expected error, its message)
BAD_BUILDS = {
    "text without #!": (
        lambda d: write(d / "Tennis.x86_64", b"Tennis for Linux\n", 0o755),
        UnityBuildError, (r"Tennis\.x86_64' is not a program this machine can run \(Exec format "
                          r"error: neither a program nor a script starting with #!\): is it a "
                          r"Unity build for another OS\?")),
    "random bytes": (
        lambda d: write(d / "Tennis.x86_64", b"\0\1" + random.Random(14).randbytes(510), 0o755),
        UnityBuildError, (r"Tennis\.x86_64' is not a program this machine can run \(Exec format "
                          r"error")),
    "ELF of another machine": (
        # A 64-bit ELF header with e_machine 0xffff: valid magic, no loader for it.
        lambda d: write(d / "Tennis.x86_64",
                        b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xff\xff" + bytes(44), 0o755),
        UnityBuildError, (r"Tennis\.x86_64' is not a program this machine can run \(Exec format "
                          r"error: an ELF program for another CPU or OS\)")),
    "not executable": (
        lambda d: write(d / "Tennis.x86_64", b"#!/bin/sh\nexit 0\n", 0o644),
        UnityBuildError, r"Tennis\.x86_64' is not executable; run: chmod \+x .*Tennis\.x86_64$"),
    "a directory": (
        lambda d: (d / "Tennis.x86_64").mkdir() or d / "Tennis.x86_64",
        UnityBuildError, (r"Tennis\.x86_64' is a directory, not a program: pass the build's "
                          r"executable inside it")),
    "a Windows build": (
        lambda d: write(d / "Tennis.exe", b"MZ\x90\x00" + bytes(60), 0o755),
        UnityBuildError, (r"Tennis\.exe' exists but mlagents-envs cannot launch it: .*it looks "
                          r"like a Windows build")),
    "missing #! interpreter": (
        lambda d: write(d / "Tennis.x86_64", b"#!/no/such/interpreter\n", 0o755),
        UnityBuildError, (r"Tennis\.x86_64' could not be started: its #! line names "
                          r"'/no/such/interpreter', which does not exist")),
    "exits at once": (
        lambda d: write(d / "Tennis.x86_64", b"#!/bin/sh\nexit 1\n", 0o755),
        UnityConnectionError, (r"Tennis\.x86_64' on port \d+: the Unity process exited "
                               r"\(environment shut down with return code 1\)")),
    "never connects": (
        lambda d: write(d / "Tennis.x86_64", b"#!/bin/sh\nexec sleep 60\n", 0o755),
        UnityTimeoutError, r"Tennis\.x86_64' on port \d+: no answer within 1 s"),
}


@pytest.mark.parametrize("kind", list(BAD_BUILDS))
def test_bad_build_twice_on_one_port(tmp_path, kind):
    make, error, message = BAD_BUILDS[kind]
    build = make(tmp_path)
    port = free_port()
    before = children()
    for attempt in (1, 2):
        with pytest.raises(error, match=message) as info:
            UnityTennis(str(build), base_port=port, timeout_s=1.0)
        assert "already in use" not in str(info.value), f"attempt {attempt}"
        assert port_is_free(port), f"attempt {attempt}: port {port} is still bound"
        left = children() - before
        assert not left, f"attempt {attempt}: processes left behind: {sorted(left)}"
    assert build.exists()  # the checks only read the build


def test_editor_connection_with_a_worker_id_is_refused_before_binding():
    port = free_port()
    for _ in (1, 2):
        with pytest.raises(ValueError, match="worker_id=1: an Editor connection .* needs "
                                             "worker_id=0; choose its port with base_port"):
            UnityTennis(None, base_port=port - 1, worker_id=1, timeout_s=1.0)
        assert port_is_free(port)


def test_port_check_sees_a_running_grpc_server():
    # The check above must fail for what UnityEnvironment leaves on a leak: a gRPC server bound
    # to [::] with SO_REUSEPORT.
    port = free_port()
    server = grpc.server(ThreadPoolExecutor(max_workers=1), options=(("grpc.so_reuseport", 1),))
    server.add_insecure_port(f"[::]:{port}")
    server.start()
    try:
        assert not port_is_free(port)
    finally:
        server.stop(None).wait(5.0)
    assert port_is_free(port)
