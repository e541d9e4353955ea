"""The flow a user walks, in a real browser (headless Chromium) against `dagster dev`:

  1. the README's main command (`python -m tennis_assets.pipeline`, tiny profile): every run
     on its job's page; tiny agents cannot play, so the gates stop them and nothing is promoted;
  2. `dagster dev` on the instance the command left, its daemon running the sensors; the asset
     graph renders;
  3. a retrain launched from the UI's Launchpad (the config and partition filled in the way the
     UI's own "Open in Launchpad" fills them), warm-started from an okay agent: the promotion
     sensor launches the promotion, which makes it champion v1;
  4. a second UI retrain, from a better agent: it beats champion v1 and becomes v2;
  5. rollback, then rollback again, each launched from the UI.
After each step the asset pages, MLflow's aliases and `champion.json` must say the same thing,
and each change of champion is announced to a real webhook with a link to its run.
Screenshots of each page stay in test-artifacts/ for a person to look at."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import dagster as dg
import pytest
from conftest import Receiver
from dagster_graphql import DagsterGraphQLClient

from tennis_assets import settings
from tennis_assets.training.drift import SEVERITIES
from tennis_assets_tests.browser import Browser, chromium, http, location_loaded, start, wait
from tennis_assets_tests.services.processes import free_port, session_members, stop_session

# The whole walk is set up by the first test: at load 10 beside the suite it took 674 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "user-walk"
MODEL = "tennis-policy"
ASSETS = ("tuning_study", "trained_agents", "evaluation_report", "challenger_model",
          "production_model")
GRAPH_TEXT = ("return Array.from(document.querySelectorAll('svg foreignObject'))"
              ".map(e => e.textContent).join('\\n')")
# The pictures on a page that MLflow serves, and whether the browser could draw them.
PICTURES = """return Array.from(document.querySelectorAll('img'))
  .filter(i => i.src.includes('/get-artifact?'))
  .map(i => ({src: i.src, alt: i.alt, width: i.complete ? i.naturalWidth : 0}));"""
RUNS = """query Runs($filter: RunsFilter) { runsOrError(filter: $filter) {
  __typename ... on Runs { results { runId jobName status tags { key value } } } } }"""


def _clean_environment(root: Path) -> dict[str, str]:
    env = {**os.environ, "TENNIS_ASSETS_HOME": str(root)}
    for name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE",
                 "TENNIS_ASSETS_ALERT_WEBHOOK", "TENNIS_ASSETS_DAGSTER_UI_URL", "MLFLOW_UI_URL",
                 "TENNIS_ASSETS_PROFILE"):
        env.pop(name, None)
    return env


def _main_command_facts(home: Path) -> dict:
    """What the instance says right after the main command, before anything else runs."""
    with dg.DagsterInstance.local_temp(str(home)) as inst:
        records = inst.get_run_records()
        labelled = {job: inst.get_runs(dg.RunsFilter(job_name=job, tags={
            ".dagster/repository": "__repository__@tennis_assets"}))
            for job in ("tune", "retrain", "promote")}
        return {
            "records": records,
            "labelled": {job: (len(runs), all(r.remote_job_origin is not None for r in runs))
                         for job, runs in labelled.items()},
            "pools": {p.name: p.limit for p in inst.event_log_storage.get_pool_limits()},
        }


class Walk:
    """The UI, the instance's runs and the registry, as the steps of the walk see them."""

    def __init__(self, url: str, browser: Browser, client: DagsterGraphQLClient, root: Path,
                 dev: subprocess.Popen, log: Path) -> None:
        self.url, self.browser, self.client, self.root = url, browser, client, root
        self.dev, self.log = dev, log
        self.outcomes: list[dict] = []

    def runs(self, **filters) -> list[dict]:
        doc = http("POST", f"{self.url}/graphql", {"query": RUNS, "variables": {
            "filter": filters}})
        return doc["data"]["runsOrError"]["results"]

    def finished(self, run_id: str, timeout_s: float = 300) -> str:
        # A blank page meanwhile: the UI's live pages keep a core of Chromium busy, which a
        # machine of two cores running the rest of the suite beside this cannot spare.
        self.browser.open("about:blank")

        def over():
            status = self.client.get_run_status(run_id).value
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None
        return str(wait(f"run {run_id} finishes", over, timeout_s, self.dev, self.log))

    def launch_from_ui(self, job: str, config: dict | None = None,
                       partition: str | None = None) -> str:
        """Open the job's Launchpad with this config and partition (the URL the UI's "Open in
        Launchpad" builds), click Launch Run, and return the run id the UI navigated to."""
        query: dict[str, str] = {}
        if config:
            query["config"] = json.dumps(config)  # JSON is YAML: the editor shows it as is
        if partition:
            query |= {"tags[0][key]": "dagster/partition", "tags[0][value]": partition}
        b = self.browser
        b.open(f"{self.url}/locations/tennis_assets/jobs/{job}/playground/setup?"
               + urllib.parse.urlencode(query))
        button = b.wait_for(f"the {job} Launchpad's Launch Run button", lambda: b.elements(
            "//button[normalize-space(.)='Launch Run' and not(@disabled)]"), 90)
        self.skip_greeting()
        b.click(button[0])

        def run_page() -> str | None:
            return b.current_url() if "/runs/" in b.current_url() else None
        page = b.wait_for("the UI opens the launched run", run_page, 60)
        return page.rstrip("/").split("/runs/")[1].split("?")[0]

    def skip_greeting(self) -> None:
        # On 127.0.0.1 the UI greets a new user with a dialog; a user clicks Skip, so does this.
        for button in self.browser.elements("//button[normalize-space(.)='Skip']"):
            self.browser.click(button)

    def sensor_run(self, job: str, tag: str, value: str, timeout_s: float = 180) -> dict:
        """The run a sensor launched for ``tag=value`` (sensors tick every 30 s)."""
        return wait(f"a {job} run tagged {tag}={value}", lambda: next(iter(self.runs(
            pipelineName=job, tags=[{"key": tag, "value": value}])), None), timeout_s,
            self.dev, self.log)

    def champion_everywhere(self, step: str) -> dict:
        """The champion as MLflow's aliases, champion.json and the production_model page say
        it; asserts they agree."""
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}")
        aliases: dict[str, str | None] = {}
        for alias in ("champion", "previous"):
            try:
                aliases[alias] = str(client.get_model_version_by_alias(MODEL, alias).version)
            except Exception:  # noqa: BLE001 - MlflowException: the alias is not set
                aliases[alias] = None
        pointer = json.loads((self.root / "models" / "production" / "champion.json"
                              ).read_text())
        assert (pointer["version"], pointer.get("previous_version")) == \
            (aliases["champion"], aliases["previous"]), (step, pointer, aliases)
        version, previous = aliases["champion"], aliases["previous"]
        assert version is not None, (step, aliases)
        table = self.asset_metadata("production_model", step, version=version)
        assert table["previous_version"] == (previous or "none"), (step, table)
        seen = {"step": step, "champion": version, "previous": previous,
                "outcome": table["outcome"], "pointer": pointer, "page": table}
        self.outcomes.append(seen)
        return seen


    def asset_metadata(self, asset: str, step: str, **expected: str) -> dict[str, str]:
        """The latest materialization's metadata on the asset's page, once it shows the
        ``expected`` values (the page may still show the one before for a moment)."""
        b = self.browser
        b.open(f"{self.url}/assets/{asset}")
        self.skip_greeting()
        seen: list[dict[str, str]] = [{}]

        def shown() -> dict[str, str] | None:
            seen[0] = b.metadata()
            return seen[0] if all(seen[0].get(k) == v for k, v in expected.items()) else None
        try:
            table = b.wait_for(f"{step}: the {asset} page shows {expected}", shown, 90)
        except AssertionError as error:
            raise AssertionError(f"{step}: {asset}'s page shows {seen[0]}") from error
        finally:
            b.screenshot(SHOTS / f"{step}-{asset}.png")
        return dict(table)


