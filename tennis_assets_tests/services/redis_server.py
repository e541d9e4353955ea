"""A real Redis server for tests: Debian's redis-server, no configuration file, its data in a
temporary folder, listening on 127.0.0.1 at a free port only (no unix socket, no persistence),
behind a password so that the tests see the credential masked wherever the URL is shown.
Stopped by its process id (``processes.stop_session``)."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import free_port, stop_session


def find_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None)


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="tennis-redis-"))
        self.password = secrets.token_hex(12)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self, attempts: int = 3) -> RedisServer:
        for _ in range(attempts):
            self.port = free_port()
            with open(self.root / "server.log", "ab") as log:  # the child holds its own copy
                # Options on the command line: no config file, nothing saved to disk, loopback only.
                self.proc = subprocess.Popen(
                    [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", str(self.root), "--save", "", "--appendonly", "no",
                     "--requirepass", self.password, "--daemonize", "no"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                except OSError:
                    time.sleep(0.05)
            # Another process may have taken the port between the probe and the bind.
            stop_session(self.proc)
        raise RuntimeError(f"redis-server did not start: "
                           f"{(self.root / 'server.log').read_text()[-2000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> set[int]:
        left = stop_session(self.proc) if self.proc is not None else set()
        shutil.rmtree(self.root, ignore_errors=True)
        return left
