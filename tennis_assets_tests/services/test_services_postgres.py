"""The production storage on a real PostgreSQL server: Dagster's run, event and schedule storage,
an Optuna study shared by worker processes, and MLflow's tracking and registry backend."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository

from tennis_assets_tests.system_services import missing

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _write_instance(home: Path, postgres_url: str) -> Path:
    """$DAGSTER_HOME/dagster.yaml: the repository's local settings (pools, telemetry) with
    PostgreSQL for runs, events and schedules, as docker/dagster.yaml has it."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text()) or {}
    config["storage"] = {"postgres": {"postgres_url": postgres_url}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.fixture(scope="module")
def mlflow_db(postgres) -> str:
    """One MLflow database for the module: MLflow's migrations take seconds on each new one."""
    return postgres.create_database("mlflow")


@pytest.fixture
def services(postgres, pg_database, mlflow_db, tmp_path, monkeypatch):
    """Dagster, Optuna and MLflow all on the server, the way the compose stack runs them."""
    dagster_db, optuna_db = pg_database("dagster"), pg_database("optuna")
    # The driver is named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not
    # installed; psycopg2 is (psycopg2-binary).
    home = _write_instance(tmp_path / "dagster_home", postgres.url(dagster_db, "psycopg2"))
    optuna_url = postgres.url(optuna_db, "psycopg2")
    mlflow_url = postgres.url(mlflow_db, "psycopg2")
    # Read at run time by the resources, in this process and in every step process.
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("TENNIS_ASSETS_OPTUNA_STORAGE", optuna_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    monkeypatch.delenv("TENNIS_ASSETS_ALERT_WEBHOOK", raising=False)
    return {"home": home, "dagster_db": dagster_db, "optuna": optuna_url, "mlflow": mlflow_url}


def _rows(postgres, database: str, sql: str, *args) -> list[tuple]:
    conn = postgres.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_dagster_on_postgres_materializes_the_pipeline(postgres, services):
    """The main command's quick pipeline for the baseline candidate (train until certified,
    evaluate on 100 fresh episodes, real gates, promote, monitor) on an instance whose storage
    is PostgreSQL, with Optuna and MLflow there too; then everything is read back from the
    database by a fresh instance. tuning_study on PostgreSQL is the concurrency test's."""
    from tennis_assets.pipeline import materialize_all

    with dg.DagsterInstance.from_config(str(services["home"])) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    runs = materialize_all("quick", partitions=("baseline",))  # on $DAGSTER_HOME
    assert [(r.job, r.partition) for r in runs] == [
        ("retrain", "baseline"), ("promote", None), ("monitor", None)]
    assert all(r.success for r in runs), runs

    with dg.DagsterInstance.from_config(str(services["home"])) as fresh:
        records = {r.dagster_run.run_id: r for r in fresh.get_run_records()}
        assert set(records) == {r.run_id for r in runs}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records.values())
        keys = ["trained_agents", "evaluation_report", "challenger_model", "production_model",
                "production_monitoring"]
        for key in keys:
            event = fresh.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.run_id in records, key
        report = fresh.get_latest_materialization_event(dg.AssetKey("evaluation_report"))
        assert report.asset_materialization.metadata["mean"].value >= 0.5
        champion = fresh.get_latest_materialization_event(dg.AssetKey("production_model"))
        assert champion.asset_materialization.metadata["version"].value == "1"

    # Straight from PostgreSQL's tables, not through Dagster's API.
    db = services["dagster_db"]
    assert {r[0] for r in _rows(postgres, db, "SELECT run_id FROM runs")} == set(records)
    materialized = _rows(postgres, db, "SELECT DISTINCT asset_key FROM event_logs WHERE "
                                       "dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert set(keys) <= {json.loads(k)[0] for (k,) in materialized}  # keys: JSON paths


def _max_overlap(intervals: list[tuple[object, object, int]]) -> tuple[int, set[int]]:
    """The most distinct processes with a trial running at one instant, and which."""
    best: set[int] = set()
    for start, _, _ in intervals:
        running = {pid for s, e, pid in intervals if s <= start < e}
        if len(running) > len(best):
            best = running
    return len(best), best


def _join_when_running(study_name: str, storage_url: str, n_trials: int, box: dict) -> None:
    """The `tuning_worker` job, launched as its own run once the study has a running trial."""
    import optuna

    from tennis_assets import tuning
    from tennis_assets.definitions import defs
    from tennis_assets.defs.jobs import WORKER_JOBS

    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                study = optuna.load_study(study_name=study_name,
                                          storage=tuning.make_storage(storage_url))
                if study.get_trials(states=[optuna.trial.TrialState.RUNNING]):
                    break
            except KeyError:
                pass  # not created yet
            time.sleep(0.2)
        box["joined_at"] = datetime.now()
        if "tuning_worker" not in {job.name for job in defs.jobs or []}:
            defs = dg.Definitions.merge(defs, dg.Definitions(jobs=WORKER_JOBS))
        config = {"profile": "tiny", "study_name": study_name, "n_trials": n_trials,
                  "pruner": "none", "trial_max_seconds": 3.0, "trial_max_updates": 1_000_000}
        # An instance object of its own: this is another run, as from another machine.
        with dg.DagsterInstance.get() as instance:
            result = defs.resolve_job_def("tuning_worker").execute_in_process(
                run_config={"ops": {"join_study": {"config": config}}}, instance=instance)
        box["run_id"], box["success"] = result.run_id, result.success
    except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
        box["error"] = exc


def test_study_on_postgres_with_three_concurrent_worker_processes(postgres, services):
    """The real `tune` job under the multiprocess executor: three worker steps, each its own
    process, share six trials of one study in PostgreSQL, with the `training` pool raised from
    1 to 3; while it runs, a `tuning_worker` run joins the study with two more trials. Every
    trial ends finished, numbered 0..7 exactly once, each batch exactly as large as asked."""
    import optuna

    from tennis_assets import tuning

    n_trials, n_workers, n_joined = 6, 3, 2
    joined: dict = {}
    joiner = threading.Thread(target=_join_when_running, daemon=True, args=(
        "pg-workers", services["optuna"], n_joined, joined))
    with dg.DagsterInstance.from_config(str(services["home"])) as instance:
        # What a user does on a machine with room for three trainings at once.
        instance.event_log_storage.set_concurrency_slots("training", n_workers + 1)
        recon = ReconstructableRepository.for_module(
            "tennis_assets.definitions", "defs",
            working_directory=str(REPO)).get_reconstructable_job("tune")
        config = {"profile": "tiny", "study_name": "pg-workers", "n_trials": n_trials,
                  "n_workers": n_workers, "pruner": "none",
                  # Wall-clock bound trials, long enough that the workers' trials overlap
                  # whatever order their processes come up in.
                  "trial_max_seconds": 3.0, "trial_max_updates": 1_000_000}
        # Step processes fork from a server that has imported Dagster, the definitions and
        # torch once, instead of each importing them again (seconds each on 2 busy cores).
        executor = {"max_concurrent": 4, "start_method": {"forkserver": {"preload_modules": [
            "tennis_assets.definitions", "torch", "optuna"]}}}
        joiner.start()
        with dg.execute_job(recon, instance=instance, run_config={
                "ops": {"tuning_study": {"config": config}},
                "execution": {"config": {"multiprocess": executor}}}) as result:
            assert result.success
            run_id = result.run_id
            step_pids = {e.step_key: e.pid for e in result.all_events
                         if e.event_type == dg.DagsterEventType.STEP_START}
            finished_at = datetime.now()
        joiner.join(timeout=120)
    assert "error" not in joined, joined
    assert joined["success"] and joined["joined_at"] < finished_at
    stored = Path(os.environ["TENNIS_ASSETS_HOME"]) / "assets/tuning_study/__unpartitioned__.json"
    value = json.loads(stored.read_text())["value"]

    study = optuna.load_study(study_name="pg-workers", storage=tuning.make_storage(
        services["optuna"]))
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(n_trials + n_joined))
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in finished for t in trials), [t.state.name for t in trials]
    batches = {b: sorted(t.number for t in trials if t.user_attrs["batch"] == b)
               for b in (run_id, joined["run_id"])}
    assert [len(v) for v in batches.values()] == [n_trials, n_joined]
    assert value["run_trials"] == batches[run_id]
    tuned = [t for t in trials if t.user_attrs["batch"] == run_id]
    shares = sorted(sum(1 for t in tuned if t.user_attrs["worker"] == w) for w in range(3))
    assert shares == [2, 2, 2]

    pids = {t.user_attrs["worker_pid"] for t in tuned}
    worker_steps = {k: p for k, p in step_pids.items() if "tune_trials" in k}
    assert len(worker_steps) == n_workers and pids == set(worker_steps.values())
    assert os.getpid() not in pids
    intervals = [(t.datetime_start, t.datetime_complete, t.user_attrs["worker_pid"])
                 for t in tuned]
    overlap, running = _max_overlap(intervals)
    timeline = sorted((s.isoformat(), (e - s) / timedelta(seconds=1), p) for s, e, p in intervals)
    # The evidence, in the test log: (start, seconds, worker pid) of each trial of the run.
    print(f"tune run {run_id}: {overlap} worker processes at once {sorted(running)}; "
          f"trials {timeline}; joined run {joined['run_id']}: trials {batches[joined['run_id']]}")
    assert overlap >= 3, f"at most {overlap} worker processes at once: {timeline}"


