"""A real Prometheus (Debian's package, on loopback) scrapes the policy server with the
project's alert rules loaded; promtool checks the exposition and the rules, and runs the rules'
unit tests; every dashboard query is valid PromQL."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tennis_assets_tests.system_services import missing

from .support import Client, stop_process, wait_for_http, wait_until
from .test_serving_http import VALID

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "docker" / "prometheus" / "rules" / "tennis.rules.yml"
RULE_TESTS = REPO / "docker" / "prometheus" / "tests" / "tennis.rules.test.yml"
SCRAPE_CONFIG = REPO / "docker" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "tennis-policy.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

DRIFT = {"time": "2026-11-27T06:00:00+00:00", "model_version": "1", "court": {"gravity": -19.62},
         "episodes": 100, "mean": 0.41, "baseline_mean": 1.2, "statistic": 812.5,
         "p_value": 0.0003, "test": "mann-whitney-u", "drifted": True, "severity": "critical"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def prometheus(server, monitoring_file, tmp_path_factory):
    """Prometheus scraping ``server`` every second with the project's rules; stopped by PID."""
    if not Path(PROMETHEUS).exists():
        missing(f"{PROMETHEUS} (Prometheus server)", "prometheus")
    monitoring_file.write_text(json.dumps(DRIFT))
    root = tmp_path_factory.mktemp("prometheus")
    target = server.url.removeprefix("http://")
    config = root / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        f"  - job_name: policy-server\n    static_configs: [{{targets: [{json.dumps(target)}]}}]\n")
    port = _free_port()
    with open(root / "prometheus.log", "wb") as log:  # the child holds its own copy
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{base}/-/ready", 30, "prometheus", root / "prometheus.log")
        yield base
    finally:
        stop_process(proc)


def query(base: str, expr: str) -> list:
    doc = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_prometheus_scrapes_the_server_and_serves_the_metrics_back(prometheus, server, champion):
    client = Client(server.url)
    try:
        for _ in range(5):
            assert client.json("POST", "/act", VALID)[0] == 200
    finally:
        client.close()
    # The counter read back through Prometheus, once a scrape after the requests has landed.
    found = wait_until(lambda: query(prometheus, 'tennis_policy_requests_total'
                                     '{job="policy-server", endpoint="act", outcome="ok"} >= 5'),
                       20, "a scrape with the requests")
    assert found[0]["metric"]["code"] == "200"
    assert query(prometheus, 'up{job="policy-server"}')[0]["value"][1] == "1"
    version = query(prometheus, "tennis_policy_model_info")[0]["metric"]["version"]
    assert version == champion[1].version
    assert query(prometheus, "tennis_monitoring_score_mean")[0]["value"][1] == "0.41"
    assert query(prometheus, "tennis_policy_inference_duration_seconds_count")


def test_alert_rules_are_loaded_and_the_drift_alert_fires(prometheus):
    expected = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
                for r in g["rules"] if "alert" in r}

    def loaded():
        groups = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        # Evaluated at least once (never-evaluated rules report year 0001), without errors.
        if rules and all(not r.get("lastEvaluation", "0001").startswith("0001") and
                         r["health"] == "ok" for r in rules):
            return rules
        return None
    rules = wait_until(loaded, 20, "every rule evaluated healthy")
    assert {r["name"] for r in rules if r["type"] == "alerting"} == expected
    for rule in rules:
        if rule["type"] == "alerting":
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["name"]

    def firing():
        alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "TennisScoreDriftCritical"
                and a["state"] == "firing"]
    alert = wait_until(firing, 20, "the drift alert to fire")[0]
    assert alert["labels"]["severity"] == "critical"
    assert "0.410" in alert["annotations"]["description"]
    # Healthy server: none of its alerts fire.
    names = {a["labels"]["alertname"] for a in _get(f"{prometheus}/api/v1/alerts")["data"]
             ["alerts"]}
    assert not names & {"TennisPolicyServerDown", "TennisPolicyModelNotLoaded",
                        "TennisPolicyErrorRateCritical"}


def test_every_dashboard_query_is_valid_promql(prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    for expr in exprs:
        doc = _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr.replace("$__rate_interval", "1m")}))
        assert doc["status"] == "success", (expr, doc)


def _promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    if not Path(PROMTOOL).exists():
        missing(f"{PROMTOOL} (Prometheus's promtool)", "prometheus")
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60,
                          check=False)


def test_promtool_accepts_the_exposition(server):
    client = Client(server.url)
    try:
        client.json("POST", "/act", VALID)
        _, _, body = client.request("GET", "/metrics")
    finally:
        client.close()
    out = _promtool("check", "metrics", stdin=body)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out


def test_promtool_checks_rules_config_and_rule_unit_tests():
    for args in (("check", "rules", str(RULES)), ("check", "config", str(SCRAPE_CONFIG)),
                 ("test", "rules", str(RULE_TESTS))):
        out = _promtool(*args)
        assert out.returncode == 0, (args, out.stdout.decode(), out.stderr.decode())
