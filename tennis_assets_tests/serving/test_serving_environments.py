"""The policy server takes its shapes from the model it serves, not from Tennis: a MADDPG team
for PettingZoo's MPE simple_spread (3 agents, 18 observations and 5 actions each) registered
as the champion is served by `tennis-assets serve` with the learner's greedy actions on /act
and /invocations, a Tennis-shaped request gets a 400 naming the shape expected, and a promotion
to a model of another environment changes the shape requests must have from the swap on."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tennis_assets.serving.model_source import load_version
from tennis_assets.training.export import export_actor_onnx

from .support import MPE, Client, start_server, stop_process, wait_until
from .test_serving_http import JSON, VALID, metric_value

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mpe_champion(registry):
    name = registry.new_name()
    info, learner = registry.register(name, seed=3, algorithm="maddpg", environment=MPE)
    # The sizes are the environment's own, read from a real simple_spread instance.
    cfg = learner.config
    assert (cfg.num_agents, cfg.obs_size, cfg.action_size) == (3, 18, 5)
    return name, info, learner


def _samples(text: str) -> list[tuple[str, dict, float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def _greedy(learner, obs: np.ndarray) -> np.ndarray:
    return learner.act(obs, explore=False)


def _act(client: Client, obs: np.ndarray) -> tuple[int, dict]:
    return client.json("POST", "/act", {"observations": obs.tolist()})


def _invoke(client: Client, obs: np.ndarray, key: str = "inputs") -> tuple[int, dict]:
    return client.json("POST", "/invocations", {key: obs.tolist()}, headers=JSON)


def _check_mpe_answers(client: Client, learner, version: str) -> int:
    """/act (one step and a batch) and /invocations answer the learner's greedy actions;
    returns the agent-observations answered (each counted once per action dimension)."""
    rng = np.random.default_rng(11)
    one = rng.standard_normal((3, 18)).astype(np.float32)
    status, doc = _act(client, one)
    assert status == 200 and doc["model_version"] == version, doc
    assert np.asarray(doc["actions"]).shape == (3, 5)
    np.testing.assert_allclose(doc["actions"], _greedy(learner, one[None])[0], atol=1e-5)

    batch = rng.standard_normal((6, 3, 18)).astype(np.float32)
    status, doc = _act(client, batch)
    assert status == 200 and np.asarray(doc["actions"]).shape == (6, 3, 5)
    np.testing.assert_allclose(doc["actions"], _greedy(learner, batch), atol=1e-5)

    inputs = rng.standard_normal((4, 3, 18)).astype(np.float32)
    for key in ("inputs", "instances"):
        status, doc = _invoke(client, inputs, key)
        assert status == 200 and np.asarray(doc["predictions"]).shape == (4, 3, 5), doc
        np.testing.assert_allclose(doc["predictions"], _greedy(learner, inputs), atol=1e-5)
    return 3 * (1 + 6 + 4 + 4)


def _check_tennis_shapes_refused(client: Client) -> None:
    tennis_one = np.full((2, 24), 0.1)
    status, doc = _act(client, tennis_one)
    assert status == 400 and "shape [2, 24]" in doc["error"], doc
    assert "[3, 18]" in doc["error"] and "[N, 3, 18]" in doc["error"]
    status, doc = _act(client, np.full((5, 2, 24), 0.1))
    assert status == 400 and "shape [5, 2, 24]" in doc["error"] and "[3, 18]" in doc["error"]
    status, doc = _invoke(client, np.full((5, 2, 24), 0.1))
    assert status == 400 and doc["error_code"] == "BAD_REQUEST"
    assert "[N, 3, 18]" in doc["message"], doc
    status, doc = _invoke(client, np.full((3, 18), 0.1))  # no batch dimension
    assert status == 400 and "takes a batch, shape [N, 3, 18]" in doc["message"], doc
    status, doc = client.json("POST", "/act", {"obs": []})
    assert status == 400 and "shape [3, 18]" in doc["error"], doc


def test_tennis_assets_serve_answers_an_mpe_champion(registry, mpe_champion, tmp_path):
    name, info, learner = mpe_champion
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tennis_assets.cli", "serve", "--port", "0",
             "--tracking-uri", registry.tracker.tracking_uri, "--model-name", name,
             "--poll-interval", "0.5", "--monitoring-file", str(tmp_path / "latest.json")],
            stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            match = re.search(r"on (http://127\.0\.0\.1:\d+)$", proc.stdout.readline().strip())
            assert match, log_path.read_text()
            _serve_and_check(Client(match.group(1)), info, learner)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            stop_process(proc)
    text = log_path.read_text()
    assert (f"serving {name} version {info.version} (alias champion, onnxruntime actor, "
            f"{MPE.env}: observations [3, 18] -> actions [3, 5])") in text


def _serve_and_check(client: Client, info, learner) -> None:
    try:
        wait_until(lambda: client.json("GET", "/readyz")[0] == 200, 60, "readiness")
        assert client.json("GET", "/readyz")[1]["version"] == info.version
        answered = _check_mpe_answers(client, learner, info.version)
        _check_tennis_shapes_refused(client)
        # Still serving after the refusals, on the same connection.
        assert _act(client, np.zeros((3, 18)))[0] == 200
        answered += 3
        _, _, body = client.request("GET", "/metrics")
        found = _samples(body.decode())
        # Every action dimension of the model, each value counted once.
        values = {labels["dimension"]: value for sample, labels, value in found
                  if sample == "tennis_policy_action_values_total"}
        assert values == {str(d): float(answered) for d in range(5)}, (values, answered)
        refused = {labels["endpoint"]: value for sample, labels, value in found
                   if sample == "tennis_policy_requests_total"
                   and labels["outcome"] == "bad_request"}
        assert refused == {"act": 3.0, "invocations": 2.0}, refused
    finally:
        client.close()


def test_a_promotion_to_another_environment_changes_the_shape_from_the_swap_on(
        registry, caplog):
    """Tennis v1 is the champion, then an MPE team v2 (the alias moves to another game), then a
    rollback to v1: each request is validated against, and answered by, the model served when
    it arrives; the swap is logged with both shapes."""
    name = registry.new_name()
    _, tennis = registry.register(name, seed=1)
    server = start_server(registry, name)
    client = Client(server.url)
    try:
        assert _act(client, np.asarray(VALID["observations"]))[0] == 200
        with caplog.at_level("WARNING", logger="tennis_assets.serving.model_source"):
            info, team = registry.register(name, seed=4, algorithm="maddpg", environment=MPE)
            wait_until(lambda: _act(client, np.zeros((3, 18)))[0] == 200, 20, "the MPE model")
        assert "takes another shape than version 1" in caplog.text
        assert "[3, 18]" in caplog.text and "tennis: observations [2, 24]" in caplog.text
        _check_mpe_answers(client, team, info.version)
        _check_tennis_shapes_refused(client)
        assert metric_value(server, "tennis_policy_model_version") == 2

        registry.tracker.rollback(name)  # back to Tennis: the old shape, the old answers
        wait_until(lambda: _act(client, np.zeros((2, 24)))[0] == 200, 20, "the Tennis model")
        status, doc = _act(client, np.zeros((3, 18)))
        assert status == 400 and "expects [2, 24]" in doc["error"], doc
        obs = np.random.default_rng(2).standard_normal((4, 2, 24)).astype(np.float32)
        status, doc = _act(client, obs)
        assert status == 200 and doc["model_version"] == "1"
        np.testing.assert_allclose(doc["actions"], _greedy(tennis, obs), atol=1e-5)
        # Dimensions never shrink: the MPE model's extra ones keep their counts.
        assert metric_value(server, "tennis_policy_action_values_total", dimension="4") > 0
    finally:
        client.close()
        server.stop()


def test_an_onnx_file_of_another_shape_than_its_checkpoint_is_refused(registry, mpe_champion):
    """A model version whose ONNX actor takes another shape than its checkpoint's learner (a
    file swapped in the artifact store) is never served: load_version names both shapes."""
    name = registry.new_name()
    info, _ = registry.register(name, seed=5, champion=False)  # Tennis
    onnx = Path(info.source.removeprefix("file://")) / "artifacts" / "policy.onnx"
    assert onnx.is_file()
    export_actor_onnx(mpe_champion[2], onnx)  # a valid ONNX actor, of the MPE team
    with pytest.raises(ValueError, match=r"takes observations \[3, 18\] per step, its "
                                         r"checkpoint's learner \[2, 24\]"):
        load_version(registry.tracker, info, "verify")