def test_mlflow_on_postgres_records_a_run_and_a_model_version(postgres, services, tmp_path):
    from mlflow.tracking import MlflowClient

    from tennis_assets.tracking.mlflow_tracking import MlflowTracker

    uri = services["mlflow"]
    tracker = MlflowTracker(uri, experiment="pg-backend",
                            artifact_root=(tmp_path / "artifacts").as_uri())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.txt").write_text("not a real model")
    with tracker.start_run("pg-run", {"purpose": "backend-check"}) as run:
        run.log_params({"actor_lr": 1e-3, "algorithm": "ddpg"})
        run.log_metrics({"eval_mean": 0.75})
        run.log_series("episode_score", [0.0, 0.1, 0.5])
        run.log_artifact(model_dir, "model")
    source = f"{tracker.get_run(run.run_id).info.artifact_uri}/model"
    info = tracker.register_champion("pg-policy", source, run.run_id, tags={"eval_mean": 0.75})

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # nothing cached
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"actor_lr": "0.001", "algorithm": "ddpg"}
    assert stored.data.metrics["eval_mean"] == 0.75
    assert [m.value for m in client.get_metric_history(run.run_id, "episode_score")] == \
        [0.0, 0.1, 0.5]
    assert stored.data.tags["purpose"] == "backend-check"
    version = client.get_model_version_by_alias("pg-policy", "champion")
    assert (str(version.version), version.run_id, version.status) == \
        (info.version, run.run_id, "READY")
    assert version.tags["eval_mean"] == "0.75"
    # In PostgreSQL's own tables.
    db = uri.rsplit("/", 1)[1]
    assert _rows(postgres, db, "SELECT value FROM params WHERE run_uuid = %s AND key = %s",
                 run.run_id, "actor_lr") == [("0.001",)]
    assert _rows(postgres, db, "SELECT version FROM model_versions WHERE name = %s",
                 "pg-policy") == [(1,)]


