"""Materialize the whole asset graph on the instance in ``$DAGSTER_HOME`` (default
``<data dir>/dagster``) by launching its named jobs as the UI does, so the runs, asset values
and check results appear in ``dagster dev`` afterwards, each run on its job's page.

    python -m tennis_assets.pipeline --profile quick

Five runs, the same jobs the UI, the schedule and the sensors launch: ``tune`` (the Optuna
study), ``retrain`` for each candidate (train, evaluate against the champion, gates),
``promote`` (the best accepted candidate becomes challenger, is replayed through the registry,
and only then becomes champion), then ``monitor`` (the champion tested for drift). Separate
runs, so one candidate failing its gates does not stop the other from being promoted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tennis_assets import settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def ensure_dagster_home() -> Path:
    """$DAGSTER_HOME, or <data dir>/dagster seeded with the repository's dagster.yaml."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    template = REPO_ROOT / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, home / "dagster.yaml")
    settings.use_dagster_home(home)
    return home


def run_config(profile: str, extra: dict[str, dict[str, Any]] | None = None) -> dict:
    ops = {name: {"config": {"profile": profile}}
           for name in ("tuning_study", "trained_agents", "evaluation_report")}
    ops["challenger_model"] = {"config": {"profile": profile}}
    for name, values in (extra or {}).items():
        ops.setdefault(name, {"config": {}})["config"].update(values)
    return {"ops": ops}


def job_plan(partitions: tuple[str, ...] = ("baseline", "tuned")
             ) -> list[tuple[str, str | None, list[str]]]:
    """The runs of the whole graph in order, as (job, partition, assets whose config it takes);
    scripts/stack_drive.py launches the same plan through the webserver of the compose stack."""
    plan = [("tune", None, ["tuning_study"])] if "tuned" in partitions else []
    plan += [("retrain", p, ["trained_agents", "evaluation_report"]) for p in partitions]
    plan += [("promote", None, ["challenger_model", "production_model"]),
             ("monitor", None, ["production_monitoring"])]
    return plan


def materialize_all(profile: str = "quick", instance=None,
                    extra_config: dict[str, dict[str, Any]] | None = None,
                    partitions: tuple[str, ...] = ("baseline", "tuned")) -> list:
    """Tune (when the tuned candidate is wanted), train and evaluate each candidate, promote,
    then monitor the champion for drift; each a run of the named job, launched as the UI
    launches it. Returns the runs in order."""
    import dagster as dg

    from tennis_assets.defs.launch import JobLauncher

    if instance is None:
        ensure_dagster_home()
        with dg.DagsterInstance.get() as instance:
            return materialize_all(profile, instance, extra_config, partitions)
    ops = run_config(profile, extra_config)["ops"]
    runs = []
    with JobLauncher.open(instance) as launcher:
        for job_name, partition, assets in job_plan(partitions):
            if job_name == "monitor" and not _has_champion(instance):
                break  # nothing to watch
            print(f"[pipeline] {job_name}{f' [{partition}]' if partition else ''} ...",
                  flush=True)
            run = launcher.run(
                job_name, partition=partition,
                # INFO, not the default DEBUG: a person reads this console, not every event.
                run_config={"ops": {k: v for k, v in ops.items() if k in assets},
                            "loggers": {"console": {"config": {"log_level": "INFO"}}}},
                tags={"trigger": "tennis_assets.pipeline"})
            runs.append(run)
    return runs


def _has_champion(instance) -> bool:
    import dagster as dg

    return bool(instance.fetch_materializations(dg.AssetKey("production_model"),
                                                limit=1).records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tennis_assets.pipeline",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["tiny", "quick", "full"], default="quick")
    parser.add_argument("--candidate", choices=["baseline", "tuned"], action="append",
                        help="train and evaluate only this candidate (repeatable; default both)")
    args = parser.parse_args(argv)
    home = ensure_dagster_home()
    partitions = tuple(dict.fromkeys(args.candidate or ("baseline", "tuned")))
    runs = materialize_all(args.profile, partitions=partitions)
    from tennis_assets.defs.store import ModelStore

    store = ModelStore()
    print()
    for run in runs:
        print(f"{run.job:13s} [{run.partition or '-':8s}] run {run.run_id}: {run.status}")
    for partition, report in sorted(store.latest_reports().items()):
        ev = report["evaluation"]
        print(f"  {partition:8s} greedy mean {ev['mean']:.3f} over {ev['episodes']} fresh "
              f"episodes; gates {report['gates']}")
    from tennis_assets.tracking.mlflow_tracking import default_tracking_uri

    champion = store.production_pointer()
    if champion.exists():
        doc = json.loads(champion.read_text())
        print(f"\nchampion         : {doc['model_name']} v{doc['version']} ({doc['partition']}, "
              f"greedy mean {doc['eval_mean']:.3f}); pointer {champion}")
    else:
        print("\nchampion pointer : none promoted")
    from tennis_assets.settings import data_dir

    latest = data_dir() / "monitoring" / "latest.json"
    if any(r.job == "monitor" and r.success for r in runs) and latest.exists():
        drift = json.loads(latest.read_text())
        print(f"drift monitoring : v{drift['model_version']} mean {drift['mean']:.3f} vs baseline "
              f"{drift['baseline_mean']:.3f}, p={drift['p_value']:.2g}: {drift['severity']}")
    print(f"reports          : {store.root() / 'evaluation_report'}/<candidate>/latest.json")
    print(f"Dagster UI       : DAGSTER_HOME={home} dagster dev   (from {REPO_ROOT})")
    uri = default_tracking_uri()
    if uri.startswith("http"):
        print(f"MLflow UI        : {uri}")
    else:
        print(f"MLflow UI        : mlflow ui --backend-store-uri {uri}")
    # Success means a champion exists now (promoted by this run or kept from an earlier one)
    # and its monitoring ran; drift itself is a finding the monitoring check reports.
    return 0 if runs and all(r.success for r in runs if r.job in ("promote", "monitor")) \
        and any(r.job == "monitor" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
