"""Materialize the whole asset graph on the instance in ``$DAGSTER_HOME`` (default
``<data dir>/dagster``) by submitting its named jobs as the UI does, so the runs, asset values
and check results appear in ``dagster dev`` afterwards, each run on its job's page.

The command starts ``dagster dev`` (webserver, daemon, one code server) for its own life and
submits each run through the webserver's GraphQL API (dagster-graphql's public client); the
daemon dequeues it and the run launcher starts its run worker (tennis_assets.defs.runs).

    python -m tennis_assets.pipeline --profile quick

Five runs, the same jobs the UI, the schedule and the sensors launch: ``tune`` (the Optuna
study), ``retrain`` for each candidate (train, evaluate against the champion, gates),
``promote`` (the best accepted candidate becomes challenger, is replayed through the registry,
and only then becomes champion), then ``monitor`` (the champion tested for drift). Separate
runs, so one candidate failing its gates does not stop the other from being promoted. The
baseline candidate trains while the study tunes (each training step holds one core; the
``training`` pool gets one slot per core), so the command takes about what the study and one
candidate take.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tennis_assets import settings
from tennis_assets.config.options import add_model_options, given
from tennis_assets.envs import EnvironmentConfig
from tennis_assets.files import CorruptFileError
from tennis_assets.workflow.candidate import CANDIDATES, CandidateConfig

if TYPE_CHECKING:
    from tennis_assets.defs.runs import Launcher

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


# The main command's runs are chains of steps, so they run in the run worker's process: with the
# default multiprocess executor every step spawns a process that imports the definitions, torch
# and MLflow again (main command: 115 s with forked steps, about 5 s less per run in-process).
# Parallel tuning workers (tuning_study n_workers > 1) need step processes; those fork from a
# server that imported them once.
IN_PROCESS: dict[str, Any] = {"in_process": {}}
FORKED_STEPS: dict[str, Any] = {"multiprocess": {"start_method": {"forkserver": {
    "preload_modules": ["tennis_assets.definitions", "torch", "mlflow"]}}}}


def run_config(profile: str, extra: dict[str, dict[str, Any]] | None = None) -> dict:
    ops: dict[str, dict[str, Any]] = {name: {"config": {"profile": profile}}
                                      for name in ("tuning_study", "trained_agents",
                                                   "evaluation_report")}
    ops["challenger_model"] = {"config": {"profile": profile}}
    for name, values in (extra or {}).items():
        ops.setdefault(name, {"config": {}})["config"].update(values)
    workers = ops["tuning_study"]["config"].get("n_workers", 1)
    return {"ops": ops, "execution": {"config": FORKED_STEPS if workers > 1 else IN_PROCESS}}


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: its job, partition, the assets whose config it takes, and the
    planned runs (by key) that must have finished before it starts."""

    job: str
    partition: str | None
    assets: tuple[str, ...]
    after: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.job}[{self.partition}]" if self.partition else self.job


def job_plan(partitions: tuple[str, ...] = CANDIDATES) -> list[PlannedRun]:
    """The runs of the whole graph, in an order that also works one at a time
    (scripts/stack_drive.py launches them so through the compose stack's webserver).

    The baseline candidate does not read the study, so it trains while the study tunes; the
    tuned candidate waits for the study; promotion waits for every candidate, so one failing
    its gates does not stop the other; monitoring waits for the promotion."""
    plan = [PlannedRun("tune", None, ("tuning_study",))] if "tuned" in partitions else []
    plan += [PlannedRun("retrain", p, ("trained_agents", "evaluation_report"),
                        ("tune",) if p == "tuned" else ()) for p in partitions]
    plan += [PlannedRun("promote", None, ("challenger_model", "production_model"),
                        tuple(f"retrain[{p}]" for p in partitions)),
             PlannedRun("monitor", None, ("production_monitoring",), ("promote",))]
    return plan


def size_training_pool(instance) -> int:
    """Give the ``training`` pool one slot per core (settings.training_slots) on an instance
    where nobody set its limit; a limit set in the UI or the CLI is kept. Returns the limit."""
    limits = {p.name: p for p in instance.event_log_storage.get_pool_limits()}
    current = limits.get("training")
    if current is not None and not current.from_default:
        return current.limit
    slots = settings.training_slots()
    instance.event_log_storage.set_concurrency_slots("training", slots)
    return slots