def test_compose_init_script_and_production_instance_on_a_real_server(postgres, pg_database,
                                                                     tmp_path, monkeypatch):
    """docker/postgres/init-databases.sh creates the stack's databases (idempotently) with the
    real psql, and docker/dagster.yaml's storage, coordinator, pools and retries, read with the
    compose stack's variables, run a materialization on that server."""
    import shutil
    import subprocess

    psql = shutil.which("psql")
    if psql is None:
        missing("psql", "postgresql-client")
    from .postgres import SUPERUSER

    env = {**os.environ, "POSTGRES_USER": SUPERUSER, "PGHOST": postgres.host,
           "PGPORT": str(postgres.port)}
    script = REPO / "docker" / "postgres" / "init-databases.sh"
    for _ in range(2):  # the second run finds them and creates nothing
        out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr
    assert "creating" not in out.stdout
    names = {r[0] for r in _rows(postgres, "postgres", "SELECT datname FROM pg_database")}
    assert {"dagster", "mlflow", "optuna"} <= names

    config = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    # Everything but the parts that need Docker or the containers' /data volume.
    del config["run_launcher"]
    for key in ("local_artifact_storage", "compute_logs"):
        config[key]["config"]["base_dir"] = str(tmp_path / key)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    database = pg_database("compose_dagster")
    for name, value in {"DAGSTER_POSTGRES_HOST": postgres.host,
                        "DAGSTER_POSTGRES_PORT": str(postgres.port),
                        "DAGSTER_POSTGRES_USER": SUPERUSER, "DAGSTER_POSTGRES_PASSWORD": "",
                        "DAGSTER_POSTGRES_DB": database}.items():
        monkeypatch.setenv(name, value)

    @dg.asset
    def heartbeat() -> int:
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled
        result = dg.materialize([heartbeat], instance=instance)
        assert result.success
    rows = _rows(postgres, database, "SELECT run_id FROM runs")
    assert [r[0] for r in rows] == [result.run_id]
