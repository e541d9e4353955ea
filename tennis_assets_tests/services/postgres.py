"""A real PostgreSQL server for tests: Debian's (or any) server binaries, a throwaway cluster in
a temporary folder, listening on 127.0.0.1 at a free port and on a unix socket in that folder.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system
user (``nobody`` when there is none); otherwise to the current user. The server is stopped by
its process id: ``pg_ctl stop -m fast``, then SIGKILL to the postmaster if it is still there.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "tennis"


def find_bindir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: newest /usr/lib/postgresql/<v>/bin, else
    PATH."""
    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists "
                       "to own the PostgreSQL cluster")


class PostgresServer:
    """One cluster. ``url(db)`` gives a SQLAlchemy URL (``driver`` e.g. ``psycopg2``)."""

    def __init__(self, bindir: Path, root: Path | None = None) -> None:
        self.bindir = bindir
        self.user = _run_as()
        # Not under pytest's basetemp: as root that is mode 0700, closed to the postgres user.
        self.root = Path(root or tempfile.mkdtemp(prefix="tennis-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.host = "127.0.0.1"
        self.port = 0
        self.pid: int | None = None
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            env["HOME"] = str(self.root)
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              **kwargs)

    def start(self, attempts: int = 3) -> PostgresServer:
        out = self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                        "-E", "UTF8", "--no-locale", "--no-sync")
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stdout}\n{out.stderr}")
        for attempt in range(attempts):
            self.port = _free_port()
            # Durability settings off: a test cluster is thrown away, and fsync costs seconds.
            options = (f"-h {self.host} -p {self.port} -k {self.root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            out = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                            "-w", "-t", "60", "start", timeout=90)
            if out.returncode == 0:
                self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
                return self
            # Another process may have taken the port between the probe and the bind.
            if attempt == attempts - 1:
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"pg_ctl start failed: {out.stdout}\n{out.stderr}\n{log}")
        return self

    def url(self, database: str = "postgres", driver: str | None = None) -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname=database)

    def create_database(self, name: str) -> str:
        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is gone for our purposes (pg_ctl's child is reaped by init, not by us).
        try:
            return Path(f"/proc/{self.pid}/stat").read_text().split(") ")[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop",
                      timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive():
            # The postmaster's children exit when it dies; SIGKILL only the one we started.
            os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        stopped = not self.alive()
        self.pid = None
        if stopped:
            shutil.rmtree(self.root, ignore_errors=True)