def materialize_all(profile: str = "quick",
                    extra_config: dict[str, dict[str, Any]] | None = None,
                    partitions: tuple[str, ...] = CANDIDATES,
                    launcher: Launcher | None = None) -> list:
    """Tune (when the tuned candidate is wanted), train and evaluate each candidate, promote,
    then monitor the champion for drift; each a run of the named job, submitted through the
    webserver of ``dagster dev`` (started for the command, stopped after it) as the UI submits
    it, as soon as the runs it waits for have finished (job_plan). Returns the runs in plan
    order."""
    import dagster as dg

    from tennis_assets.defs.runs import PLAN_TAG, dagster_dev

    if launcher is None:
        home = ensure_dagster_home()
        with dg.DagsterInstance.get() as instance:
            slots = size_training_pool(instance)
        print(f"[pipeline] training pool: {slots} step(s) at once", flush=True)
        started = time.monotonic()
        with dagster_dev(home, REPO_ROOT / "workspace.yaml") as dev:
            print(f"[pipeline] dagster dev answered in {time.monotonic() - started:.1f} s",
                  flush=True)
            return materialize_all(profile, extra_config, partitions, dev)
    return run_plan(launcher, job_plan(partitions), run_config(profile, extra_config),
                    tags={"trigger": "tennis_assets.pipeline", PLAN_TAG: "main command"})


def run_plan(launcher: Launcher, plan: list[PlannedRun], config: dict,
             tags: dict[str, str]) -> list:
    """Launch each planned run once the runs it waits for have finished, and wait for all."""
    from tennis_assets.defs.runs import LaunchedRun

    done: dict[str, LaunchedRun | None] = {}  # None: skipped
    running: dict[str, tuple[str, float]] = {}  # key -> (run id, start)
    with _say_what_was_running(running, launcher):
        while len(done) < len(plan):
            for step in plan:
                if step.key in done or step.key in running or \
                        not all(k in done for k in step.after):
                    continue
                if step.job == "monitor" and not _has_champion():
                    done[step.key] = None  # nothing to watch
                    continue
                run_id = launcher.launch(
                    step.job, partition=step.partition, run_config=step_config(config, step),
                    tags=tags)
                running[step.key] = (run_id, time.monotonic())
                print(f"[pipeline] {step.key} ... (run {run_id})", flush=True)
            for key, (run_id, started) in list(running.items()):
                status = launcher.status(run_id)
                if status is not None:
                    del running[key]
                    step = next(s for s in plan if s.key == key)
                    done[key] = LaunchedRun(step.job, step.partition, run_id, status)
                    print(f"[pipeline] {key}: {status} in {time.monotonic() - started:.0f} s",
                          flush=True)
            time.sleep(0.5)
    return [done[s.key] for s in plan if done.get(s.key) is not None]


def step_config(config: dict, step: PlannedRun) -> dict:
    """The run config of one planned run: its assets' part of ``config``, and INFO logs on the
    console (not the default DEBUG: a person reads this console, not every event)."""
    return {"ops": {k: v for k, v in config["ops"].items() if k in step.assets},
            "execution": config["execution"],
            "loggers": {"console": {"config": {"log_level": "INFO"}}}}


@contextlib.contextmanager
def _say_what_was_running(running: dict[str, tuple[str, float]],
                          launcher: Launcher) -> Iterator[None]:
    """On Ctrl-C, cancel the runs still in the queue (a daemon started later would launch
    them) and name the runs that were in flight: the Ctrl-C is passed on to their run workers
    (a training run saves its resume state and fails; re-executing it continues)."""
    try:
        yield
    except KeyboardInterrupt:
        cancelled = set(launcher.cancel_queued([run_id for run_id, _ in running.values()]))
        for key, (run_id, _) in running.items():
            if run_id in cancelled:
                print(f"[pipeline] interrupted: {key} (run {run_id}) was still queued and is "
                      "cancelled", flush=True)
                continue
            print(f"[pipeline] interrupted while {key} (run {run_id}) was in flight: see its "
                  "page in the Dagster UI; a training run that was interrupted keeps its "
                  "resume state for 'Re-execute from failure'", flush=True)
        raise


def _has_champion() -> bool:
    from tennis_assets.defs.store import ModelStore
    from tennis_assets.workflow.production import read_pointer

    return read_pointer(ModelStore().production_pointer()) is not None


def _check_state() -> None:
    """The state files no run of this command rewrites unless it promotes (the champion
    pointer) must be readable, else a ``CorruptFileError`` before any run starts."""
    from tennis_assets.defs.store import ModelStore
    from tennis_assets.workflow.production import read_pointer

    read_pointer(ModelStore().production_pointer())


