"""Drive the compose stack that scripts/stack-test.sh started, as a user would, and check it.

Only public interfaces: the Dagster webserver's GraphQL API (the runs of
``tennis_assets.pipeline.job_plan``, each launched as the UI launches it, then a run of
``tune_in_containers`` whose steps docker_executor starts in containers of their own), the
container engine's Docker API (the socket the daemon uses), each service's HTTP port on
127.0.0.1, and the alert webhook's stand-in (docker/podman/alert_receiver.py), where Dagster's
announcement and an alert that Prometheus fires through Alertmanager must both arrive.
Exits non-zero with a line saying what failed. Environment: STACK_ENGINE_SOCKET,
POSTGRES_USER, POSTGRES_PASSWORD, JUPYTER_TOKEN, TENNIS_ASSETS_PROFILE,
TENNIS_ASSETS_ALERT_WEBHOOK (set by stack-test.sh).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dagster_graphql import DagsterGraphQLClient

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tennis_assets.defs.runs import PLAN_TAG
from tennis_assets.pipeline import job_plan, run_config

WEBSERVER, MLFLOW, OPTUNA = "127.0.0.1", "http://127.0.0.1:5000", "http://127.0.0.1:8080"
POLICY, PROMETHEUS, JUPYTER = ("http://127.0.0.1:8000", "http://127.0.0.1:9090",
                               "http://127.0.0.1:8888")
ALERTMANAGER, RECEIVER = "http://127.0.0.1:9093", "http://127.0.0.1:9099"
# The steps of one tuning_study run with two workers, each in a container of its own.
CONTAINER_STEPS = {"tuning_study.create_study", "tuning_study.tune_trials[w0]",
                   "tuning_study.tune_trials[w1]", "tuning_study.summarize_study",
                   "tuning_study_enough_completed_trials"}
MODEL = "tennis-policy"
RUN_TIMEOUT_S = 900
T0 = time.monotonic()


class Failed(Exception):
    pass


def say(msg: str) -> None:
    print(f"[stack]   {time.monotonic() - T0:5.0f} s  {msg}", flush=True)


def check(ok, msg: str) -> None:
    if not ok:
        raise Failed(msg)


def http(url: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, str(exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def until(what: str, probe, timeout: float, interval: float = 1.0):
    """probe() until it returns something truthy; its last value otherwise names the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class Stack:
    def __init__(self) -> None:
        self.engine = docker.DockerClient(base_url=f"unix://{os.environ['STACK_ENGINE_SOCKET']}")
        self.dagster = DagsterGraphQLClient(WEBSERVER, port_number=3000, timeout=30)

    def service(self, name: str):
        found = self.engine.containers.list(
            all=True, filters={"label": f"com.docker.compose.service={name}"})
        check(len(found) == 1, f"one container of service {name}, found {len(found)}")
        return found[0]

    def run_containers(self, run_id: str) -> list:
        return self.engine.containers.list(all=True, filters={"label": f"dagster/run_id={run_id}"})

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        status, doc = http(f"http://{WEBSERVER}:3000/graphql",
                           {"query": query, "variables": variables or {}}, timeout=30)
        check(status == 200 and isinstance(doc, dict) and not doc.get("errors"),
              f"GraphQL answered {status}: {str(doc)[:300]}")
        return doc["data"]

    def run_info(self, run_id: str) -> dict:
        return self.graphql("""query($id: ID!) { runOrError(runId: $id) { __typename
            ... on Run { status tags { key value } } } }""", {"id": run_id})["runOrError"]

    def daemons_healthy(self) -> bool:
        statuses = self.graphql("""{ instance { daemonHealth { allDaemonStatuses {
            daemonType required healthy } } } }""")["instance"]["daemonHealth"]
        return all(d["healthy"] for d in statuses["allDaemonStatuses"] if d["required"])