def _retrain(walk: Walk, step: str, checkpoint: Path) -> dict:
    """A UI retrain warm-started from ``checkpoint``, then the promotion the sensor launches."""
    run_id = walk.launch_from_ui("retrain", partition="baseline", config={"ops": {
        "trained_agents": {"config": {"init_checkpoint": str(checkpoint),
                                      "train": {"max_updates": 1}}},
        "evaluation_report": {"config": {"eval_episodes": 50}}}})
    retrain = walk.finished(run_id)
    # The run's page, as a person sees it once the run is over.
    walk.browser.open(f"{walk.url}/runs/{run_id}")
    walk.browser.wait_for_text(f"{step}: the run page shows the run's end", "RUN_SUCCESS"
                               if retrain == "SUCCESS" else "RUN_FAILURE", timeout_s=90)
    walk.browser.screenshot(SHOTS / f"{step}-retrain-run.png")
    promote = walk.sensor_run("promote", "report_run_id", run_id)
    promoted = walk.finished(promote["runId"])
    return {"retrain": (run_id, retrain), "promote": (promote["runId"], promoted),
            "promote_trigger": {t["key"]: t["value"] for t in promote["tags"]}.get("trigger"),
            "challenger": walk.asset_metadata("challenger_model", step)}


def _rollback(walk: Walk, step: str) -> dict:
    run_id = walk.launch_from_ui("rollback")
    return {"rollback": (run_id, walk.finished(run_id))}


