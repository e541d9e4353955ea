"""The server follows the registry: not ready until a champion exists, picks up a moved alias
within seconds, and keeps serving the old model when a new one fails to load."""

from __future__ import annotations

import threading
import time

import numpy as np

from .support import Client, start_server, wait_until
from .test_serving_http import VALID, metric_value


def _version(client: Client) -> str | None:
    status, doc = client.json("POST", "/act", VALID)
    return doc["model_version"] if status == 200 else None


def test_not_ready_until_a_champion_exists_then_follows_the_alias(registry):
    name = registry.new_name()
    from tennis_assets.serving import ChampionSource, PolicyServer, ServerConfig

    source = ChampionSource(registry.tracker, name, poll_interval_s=0.2)
    server = PolicyServer(source, ServerConfig(port=0, access_log=False)).start()
    client = Client(server.url)
    try:
        assert client.json("GET", "/healthz")[0] == 200  # alive, though nothing to serve
        status, doc = client.json("GET", "/readyz")
        assert status == 503 and "no model" in doc["error"]
        assert client.json("POST", "/act", VALID)[0] == 503
        assert metric_value(server, "tennis_policy_model_loaded") == 0
        # No model under that name is not a registry failure.
        assert metric_value(server, "tennis_policy_registry_poll_failures_total") == 0

        registry.register(name, seed=1)
        wait_until(lambda: client.json("GET", "/readyz")[0] == 200, 10, "readiness")
        assert _version(client) == "1"

        # Requests keep flowing on other connections while the alias moves: every one is
        # answered, by version 1 until the swap and by version 2 after it.
        seen: list[list[tuple[int, str | None]]] = [[], []]
        stop = threading.Event()

        def hammer(out: list) -> None:
            c = Client(server.url)
            try:
                while not stop.is_set():
                    status, doc = c.json("POST", "/act", VALID)
                    out.append((status, doc.get("model_version")))
            finally:
                c.close()
        threads = [threading.Thread(target=hammer, args=(out,)) for out in seen]
        for t in threads:
            t.start()
        try:
            _, learner2 = registry.register(name, seed=2)  # moves the champion alias to v2
            wait_until(lambda: _version(client) == "2", 10, "version 2 to be served")
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        for answers in seen:
            assert answers and all(status == 200 for status, _ in answers)
            versions = [v for _, v in answers]
            assert versions == sorted(versions) and versions[-1] == "2"  # 1...1 2...2
        status, doc = client.json("POST", "/act", VALID)
        np.testing.assert_allclose(doc["actions"],
                                   learner2.act(np.asarray([VALID["observations"]]))[0],
                                   atol=1e-6)
        assert metric_value(server, "tennis_policy_model_version") == 2
        assert metric_value(server, "tennis_policy_model_reloads_total", result="success") == 2

        registry.tracker.rollback(name)  # champion back to v1
        wait_until(lambda: _version(client) == "1", 10, "rollback to version 1")
    finally:
        client.close()
        server.stop()


def test_a_failed_reload_keeps_the_old_model_and_is_counted(registry):
    name = registry.new_name()
    registry.register(name, seed=1)
    server = start_server(registry, name)
    client = Client(server.url)
    try:
        assert _version(client) == "1"
        # Version 2's checkpoint is corrupted in the artifact store after registration and
        # before it becomes the champion: the server must never see it intact (it polls every
        # 0.2 s, faster than a busy machine corrupts a file).
        info, _ = registry.register(name, seed=2, champion=False)
        artifacts = info.source.removeprefix("file://")
        from pathlib import Path

        corrupted = [p for p in Path(artifacts).rglob("*") if p.suffix in (".safetensors",
                                                                            ".onnx")]
        assert len(corrupted) == 2, f"no checkpoint and ONNX file under {artifacts}"
        for path in corrupted:
            path.write_bytes(b"not a model file")
        registry.tracker.promote_challenger(name, info.version)
        wait_until(lambda: metric_value(server, "tennis_policy_model_reloads_total",
                                        result="failure") >= 1, 10, "a counted load failure")
        assert _version(client) == "1"  # still the old model
        assert client.json("GET", "/readyz")[1]["version"] == "1"
        assert metric_value(server, "tennis_policy_model_version") == 1
    finally:
        client.close()
        server.stop()


def test_a_broken_registry_is_counted_and_the_model_keeps_serving(tmp_path, tmp_path_factory):
    from .support import Registry, empty_mlflow_db

    # A registry of its own: this test breaks the database.
    own = Registry(tmp_path, empty_mlflow_db(tmp_path_factory.getbasetemp().parent))
    name = own.new_name()
    own.register(name, seed=1)
    server = start_server(own, name)
    client = Client(server.url)
    try:
        (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
        wait_until(lambda: metric_value(server, "tennis_policy_registry_poll_failures_total")
                   >= 1, 10, "a counted registry failure")
        assert _version(client) == "1"
        assert metric_value(server, "tennis_policy_model_loaded") == 1
    finally:
        client.close()
        server.stop()