def launch(stack: Stack, job: str, partition: str | None, assets: list[str], profile: str,
           during=None) -> dict:
    """Launch one run of the plan and wait for its end; asserts, while it runs, that the engine
    holds a container for it that DockerRunLauncher made. ``during(stack, run_id, container)``
    runs once its container is seen running."""
    ops = run_config(profile)["ops"]
    # The plan launches promotion and monitoring itself: the stack's sensors leave them to it.
    tags = {"trigger": "tennis_assets.stack_test", PLAN_TAG: "stack test"}
    if partition:
        tags["dagster/partition"] = partition
    run_id = stack.dagster.submit_job_execution(
        job, run_config={"ops": {k: v for k, v in ops.items() if k in assets},
                         "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags=tags)
    label = f"{job}{f' [{partition}]' if partition else ''}"
    say(f"{label}: run {run_id} launched")
    started, seen, deadline = time.monotonic(), None, time.monotonic() + RUN_TIMEOUT_S
    while True:
        info = stack.run_info(run_id)
        status = info["status"]
        if seen is None:
            for c in stack.run_containers(run_id):
                if c.status == "running":
                    seen = c
                    check(c.labels.get("com.tennis-assets.role") == "dagster-run"
                          and c.labels.get("dagster/job_name") == job,
                          f"run {run_id}'s container lacks the launcher's labels: {c.labels}")
                    tag = {t["key"]: t["value"] for t in info["tags"]}.get("docker/container_id")
                    check(tag is None or tag == c.id,
                          f"run {run_id}: container tag {tag} is not the running {c.id}")
                    say(f"{label}: running in container {c.name} ({c.id[:12]}, image "
                        f"{c.image.tags[0] if c.image.tags else c.image.id[:19]}), labels "
                        f"dagster/run_id and com.tennis-assets.role=dagster-run")
                    if during:
                        during(stack, run_id, c)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        check(time.monotonic() < deadline, f"{label}: still {status} after {RUN_TIMEOUT_S} s")
        time.sleep(1)
    check(seen is not None, f"{label}: no running container with label dagster/run_id={run_id}"
                            " was seen during the run")
    say(f"{label}: {status} after {time.monotonic() - started:.0f} s")
    return {"job": job, "partition": partition, "run_id": run_id, "status": status}


def kill_daemon_mid_run(stack: Stack, run_id: str, container) -> None:
    """The fault: the daemon's container killed while a run is in flight, then started again."""
    daemon = stack.service("daemon")
    time.sleep(3)
    before = daemon.attrs["State"]["StartedAt"]
    daemon.kill()

    def gone():
        # Gone, or already brought back by its restart policy (a new start time).
        daemon.reload()
        return daemon.status != "running" or daemon.attrs["State"]["StartedAt"] != before
    until("daemon container killed", gone, 30, 0.2)
    container.reload()
    say(f"fault: daemon container killed ({daemon.status}) while run {run_id} runs "
        f"(its container: {container.status})")
    time.sleep(5)
    daemon.reload()
    if daemon.status != "running":
        daemon.start()
    daemon.reload()
    check(daemon.attrs["State"]["StartedAt"] != before, "the daemon did not start again")
    until("the daemon's heartbeats healthy again after the restart",
          stack.daemons_healthy, 180, 3)
    say("fault: daemon started again; every required daemon (run monitoring included) healthy")


def pipeline(stack: Stack, profile: str) -> list[dict]:
    runs = []
    for step in job_plan():  # one at a time: the stack's training pool holds one step
        job, partition, assets = step.job, step.partition, step.assets
        if job == "monitor" and champion() is None:
            say("monitor: skipped, no champion was promoted")
            break
        fault = kill_daemon_mid_run if (job, partition) == ("retrain", "baseline") else None
        run = launch(stack, job, partition, assets, profile, during=fault)
        if fault:
            check(run["status"] in ("SUCCESS", "FAILURE"),
                  f"run {run['run_id']} ended {run['status']} after the daemon's restart")
            if run["status"] == "FAILURE":
                run = retried_or_relaunched(stack, run, assets, profile)
        runs.append(run)
    check(all(r["status"] == "SUCCESS" for r in runs),
          "runs not SUCCESS: " + ", ".join(f"{r['job']} {r['run_id']} {r['status']}"
                                          for r in runs if r["status"] != "SUCCESS"))
    return runs


def retried_or_relaunched(stack: Stack, run: dict, assets, profile) -> dict:
    """After a failure marked by run monitoring, the stack must still work: the run's retry
    (run_retries in docker/dagster.yaml) or, failing that, a new launch, ends SUCCESS."""
    events = stack.graphql("""query($id: ID!) { logsForRun(runId: $id) { __typename
        ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }""",
                           {"id": run["run_id"]})["logsForRun"]["events"]
    say("the run failed after the fault: " + " | ".join(
        e["message"] for e in events if e.get("message") and "monitor" in e["message"].lower()
    )[:400])
    return launch(stack, run["job"], run["partition"], assets, profile)


def champion() -> dict | None:
    status, doc = http(f"{MLFLOW}/api/2.0/mlflow/registered-models/alias?name={MODEL}"
                       "&alias=champion")
    return doc["model_version"] if status == 200 else None


def check_mlflow(runs: list[dict]) -> dict:
    status, doc = http(f"{MLFLOW}/api/2.0/mlflow/experiments/search",
                       {"max_results": 1000})
    check(status == 200, f"MLflow experiments/search answered {status}")
    ids = [e["experiment_id"] for e in doc.get("experiments", [])]
    status, doc = http(f"{MLFLOW}/api/2.0/mlflow/runs/search",
                       {"experiment_ids": ids, "max_results": 1000})
    check(status == 200, f"MLflow runs/search answered {status}")
    tracked = {t["value"] for r in doc.get("runs", []) for t in r["data"].get("tags", [])
               if t["key"] == "dagster.run_id"}
    missing = [r["run_id"] for r in runs if r["job"] in ("tune", "retrain")
               and r["run_id"] not in tracked]
    check(not missing, f"no MLflow run tagged with Dagster runs {missing}")
    version = champion()
    check(version is not None, f"MLflow has no model {MODEL!r} with alias champion")
    tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    say(f"MLflow: {len(doc.get('runs', []))} runs in {len(ids)} experiments, every tune and "
        f"retrain run tracked; {MODEL} v{version['version']} is champion ({tags.get('partition')}"
        f" candidate, greedy mean {tags.get('eval_mean')} over {tags.get('eval_episodes')} "
        "episodes)")
    return version


def check_policy_server(version: dict) -> None:
    def ready():
        status, doc = http(f"{POLICY}/readyz")
        return status == 200 and str(doc.get("version")) == str(version["version"]) and doc
    doc = until(f"policy server ready with champion v{version['version']}", ready, 120)
    status, act = http(f"{POLICY}/act", {"observations": [[0.0] * 24, [0.1] * 24]})
    check(status == 200 and len(act["actions"]) == 2 and len(act["actions"][0]) == 2
          and str(act["model_version"]) == str(version["version"]),
          f"POST /act answered {status}: {str(act)[:200]}")
    say(f"policy server: ready with {doc['model']} v{doc['version']} ({doc['alias']}); "
        f"/act answered actions {act['actions']}")


def check_prometheus() -> None:
    def scraped():
        status, doc = http(f"{PROMETHEUS}/api/v1/targets")
        targets = doc["data"]["activeTargets"] if status == 200 else []
        return any(t["labels"].get("job") == "policy-server" and t["health"] == "up"
                   for t in targets)
    until("Prometheus scraping the policy server (target up)", scraped, 90, 3)
    status, doc = http(f"{PROMETHEUS}/api/v1/query?query=tennis_policy_requests_total")
    series = doc["data"]["result"] if status == 200 else []
    status, rules = http(f"{PROMETHEUS}/api/v1/rules")
    groups = rules["data"]["groups"] if status == 200 else []
    n = sum(len(g["rules"]) for g in groups)
    bad = [r["name"] for g in groups for r in g["rules"] if r.get("health") == "err"]
    check(n > 0 and not bad, f"Prometheus rules: {n} loaded, in error: {bad}")
    say(f"Prometheus: policy-server target up; {n} rules in {len(groups)} groups loaded, "
        f"none in error; {len(series)} series of tennis_policy_requests_total")


def webhook_messages() -> list[dict]:
    """What the alert webhook received on its secret path (stack-test.sh's URL)."""
    path = urllib.parse.urlsplit(os.environ["TENNIS_ASSETS_ALERT_WEBHOOK"]).path
    status, doc = http(f"{RECEIVER}/received")
    return [m for m in doc if m["path"] == path] if status == 200 else []


def _alertmanager_message(alertname: str):
    def probe():
        return [m for m in webhook_messages() for a in m["body"].get("attachments", [])
                if a.get("title", "").startswith(f"FIRING: {alertname} ")]
    return probe


def check_alerts(stack: Stack) -> None:
    """Alerts reach someone: Dagster's announcement of the champion (the code server's sensor)
    and a Prometheus rule fired through Alertmanager, at the same webhook. The rule: a
    drift-monitoring result the policy server cannot parse (what a crash mid-write leaves),
    TennisMonitoringResultUnreadable, which fires on the first scrape that counts the error."""
    status, _ = http(f"{ALERTMANAGER}/-/ready")
    check(status == 200, f"Alertmanager /-/ready answered {status}")
    def active():
        status, doc = http(f"{PROMETHEUS}/api/v1/alertmanagers")
        return status == 200 and doc["data"]["activeAlertmanagers"]
    until("Prometheus sending alerts to Alertmanager", active, 60, 2)
    announced = until("Dagster's champion announcement at the webhook", lambda: [
        m for m in webhook_messages()
        if "`promote`: the champion is now" in str(m["body"].get("text"))],
        120, 2)
    volume = stack.engine.volumes.get("tennis_assets_data")
    latest = Path(volume.attrs["Mountpoint"]) / "monitoring" / "latest.json"
    check(latest.is_file(), f"no drift-monitoring result at {latest}")
    saved, started = latest.read_bytes(), time.monotonic()
    latest.write_bytes(saved[: len(saved) // 2])
    try:
        (message, *_) = until("TennisMonitoringResultUnreadable from Alertmanager at the webhook",
                              _alertmanager_message("TennisMonitoringResultUnreadable"), 240, 2)
    finally:
        latest.write_bytes(saved)
    took = time.monotonic() - started
    (attachment,) = message["body"]["attachments"]
    check("could not be parsed" in attachment.get("text", ""),
          f"Alertmanager's message lacks the rule's summary: {attachment}")
    status, alerts = http(f"{ALERTMANAGER}/api/v2/alerts")
    check(status == 200 and any(a["labels"]["alertname"] == "TennisMonitoringResultUnreadable"
                                for a in alerts), f"Alertmanager lists {str(alerts)[:300]}")
    say(f"alerts: Dagster's champion announcement and Alertmanager's \"{attachment['title']}\" "
        f"at the same webhook; the rule fired and arrived {took:.0f} s after the result file "
        f"broke ({len(webhook_messages())} messages there, {len(announced)} from Dagster)")


def check_steps_in_containers(stack: Stack) -> None:
    """tune_in_containers: docker_executor starts every step of the study in a container of its
    own (two tuning workers, two containers), from the run's container, through the socket the
    code location's container context gives it; the steps get the data volume, not the socket."""
    config = {"profile": "tiny", "study_name": "steps-in-containers", "n_trials": 2,
              "n_workers": 2, "pruner": "none"}
    run_id = stack.dagster.submit_job_execution(
        "tune_in_containers", run_config={
            "ops": {"tuning_study": {"config": config}},
            "loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags={"trigger": "tennis_assets.stack_test"})
    say(f"tune_in_containers: run {run_id} launched")
    started = time.monotonic()

    def ended():
        status = stack.run_info(run_id)["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None
    status = until("tune_in_containers to end", ended, RUN_TIMEOUT_S, 2)
    steps = stack.engine.containers.list(
        all=True, filters={"label": "com.tennis-assets.role=dagster-step"})
    by_step = {}
    for c in steps:
        env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
        by_step[env.get("DAGSTER_RUN_STEP_KEY")] = c
    check(status == "SUCCESS", f"tune_in_containers run {run_id} ended {status}; step "
                               f"containers: {sorted(by_step)}")
    check(set(by_step) == CONTAINER_STEPS and len(steps) == len(CONTAINER_STEPS),
          f"step containers {sorted(by_step)}, expected {sorted(CONTAINER_STEPS)}")
    for key, c in by_step.items():
        mounts = {m["Destination"]: m.get("Name") or m.get("Source") for m in c.attrs["Mounts"]}
        check(c.attrs["State"]["ExitCode"] == 0, f"step {key}: exit {c.attrs['State']}")
        check(mounts.get("/data") == "tennis_assets_data" and
              "/var/run/docker.sock" not in mounts, f"step {key}'s mounts: {mounts}")
        check("tennis_assets" in c.attrs["NetworkSettings"]["Networks"],
              f"step {key} not on the tennis_assets network")
    (run_container,) = stack.run_containers(run_id)
    check(any(m["Destination"] == "/var/run/docker.sock" for m in run_container.attrs["Mounts"]),
          "the run's container has no engine socket")
    say(f"tune_in_containers: SUCCESS after {time.monotonic() - started:.0f} s; "
        f"{len(by_step)} step containers (image {steps[0].image.tags[0]}), each exit 0 with "
        f"the data volume and no engine socket: {sorted(by_step)}")


def check_optuna_dashboard() -> None:
    status, doc = http(f"{OPTUNA}/api/studies")
    studies = doc.get("study_summaries", []) if status == 200 else []
    check(studies, f"optuna-dashboard /api/studies answered {status}: {str(doc)[:200]}")
    study = studies[0]
    status, detail = http(f"{OPTUNA}/api/studies/{study['study_id']}")
    trials = detail.get("trials", []) if status == 200 else []
    check(trials, f"optuna-dashboard shows no trials of study {study['study_name']!r}")
    say(f"optuna-dashboard: study {study['study_name']!r} with {len(trials)} trials")


def check_jupyter(stack: Stack) -> None:
    token = os.environ["JUPYTER_TOKEN"]
    status, doc = http(f"{JUPYTER}/api/contents", headers={"Authorization": f"token {token}"})
    names = [c["name"] for c in doc.get("content", [])] if status == 200 else []
    check("quickstart.ipynb" in names, f"Jupyter /api/contents answered {status}: {names}")
    started = time.monotonic()
    code, out = stack.service("jupyter").exec_run(
        ["jupyter", "nbconvert", "--to", "notebook", "--execute", "quickstart.ipynb",
         "--output-dir", "/tmp", "--ExecutePreprocessor.timeout=600"])
    check(code == 0, f"the quickstart notebook failed in the Jupyter container: "
                     f"{out.decode(errors='replace')[-800:]}")
    say(f"Jupyter: answers; notebooks/quickstart.ipynb ran inside its container in "
        f"{time.monotonic() - started:.0f} s")


def check_no_secret(stack: Stack) -> None:
    """The PostgreSQL password and the Jupyter token in no database row (Dagster's events, tags,
    run configs and metadata; MLflow's params and tags; Optuna's attributes), no container's log,
    and no file of the data volumes."""
    webhook = urllib.parse.urlsplit(os.environ["TENNIS_ASSETS_ALERT_WEBHOOK"]).path
    secrets = {"POSTGRES_PASSWORD": os.environ["POSTGRES_PASSWORD"].encode(),
               "JUPYTER_TOKEN": os.environ["JUPYTER_TOKEN"].encode(),
               # The webhook's path is its credential.
               "TENNIS_ASSETS_ALERT_WEBHOOK": webhook.rsplit("/", 1)[-1].encode()}
    found = []
    postgres = stack.service("postgres")
    for db in ("dagster", "mlflow", "optuna"):
        code, dump = postgres.exec_run(["pg_dump", "-U", os.environ["POSTGRES_USER"], db])
        check(code == 0, f"pg_dump {db} failed")
        found += [f"database {db}" for name, s in secrets.items() if s in dump]
    for c in stack.engine.containers.list(all=True):
        logs = c.logs()
        found += [f"log of {c.name} ({name})" for name, s in secrets.items() if s in logs]
    n_files = 0
    for volume in stack.engine.volumes.list():
        if volume.name == "tennis_assets_postgres":
            continue  # the server's own files: covered by the dumps above
        for path in Path(volume.attrs["Mountpoint"]).rglob("*"):
            if path.is_file():
                n_files += 1
                data = path.read_bytes()
                found += [f"{volume.name}:{path.name} ({name})"
                          for name, s in secrets.items() if s in data]
    check(not found, f"a credential is written where people read: {found}")
    say(f"no credential in the dagster, mlflow and optuna databases, in the logs of "
        f"{len(stack.engine.containers.list(all=True))} containers, or in {n_files} files "
        "of the data volumes")


def main() -> int:
    profile = os.environ.get("TENNIS_ASSETS_PROFILE", "quick")
    stack = Stack()
    try:
        until("Dagster's code location loaded", lambda: stack.graphql(
            """{ workspaceOrError { ... on Workspace { locationEntries {
                locationOrLoadError { __typename } } } } }""")["workspaceOrError"]
            ["locationEntries"][0]["locationOrLoadError"]["__typename"] == "RepositoryLocation",
            120, 2)
        runs = pipeline(stack, profile)
        version = check_mlflow(runs)
        check_policy_server(version)
        check_prometheus()
        check_alerts(stack)
        check_optuna_dashboard()
        check_steps_in_containers(stack)
        check_jupyter(stack)
        check_no_secret(stack)
    except Failed as exc:
        print(f"[stack] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    print(f"[stack] quick pipeline in containers: {len(runs)} runs SUCCESS; champion "
          f"{MODEL} v{version['version']} ({tags.get('partition')}), greedy mean "
          f"{tags.get('eval_mean')} over {tags.get('eval_episodes')} fresh episodes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