def _pictures(walk: Walk, asset: str) -> list[dict]:
    """The MLflow-served pictures on the asset's page, once each has loaded in the browser."""
    b = walk.browser
    b.open(f"{walk.url}/assets/{asset}")
    seen: list[list[dict]] = [[]]

    def drawn() -> list[dict] | None:
        seen[0] = list(b.script(PICTURES) or [])
        return seen[0] if seen[0] and all(p["width"] > 0 for p in seen[0]) else None
    try:
        return list(b.wait_for(f"the pictures on the {asset} page load", drawn, 90))
    except AssertionError as error:
        raise AssertionError(f"{asset}'s pictures: {seen[0]}") from error
    finally:
        # The pictures sit below the metadata's numbers: the screenshot shows the first.
        b.script("const i = Array.from(document.querySelectorAll('img')).find("
                 "i => i.src.includes('/get-artifact?')); if (i) i.scrollIntoView();")
        b.screenshot(SHOTS / f"4-{asset}-pictures.png")


def _job_page(walk: Walk, job: str, run_id: str) -> str:
    """The job's own page lists a run the main command launched (runs executed in-process
    outside the code location never appear there) and titles itself with the job's name."""
    b = walk.browser
    b.open(f"{walk.url}/locations/tennis_assets/jobs/{job}/runs")
    try:
        b.wait_for_text(f"the {job} job page lists run {run_id}", run_id[:8], timeout_s=90)
    finally:
        b.screenshot(SHOTS / f"1-{job}-job-page.png")
    # The UI sets the title after it renders the run list; on two busy cores that took 20 s.
    return str(b.wait_for("the job page's title names the job", lambda: (
        b.title() if job in b.title() else None), 60))


def _asset_graph(walk: Walk) -> str:
    b = walk.browser
    b.open(f"{walk.url}/assets/production_model?view=lineage&lineageScope=upstream"
           "&lineageDepth=5")

    def graph_text() -> str | None:
        # The graph's nodes are HTML inside the SVG's foreignObject elements.
        text = str(b.script(GRAPH_TEXT))
        return text if all(name in text for name in ASSETS) else None
    text = b.wait_for("the asset graph shows the five assets", graph_text, 90)
    walk.skip_greeting()
    b.screenshot(SHOTS / "2-asset-graph.png")
    return str(text)


