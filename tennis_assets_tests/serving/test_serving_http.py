"""The policy server over real HTTP: actions match the learner's greedy policy, health and
readiness answer, and every kind of malformed request gets a 4xx with a JSON message while the
server keeps serving."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .support import Client

VALID = {"observations": np.full((2, 24), 0.1).tolist()}


def metric_value(server, name: str, **labels) -> float:
    """A sample's value from the server's own /metrics (0 when absent)."""
    c = Client(server.url)
    try:
        _, _, body = c.request("GET", "/metrics")
    finally:
        c.close()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_single_and_batched_actions_match_the_greedy_policy(client, champion):
    _, info, learner = champion
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((2, 24)).astype(np.float32)
    status, doc = client.json("POST", "/act", {"observations": obs.tolist()})
    assert status == 200 and doc["model_version"] == info.version
    np.testing.assert_allclose(doc["actions"], learner.act(obs[None])[0], atol=1e-6)

    batch = rng.standard_normal((5, 2, 24)).astype(np.float32)
    status, doc = client.json("POST", "/act", {"observations": batch.tolist()})
    assert status == 200 and np.asarray(doc["actions"]).shape == (5, 2, 2)
    np.testing.assert_allclose(doc["actions"], learner.act(batch), atol=1e-6)


JSON = {"Content-Type": "application/json"}


def test_invocations_answer_like_the_registered_pyfunc(client, registry, champion, tmp_path):
    """MLflow's scoring protocol, as `mlflow models serve` speaks it, with the pyfunc's numbers."""
    _, info, _ = champion
    pyfunc = registry.tracker.load_policy(info, tmp_path / "model")
    obs = np.random.default_rng(3).standard_normal((3, 2, 24)).astype(np.float32)
    for key in ("inputs", "instances"):
        status, doc = client.json("POST", "/invocations", {key: obs.tolist()}, headers=JSON)
        assert status == 200, doc
        np.testing.assert_allclose(doc["predictions"], pyfunc.predict(obs), atol=1e-6)
    assert client.request("GET", "/ping")[0] == 200
    # MLflow's other two GET endpoints, as `mlflow models serve` answers them.
    assert client.request("GET", "/health")[0] == 200
    import importlib.metadata

    status, _, body = client.request("GET", "/version")
    assert status == 200 and body.decode() == importlib.metadata.version("mlflow")
    nan = '{"inputs": [[[NaN' + ", 0.1" * 23 + "], [0.1" + ", 0.1" * 23 + "]]]}"
    status, _, data = client.request("POST", "/invocations", nan, JSON)
    assert status == 400 and json.loads(data)["error_code"] == "BAD_REQUEST"
    assert "NaN" in json.loads(data)["message"]
    status, doc = client.json("POST", "/invocations", {"inputs": obs[0].tolist()}, headers=JSON)
    assert status == 400 and "[N, 2, 24]" in doc["message"]
    status, doc = client.json("POST", "/invocations", {"inputs": obs.tolist()},
                              headers={"Content-Type": "text/csv"})
    assert status == 415 and "application/json" in doc["message"]
    assert client.json("POST", "/invocations", {"inputs": obs.tolist()}, headers=JSON)[0] == 200


def test_health_readiness_and_metrics_endpoints(client, champion):
    # The server runs in this process (a thread): the pid says which process answered.
    assert client.json("GET", "/healthz") == (200, {"status": "ok", "pid": os.getpid()})
    status, doc = client.json("GET", "/readyz")
    assert status == 200 and doc["version"] == champion[1].version and doc["alias"] == "champion"
    status, headers, body = client.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    for name in ("tennis_policy_inference_duration_seconds_bucket",
                 "tennis_policy_request_duration_seconds_bucket", "tennis_policy_requests_total",
                 "tennis_policy_action_value_bucket", "tennis_policy_action_saturated_total",
                 "tennis_policy_model_info", "tennis_policy_model_reloads_total",
                 "process_cpu_seconds_total", "process_resident_memory_bytes",
                 "tennis_host_memory_available_bytes"):
        assert name in text, name
    assert f'version="{champion[1].version}"' in text
    # CPU-only machine: GPU metrics are absent rather than zero or an error.
    import torch
    if not torch.cuda.is_available():
        assert "tennis_gpu_" not in text


def _obs(shape, value=0.1):
    return {"observations": np.full(shape, value).tolist()}


BAD_BODIES = {
    "not json": (b"this is not json", "not valid JSON"),
    "invalid utf-8": (b"\xff\xfe{", "not valid JSON"),
    "json array, not object": (b"[1, 2, 3]", "expected a JSON object"),
    "missing key": (json.dumps({"obs": VALID["observations"]}).encode(), "expected a JSON"),
    "one player": (json.dumps(_obs((1, 24))).encode(), "shape [1, 24]"),
    "short observation": (json.dumps(_obs((2, 23))).encode(), "shape [2, 23]"),
    "three players in a batch": (json.dumps(_obs((4, 3, 24))).encode(), "shape [4, 3, 24]"),
    "flattened": (json.dumps(_obs((48,))).encode(), "shape"),
    "empty batch": (b'{"observations": []}', "shape"),
    "ragged": (json.dumps({"observations": [[0.1] * 24, [0.1] * 23]}).encode(), "rectangular"),
    "strings": (json.dumps({"observations": [["0.1"] * 24] * 2}).encode(), "numbers"),
    "nulls": (json.dumps({"observations": [[None] * 24] * 2}).encode(), "numbers"),
    "NaN": (("{\"observations\": [[NaN" + ", 0.1" * 23 + "], [0.1" + ", 0.1" * 23 + "]]}"
             ).encode(), "NaN"),
    "Infinity": (json.dumps(_obs((2, 24), float("inf"))).encode(), "infinite"),
    "beyond float32": (json.dumps(_obs((2, 24), 1e39)).encode(), "float32"),
    "too deeply nested": (b"[" * 100_000, "JSON"),
    "batch over the limit": (json.dumps(_obs((1025, 2, 24), 0.0)).encode(), "allowed 1 to 1024"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_bodies_get_400_and_the_server_keeps_serving(server, case):
    body, message = BAD_BODIES[case]
    c = Client(server.url)
    try:
        status, headers, data = c.request("POST", "/act", body,
                                          {"Content-Type": "application/json"})
        assert status == 400, (case, data)
        assert headers["Content-Type"] == "application/json"
        assert message in json.loads(data)["error"], data
        # Same connection, next request: still answered.
        status, doc = c.json("POST", "/act", VALID)
        assert status == 200 and np.asarray(doc["actions"]).shape == (2, 2)
    finally:
        c.close()


def _raw(server, request: bytes) -> tuple[int, bytes]:
    """Send bytes http.client would refuse to send (no Content-Length, a lying one); these
    rejections close the connection, so the response is everything until EOF."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_protocol_errors_get_4xx(server, client):
    too_large = _raw(server, b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    assert too_large[0] == 413 and "limit" in json.loads(too_large[1])["error"]
    # A real client sending a body somewhat over the limit reads the 413 (the body is drained),
    # and its connection stays usable.
    sender = Client(server.url)
    try:
        status, headers, data = sender.request("POST", "/act", b" " * (3 << 20))
        assert status == 413 and "limit" in json.loads(data)["error"]
        assert sender.json("POST", "/act", VALID)[0] == 200
    finally:
        sender.close()
    # A chunked body is framed by its chunks (uvicorn's llhttp parser), read and judged.
    chunked = _raw(server, b"POST /act HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"Connection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert chunked[0] == 400 and "expected a JSON object" in json.loads(chunked[1])["error"]
    negative = _raw(server, b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert negative[0] == 400 and "Content-Length" in json.loads(negative[1])["error"]
    twice = _raw(server, b"POST /act HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40"
                         b"\r\n\r\n{}")
    assert twice[0] == 400 and "Duplicate Content-Length" in json.loads(twice[1])["error"]
    folded = _raw(server, b"POST /act HTTP/1.1\r\nContent-Length: 2\r\n X-Folded: y\r\n\r\n{}")
    assert folded[0] == 400 and "malformed HTTP request" in json.loads(folded[1])["error"]
    status, body = _raw(server, b"GARBAGE\r\n\r\n")
    assert status == 400 and "malformed HTTP request" in json.loads(body)["error"]
    status, body = _raw(server, b"GET /healthz HTTP/2.0\r\n\r\n")
    assert status == 400 and "HTTP/2.0 is not served" in json.loads(body)["error"]
    status, body = _raw(server, b"BREW /act HTTP/1.1\r\n\r\n")
    assert status == 400 and "Invalid method" in json.loads(body)["error"]

    assert client.json("GET", "/act")[0] == 405
    status, headers, _ = client.request("DELETE", "/healthz")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, doc = client.json("POST", "/nope", {"observations": []})
    assert status == 404 and "POST /act" in doc["error"]
    assert client.json("POST", "/act", VALID)[0] == 200


def test_outcomes_are_counted(server, client):
    before = {o: metric_value(server, "tennis_policy_requests_total", endpoint="act", outcome=o)
              for o in ("ok", "bad_request")}
    client.json("POST", "/act", VALID)
    client.request("POST", "/act", b"nope")
    client.request("POST", "/act", b"nope")
    assert metric_value(server, "tennis_policy_requests_total", endpoint="act",
                        outcome="ok") == before["ok"] + 1
    assert metric_value(server, "tennis_policy_requests_total", endpoint="act",
                        outcome="bad_request") == before["bad_request"] + 2
    # Four action values per observation, split over the two dimensions.
    assert metric_value(server, "tennis_policy_action_values_total", dimension="0") >= 2
    assert metric_value(server, "tennis_policy_inference_duration_seconds_count") >= 1