def _print_state(runs: list) -> None:
    """The candidates' reports, the champion pointer and the drift result, as the files say."""
    from tennis_assets.defs.store import ModelStore
    from tennis_assets.settings import data_dir
    from tennis_assets.workflow.monitoring_file import SEVERITY_NAMES, read_result
    from tennis_assets.workflow.production import read_pointer

    store = ModelStore()
    for partition, report in sorted(store.latest_reports().items()):
        ev = report.evaluation
        reused = report.candidate.reused_from if report.candidate else None
        print(f"  {partition:8s} greedy mean {ev.mean:.3f} over {ev.episodes} fresh "
              f"episodes; gates {report.gates.model_dump()}"
              + (f"; reused the training of run {reused}" if reused else ""))
    pointer = store.production_pointer()
    champion = read_pointer(pointer)
    if champion is not None:
        print(f"\nchampion         : {champion.model_name} v{champion.version} "
              f"({champion.partition}, greedy mean {champion.eval_mean:.3f}); pointer {pointer}")
    else:
        print("\nchampion pointer : none promoted")
    latest = data_dir() / "monitoring" / "latest.json"
    if any(r.job == "monitor" and r.success for r in runs) and latest.exists():
        drift = read_result(latest)
        print(f"drift monitoring : v{drift.model_version} mean {drift.mean:.3f} vs baseline "
              f"{drift.baseline_mean:.3f}, p={drift.p_value:.2g}: "
              f"{SEVERITY_NAMES[drift.severity]}")
    print(f"reports          : {store.root() / 'evaluation_report'}/<candidate>/latest.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tennis_assets.pipeline",
                                     description=__doc__.split("\n\n")[0])
    add_model_options(parser, CandidateConfig, only=("profile",))
    add_model_options(parser, EnvironmentConfig)
    parser.add_argument("--candidate", choices=CANDIDATES, action="append",
                        help="train and evaluate only this candidate (repeatable; default all)")
    parser.add_argument("--wandb", choices=settings.WANDB_MODES, default=None,
                        help="W&B beside MLflow for every run (default "
                             "$TENNIS_ASSETS_WANDB_MODE, else disabled); offline runs land in "
                             "<data dir>/wandb/")
    parser.add_argument("--neptune", choices=settings.NEPTUNE_MODES, default=None,
                        help="Neptune beside MLflow (extra 'neptune'; default "
                             "$TENNIS_ASSETS_NEPTUNE_MODE, else disabled); offline runs land in "
                             "<data dir>/neptune/")
    args = parser.parse_args(argv)
    settings.use_trackers(wandb=args.wandb, neptune=args.neptune)
    started = time.monotonic()
    home = ensure_dagster_home()
    partitions = tuple(dict.fromkeys(args.candidate or CANDIDATES))
    profile = CandidateConfig(**given(args, CandidateConfig)).profile
    # The same environment for the study's trials and every candidate (checked here, before
    # any run starts).
    environment = EnvironmentConfig(**given(args, EnvironmentConfig)).changes()
    extra = {name: {"environment": environment} for name in ("tuning_study", "trained_agents")
             } if environment else None
    try:
        _check_state()
    except CorruptFileError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        runs = materialize_all(profile, partitions=partitions, extra_config=extra)
    except KeyboardInterrupt:
        print("[pipeline] interrupted", flush=True)
        return 130
    print()
    for run in runs:
        print(f"{run.job:13s} [{run.partition or '-':8s}] run {run.run_id}: {run.status}")
    try:
        _print_state(runs)
    except CorruptFileError as exc:
        # The runs are over and recorded; a state file they left unreadable is named, with
        # what to do, instead of a traceback.
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    from tennis_assets.tracking.mlflow_tracking import default_tracking_uri

    print(f"Dagster UI       : DAGSTER_HOME={home} dagster dev   (from {REPO_ROOT})")
    uri = default_tracking_uri()
    if uri.startswith("http"):
        print(f"MLflow UI        : {uri}")
    else:
        print(f"MLflow UI        : mlflow ui --backend-store-uri {uri}")
    # With the machine and its load, so the figure can be compared with the README's.
    print(f"took             : {time.monotonic() - started:.1f} s on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    # Success means a champion exists now (promoted by this run or kept from an earlier one)
    # and its monitoring ran; drift itself is a finding the monitoring check reports.
    return 0 if runs and all(r.success for r in runs if r.job in ("promote", "monitor")) \
        and any(r.job == "monitor" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