@pytest.fixture(scope="module")
def walk(tmp_path_factory, okay_checkpoint, good_checkpoint):
    root = tmp_path_factory.mktemp("walk")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    clock = time.monotonic()
    main = subprocess.run([sys.executable, "-m", "tennis_assets.pipeline", "--profile", "tiny"],
                          cwd=REPO, env=_clean_environment(root), capture_output=True,
                          text=True, timeout=600, check=False)
    print(f"[walk] the main command took {time.monotonic() - clock:.0f} s")
    home = root / "dagster"
    facts = {"main": main, **_main_command_facts(home)}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "dagster-dev.log"
    started: set[int] = set()
    # The MLflow UI as the main command tells a user to start it: the pictures on the asset
    # pages are served by it.
    mlflow_port = free_port()
    mlflow_log = root / "mlflow-ui.log"
    mlflow_ui = start([str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri",
                       f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", "--host", "127.0.0.1",
                       "--port", str(mlflow_port)], mlflow_log, env=_clean_environment(root))
    with Receiver() as receiver:
        env = _clean_environment(root) | {
            "DAGSTER_HOME": str(home), "TENNIS_ASSETS_PROFILE": "tiny",
            "TENNIS_ASSETS_ALERT_WEBHOOK": receiver.url, "TENNIS_ASSETS_DAGSTER_UI_URL": url,
            "MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}"}
        dev = start([str(Path(sys.executable).with_name("dagster")), "dev", "-w",
                     str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                    log, cwd=home, env=env)
        try:
            wait("dagster dev loads the code location", lambda: location_loaded(url), 180,
                 dev, log)
            started |= session_members(dev.pid)
            client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
            with chromium(root, started) as browser:
                w = Walk(url, browser, client, root, dev, log)
                [promote] = [r for r in facts["records"] if r.dagster_run.job_name == "promote"]
                facts["job_title"] = _job_page(w, "promote", promote.dagster_run.run_id)
                facts["graph"] = _asset_graph(w)
                clock = time.monotonic()
                facts["3"] = _retrain(w, "3", okay_checkpoint) | w.champion_everywhere("3")
                facts["4"] = _retrain(w, "4", good_checkpoint) | w.champion_everywhere("4")
                facts["pictures"] = _pictures(w, "evaluation_report")
                facts["5"] = _rollback(w, "5") | w.champion_everywhere("5")
                before = {r["runId"] for r in w.runs(pipelineName="monitor")}
                facts["6"] = _rollback(w, "6") | w.champion_everywhere("6")
                print(f"[walk] the UI steps took {time.monotonic() - clock:.0f} s, load "
                      + " ".join(f"{x:.2f}" for x in os.getloadavg()))
                # The monitoring the last change asked for, and every other, before anything
                # stops.
                wait("a monitoring run for the last change", lambda: {
                    r["runId"] for r in w.runs(pipelineName="monitor")} - before, 180, dev, log)
                for run in w.runs(pipelineName="monitor"):
                    w.finished(run["runId"])
                facts["monitor"] = w.runs(pipelineName="monitor")
                facts["monitoring_page"] = w.asset_metadata("production_monitoring", "7",
                                                            model_version="2")
                # The announcement sensor ticks every 30 s: the last change's may still come.
                changes = {facts["3"]["promote"][0], facts["4"]["promote"][0],
                           facts["5"]["rollback"][0], facts["6"]["rollback"][0]}
                wait("an announcement of each change", lambda: changes <= {
                    p.get("run_id") for p in receiver.posts if p.get("kind") == "run_success"},
                    180, dev, log)
            facts["posts"] = list(receiver.posts)
        finally:
            left = stop_session(dev) | stop_session(mlflow_ui)
            alive = {pid for pid in started if Path(f"/proc/{pid}").exists()
                     and Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"}
    assert not left and not alive, f"processes left running: {sorted(left | alive)}"
    facts["url"] = url
    return facts


def test_main_command_materializes_the_graph_and_prints_where_to_look(walk):
    out = walk["main"]
    lines = out.stdout.splitlines()
    # "<job> [<partition>] run <id>: <status>" (a candidate's line may name a run too)
    runs = [line for line in lines if re.fullmatch(r"\S+\s+\[[^\]]*\] run \S+: \S+", line)]
    assert [line.split()[0] for line in runs] == ["tune", "retrain", "retrain", "promote"]
    # The candidates are broken (tiny agents cannot play): their runs fail. Promotion finds no
    # acceptable candidate, which is not a failure: its run succeeds and promotes nothing.
    assert [line.split()[-1] for line in runs] == ["SUCCESS", "FAILURE", "FAILURE", "SUCCESS"], \
        out.stdout
    assert out.returncode == 1  # no champion: the gates stopped both candidates
    assert "champion pointer : none promoted" in out.stdout
    assert "/dagster dagster dev" in out.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in out.stdout

    records = walk["records"]
    # Only the plan's runs: the daemon of the command's `dagster dev` launched nothing of its
    # own (its sensors leave a plan's runs to the plan).
    assert sorted(r.dagster_run.job_name for r in records) == \
        ["promote", "retrain", "retrain", "tune"]
    assert all(r.dagster_run.tags.get("tennis_assets/plan") == "main command" for r in records)
    # The job page's query (dagster-graphql's resolve_runs): job name and the code location's
    # label tag (".dagster/repository", set for runs made from the location).
    assert walk["labelled"] == {"tune": (1, True), "retrain": (2, True), "promote": (1, True)}
    # The plan's order: the baseline trains while the study tunes (one training slot per
    # core), the tuned candidate only after the study, promotion after both candidates.
    by = {(r.dagster_run.job_name, r.dagster_run.tags.get("dagster/partition")): r
          for r in records}
    tune, promote = by[("tune", None)], by[("promote", None)]
    baseline, tuned = by[("retrain", "baseline")], by[("retrain", "tuned")]
    assert baseline.start_time < tune.end_time
    assert tuned.start_time >= tune.end_time
    assert promote.start_time >= max(baseline.end_time, tuned.end_time)
    assert walk["pools"]["training"] == settings.training_slots()
    # Chains of steps run in the run worker's process (no process per step).
    assert all(r.dagster_run.run_config["execution"] == {"config": {"in_process": {}}}
               for r in records)


def test_the_asset_graph_and_the_job_page_render(walk):
    assert "promote" in walk["job_title"]
    assert all(name in walk["graph"] for name in ASSETS)
    assert (SHOTS / "2-asset-graph.png").stat().st_size > 10_000


def test_ui_retrains_are_promoted_by_the_sensor(walk):
    for step, version, previous in (("3", "1", None), ("4", "2", "1")):
        facts = walk[step]
        assert facts["retrain"][1] == "SUCCESS", facts
        assert facts["promote"][1] == "SUCCESS", facts
        assert facts["promote_trigger"] == "promote_better_model"
        assert (facts["champion"], facts["previous"]) == (version, previous), facts
        assert facts["outcome"] == f"v{version} promoted (previous " \
            f"{'v' + previous if previous else 'none'})", facts
        assert facts["pointer"]["partition"] == "baseline"
        # The challenger's page says what it was judged against.
        assert (facts["challenger"]["version"], facts["challenger"]["champion_version"]) == \
            (version, previous or "none"), facts["challenger"]
    # The better agent won on the same episodes: its evaluation beat the okay one's.
    assert walk["4"]["pointer"]["eval_mean"] > walk["3"]["pointer"]["eval_mean"]


def test_rollback_and_rollback_again_swap_champion_and_previous(walk):
    assert walk["5"]["rollback"][1] == "SUCCESS"
    assert (walk["5"]["champion"], walk["5"]["previous"]) == ("1", "2")
    assert walk["5"]["outcome"] == "rolled back to v1 (previous v2)"
    assert walk["6"]["rollback"][1] == "SUCCESS"
    assert (walk["6"]["champion"], walk["6"]["previous"]) == ("2", "1")
    assert walk["6"]["outcome"] == "rolled back to v2 (previous v1)"


def test_the_pictures_show_on_the_asset_page(walk):
    """The score histogram, the rally and the learning curve are drawn in place on the
    evaluation report's page (not behind "Show Markdown"), served by the MLflow UI."""
    names = {urllib.parse.parse_qs(urllib.parse.urlparse(p["src"]).query)["path"][0]
             for p in walk["pictures"]}
    assert any(n.startswith("evaluation/") and n.endswith(".png") for n in names), names
    assert any(n.startswith("training/") for n in names), names
    assert all(p["width"] >= 100 for p in walk["pictures"]), walk["pictures"]


def test_each_change_of_champion_is_announced_once_with_a_link_to_its_run(walk):
    announced = [p for p in walk["posts"] if p.get("kind") == "run_success"]
    runs = [walk["3"]["promote"][0], walk["4"]["promote"][0], walk["5"]["rollback"][0],
            walk["6"]["rollback"][0]]
    assert sorted(p["run_id"] for p in announced) == sorted(runs)
    for post in announced:
        assert post["run_url"] == f"{walk['url']}/runs/{post['run_id']}"
        assert post["run_url"] in post["text"]


def test_every_new_champion_is_monitored_and_the_page_shows_the_last(walk):
    tags = [{t["key"]: t["value"] for t in r["tags"]} for r in walk["monitor"]]
    assert all(r["status"] == "SUCCESS" for r in walk["monitor"]), walk["monitor"]
    # The daily schedule may fire during the walk too (it did at 06:00 UTC); the sensor's runs
    # are the ones that follow the changes.
    monitored = [t for t in tags if t.get("trigger") == "monitor_new_champion"]
    assert all(t.get("trigger") == "monitor_new_champion" or "dagster/schedule_name" in t
               for t in tags), tags
    # v1, v2, v1 again after the rollback, v2 again: each change is watched (two changes
    # within one sensor tick may share a run, which watches the champion of that moment).
    assert 2 <= len(monitored) <= 4 and {t["champion_version"] for t in monitored} <= {"1", "2"}
    page = walk["monitoring_page"]
    assert page["model_version"] == "2" and page["severity"] in SEVERITIES
    assert float(page["p_value"]) >= 0 and page["environment"] == "tennis", page
