"""Services the production stack runs on, started for real by the tests: PostgreSQL."""

from __future__ import annotations

import itertools

import pytest

from tennis_assets_tests.system_services import missing

from .postgres import PostgresServer, find_bindir

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
