"""Alerts that reach someone: the policy server scraped by a real Prometheus with the project's
rules and its `alerting` section, a real Alertmanager (Debian's package) with
docker/alertmanager/alertmanager.yml, and a real HTTP receiver standing for the webhook that
Dagster's alerts use. A drifted champion fires TennisScoreDriftCritical, and the receiver gets
it as a Slack-compatible message, beside an alert that Dagster's AlertWebhook posts to the same
URL. Every process on loopback at a free port, stopped by its process id."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tennis_assets_tests.system_services import missing

from .support import stop_process, wait_for_http, wait_until
from .test_serving_prometheus import DRIFT, PROMETHEUS, RULES, SCRAPE_CONFIG, _free_port, _get

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = REPO / "docker" / "alertmanager" / "alertmanager.yml"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
# Where start.sh writes the webhook URL inside the container.
URL_FILE = "/tmp/alertmanager/webhook-url"


class Receiver:
    """A webhook: records the JSON of every POST (path and body)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/hook-secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def alertmanager(receiver, tmp_path_factory):
    """docker/alertmanager/alertmanager.yml as shipped, with the URL file in this test's
    folder (the container's start.sh writes it to /tmp/alertmanager)."""
    if not Path(ALERTMANAGER).exists():
        missing(f"{ALERTMANAGER} (Alertmanager)", "prometheus-alertmanager")
    root = tmp_path_factory.mktemp("alertmanager")
    url_file = root / "webhook-url"
    url_file.write_text(receiver.url)
    url_file.chmod(0o600)
    shipped = ALERTMANAGER_CONFIG.read_text()
    assert shipped.count(URL_FILE) == 1
    config = root / "alertmanager.yml"
    config.write_text(shipped.replace(URL_FILE, str(url_file)))
    port = _free_port()
    with open(root / "alertmanager.log", "wb") as log:  # the child holds its own copy
        proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={config}", f"--storage.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{base}/-/ready", 30, "alertmanager", root / "alertmanager.log")
        yield base
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def prometheus(server, monitoring_file, alertmanager, tmp_path_factory):
    """docker/prometheus/prometheus.yml with this test's addresses (the compose stack's names
    swapped for loopback ports) and 1 s intervals."""
    if not Path(PROMETHEUS).exists():
        missing(f"{PROMETHEUS} (Prometheus server)", "prometheus")
    monitoring_file.write_text(json.dumps(DRIFT))
    shipped = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (manager,) = shipped["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    addresses = {"policy-server:8000": server.url.removeprefix("http://"),
                 "alertmanager:9093": alertmanager.removeprefix("http://"),
                 "localhost:9090": None}
    for job in shipped["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [addresses[t] for t in static["targets"] if addresses[t]]
    shipped["scrape_configs"] = [j for j in shipped["scrape_configs"]
                                 if j["static_configs"][0]["targets"]]
    manager["static_configs"] = [{"targets": [addresses["alertmanager:9093"]]}]
    shipped["global"].update(scrape_interval="1s", evaluation_interval="1s")
    shipped["rule_files"] = [str(RULES)]
    root = tmp_path_factory.mktemp("prometheus-am")
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(shipped))
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


def test_amtool_accepts_the_shipped_config():
    if not Path(AMTOOL).exists():
        missing(f"{AMTOOL} (Alertmanager's amtool)", "prometheus-alertmanager")
    out = subprocess.run([AMTOOL, "check-config", str(ALERTMANAGER_CONFIG)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, (out.stdout, out.stderr)
    assert "2 receivers" in out.stdout and "1 inhibit rules" in out.stdout


def test_a_firing_rule_reaches_the_webhook_that_dagsters_alerts_use(prometheus, alertmanager,
                                                                     receiver, tmp_path):
    from tennis_assets.defs.resources import AlertWebhook

    active = wait_until(lambda: _get(f"{prometheus}/api/v1/alertmanagers")["data"]
                        ["activeAlertmanagers"], 20, "Prometheus to find Alertmanager")
    assert active[0]["url"].startswith(alertmanager)

    def delivered():
        return [r for r in receiver.received if "attachments" in r["body"]]
    # Rule evaluation (1 s) + Alertmanager's group_wait (10 s) + the post.
    (message, *_) = wait_until(delivered, 60, "Alertmanager's message", interval=0.5)
    assert message["path"] == "/services/T0/B0/hook-secret"
    (attachment,) = message["body"]["attachments"]
    assert attachment["title"] == "FIRING: TennisScoreDriftCritical (critical)"
    assert "Champion score drifted badly" in attachment["text"]
    assert message["body"]["username"] == "tennis-assets alertmanager"
    alerts = _get(f"{alertmanager}/api/v2/alerts")
    assert any(a["labels"]["alertname"] == "TennisScoreDriftCritical" for a in alerts)

    # Dagster's own alerts post to the same URL (the AlertWebhook resource, for real).
    AlertWebhook(url=receiver.url, log_path=str(tmp_path / "alerts.log")).send(
        "run-failure:test", "run of `retrain` failed", {"kind": "run_failure"})
    dagster = [r for r in receiver.received if r["body"].get("alert_id") == "run-failure:test"]
    assert dagster and dagster[0]["path"] == message["path"]
    assert dagster[0]["body"]["text"] == "run of `retrain` failed"
    # The URL is a credential: Alertmanager's own status page masks it.
    with urllib.request.urlopen(f"{alertmanager}/api/v2/status", timeout=5) as resp:
        status = resp.read().decode()
    assert "hook-secret" not in status
