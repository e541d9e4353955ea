"""A real MLflow registry on SQLite with a registered champion, and a policy server on a free
loopback port answering for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import Client, Registry, empty_mlflow_db, start_server


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    # getbasetemp().parent is shared by pytest-xdist workers (and by later runs).
    template = empty_mlflow_db(tmp_path_factory.getbasetemp().parent)
    return Registry(tmp_path_factory.mktemp("serving-mlflow"), template)


@pytest.fixture(scope="session")
def champion(registry):
    name = registry.new_name()
    info, learner = registry.register(name, seed=1)
    return name, info, learner


@pytest.fixture(scope="session")
def monitoring_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("monitoring") / "latest.json"


@pytest.fixture(scope="session")
def server(registry, champion, monitoring_file):
    srv = start_server(registry, champion[0], monitoring_file=monitoring_file)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server):
    c = Client(server.url)
    yield c
    c.close()
