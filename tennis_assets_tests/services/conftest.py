"""Services the production stack runs on, started for real by the tests: PostgreSQL, Redis."""

from __future__ import annotations

import itertools

import pytest

from tennis_assets_tests.system_services import missing

from .postgres import PostgresServer, find_bindir
from .redis_server import RedisServer, find_server

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session. Skips only when the server binaries are missing
    (CI installs Debian's postgresql package, so there it runs)."""
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl, postgres) in "
                "/usr/lib/postgresql/*/bin or on PATH", "postgresql")
    server = PostgresServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.alive(), f"PostgreSQL (pid {server.pid}) is still running"


@pytest.fixture
def pg_database(postgres):
    """A fresh, empty database on the session's server: call it with a name prefix."""
    def create(prefix: str) -> str:
        return postgres.create_database(f"{prefix}_{next(_names)}")

    return create


@pytest.fixture(scope="session")
def redis_server():
    """One Redis server for the session (CI installs Debian's redis-server package)."""
    binary = find_server()
    if binary is None:
        missing("redis-server", "redis-server")
    server = RedisServer(binary).start()
    try:
        yield server
    finally:
        left = server.stop()
        assert not left and not server.alive(), f"redis-server processes left: {left}"
