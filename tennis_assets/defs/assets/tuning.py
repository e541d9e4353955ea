"""The Optuna study as a fan-out of worker steps over one shared storage.

``tuning_study`` is a graph-backed asset: ``create_study`` creates (or resumes) the study and
splits the run's trials into exact shares, one ``tune_trials`` step per share (a
``DynamicOut``), and ``summarize_study`` collects them and records the study. Each worker is its
own step, so the multiprocess executor runs it in its own process and ``docker_executor`` in its
own container; the ``training`` pool decides how many run at once. The ``tuning_worker`` job
joins a study that is already running with more trials, from anywhere that reaches its storage.
With ``engine: ray`` the one worker step hands its trials to a Ray cluster
(tennis_assets.ray_tuning), which records them in the same study.
"""

import os
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

import dagster as dg

from tennis_assets.files import atomic_write_json, read_json
from tennis_assets.redaction import redact_url

from ..config import TuningConfig
from ..metadata import frame_md, image_md
from ..resources import MlflowResource, OptunaResource

HANDOFF_IO = "tuning_handoff_io_manager"


class HandoffIOManager(dg.ConfigurableIOManagerFactory):
    """Small JSON values between the study's steps (the shares, the trials each worker ran),
    one file per step output under ``base_dir`` (default: the instance's storage directory,
    where Dagster's own filesystem IO manager writes). Every step of a run must see the same
    folder: with ``docker_executor`` across machines, mount it from shared storage."""

    base_dir: str = ""

    def create_io_manager(self, context: dg.InitResourceContext) -> "_JsonHandoff":
        if self.base_dir:
            base = Path(self.base_dir)
        elif context.instance is not None:
            base = Path(context.instance.storage_directory())
        else:
            raise RuntimeError("HandoffIOManager: no Dagster instance to keep the hand-off "
                               "beside; set base_dir")
        return _JsonHandoff(base / "tuning_handoff")


class _JsonHandoff(dg.IOManager):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, context: dg.OutputContext) -> Path:
        return self.root.joinpath(*context.get_identifier()).with_suffix(".json")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        atomic_write_json(self._path(context), obj)

    def load_input(self, context: dg.InputContext) -> Any:
        if context.upstream_output is None:
            raise RuntimeError(f"input {context.name!r}: no step output to read it from")
        return read_json(self._path(context.upstream_output), "the tuning hand-off",
                         "re-execute the tuning run")


def _storage(core, optuna_storage: OptunaResource) -> tuple[str, str]:
    """(the study's storage URL, the same with any password masked)."""
    if core.storage:
        return core.storage, redact_url(core.storage)
    return optuna_storage.url(), optuna_storage.display()


def _study_args(core) -> dict[str, Any]:
    from tennis_assets.tuning import prune_warmup

    return {"sampler": core.sampler, "pruner": core.pruner,
            "multi_objective": core.multi_objective,
            "warmup_updates": prune_warmup(core.trial_max_updates)}


@dg.op(out=dg.DynamicOut(dict, io_manager_key=HANDOFF_IO),
       description="Create or resume the study; one share of this run's trials per worker.")
def create_study(context: dg.OpExecutionContext, config: TuningConfig,
                 optuna_storage: OptunaResource, mlflow: MlflowResource):
    # mlflow is unused here: asking for it checks the tracking store at the tuning run's first
    # step, before the trials, not at summarize_study after them.
    del mlflow
    from tennis_assets import tuning

    core = config.core()
    n_trials = core.n_trials
    url, shown = _storage(core, optuna_storage)
    if core.engine == "ray":
        from tennis_assets.ray_tuning import check_installed

        try:
            check_installed(core.ray_searcher)
        except ValueError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
    # Created here, once, so that workers only ever join it (no race to create tables or study).
    study = tuning.open_study(core.study_name, url, seed=core.sampler_seed, **_study_args(core))
    # Ray's searchers take the baseline as their first point to evaluate instead.
    if core.engine == "optuna" and \
            tuning.enqueue_baseline(study, config.build()[0], core.params):
        context.log.info("new study: its first trial is the baseline configuration")
    shares = tuning.split_trials(n_trials, core.n_workers)
    context.log.info(f"study {core.study_name!r} in {shown}: "
                     f"{n_trials} more trial(s) in {len(shares)} worker(s) of "
                     f"{shares}")
    for worker, n in enumerate(shares):
        # The batch is the run that asked for the trials: a re-execution of a failed worker
        # reuses this output and so its batch, and completes that worker's share exactly.
        yield dg.DynamicOutput({"batch": context.run_id, "worker": worker, "n_trials": n},
                               mapping_key=f"w{worker}")


def _run_share(context, config: TuningConfig, url: str, n_trials: int, batch: str,
               worker: int, sampler_seed: int, create: bool) -> list[int]:
    from tennis_assets import tuning

    core, environment = config.core(), config.environment_config()
    agent, train = config.build()
    study = tuning.open_study(core.study_name, url, seed=sampler_seed, create=create,
                              **_study_args(core))

    def on_trial(study, trial) -> None:
        context.log.info(f"trial {trial.number}: {trial.state.name} values={trial.values} "
                         f"params={trial.params}")

    if core.engine == "ray":
        from tennis_assets import ray_tuning, settings

        address = core.ray_address or settings.ray_address()
        context.log.info(f"trials on Ray at {redact_url(address) or 'a local instance'}: "
                         f"{core.ray_searcher} searcher, {core.ray_scheduler} scheduler")
        numbers = ray_tuning.run_ray_study(
            study, n_trials, agent, train, params=core.params,
            searcher=core.ray_searcher, scheduler=core.ray_scheduler,
            sampler=core.sampler, seed=sampler_seed, address=address,
            storage_path=settings.ray_storage(), batch=batch, on_trial=on_trial,
            environment=environment)
    else:
        numbers = tuning.optimize(study, n_trials, agent, train, params=core.params,
                                  multi_objective=core.multi_objective, on_trial=on_trial,
                                  batch=batch, worker=worker, environment=environment)
    context.log.info(f"worker {worker} (pid {os.getpid()}) ran trials {numbers}")
    return numbers


@dg.op(out=dg.Out(dict, io_manager_key=HANDOFF_IO), pool="training",
       tags={"stage": "tuning"},
       description="One worker: runs its share of trials against the shared study storage.")
def tune_trials(context: dg.OpExecutionContext, config: TuningConfig,
                optuna_storage: OptunaResource, share: dict) -> dict:
    # Distinct seeds: workers that sample at the same moment must not propose the same points.
    core = config.core()
    numbers = _run_share(context, config, _storage(core, optuna_storage)[0], share["n_trials"],
                         share["batch"], share["worker"], core.sampler_seed + share["worker"],
                         create=False)
    return {"batch": share["batch"], "worker": share["worker"], "n_trials": share["n_trials"],
            "trials": numbers, "pid": os.getpid()}


@dg.op(description="Check that every trial of this run is accounted for; record the study in "
                   "MLflow and as the asset's value.")
def summarize_study(context: dg.OpExecutionContext, config: TuningConfig,
                    optuna_storage: OptunaResource, mlflow: MlflowResource,
                    workers: list[dict]) -> dg.Output[dict]:
    from tennis_assets import tuning
    from tennis_assets.tracking import run_tags

    core = config.core()
    url, storage = _storage(core, optuna_storage)
    study = tuning.open_study(core.study_name, url, seed=core.sampler_seed, create=False,
                              **_study_args(core))
    try:
        tuning.check_batch(study, workers[0]["batch"], workers)
    except ValueError as exc:
        raise dg.Failure(str(exc), metadata={"workers": dg.MetadataValue.json(workers)}) from None
    summary = tuning.summarize(study, workers[0]["batch"])
    tags = run_tags(context.run.run_id, asset="tuning_study")
    with mlflow.start_run("tuning_study", tags) as run, tempfile.TemporaryDirectory() as tmp:
        # The storage goes in redacted (optuna_storage.display()), never as configured.
        skip = {"params", "storage"} | ({"ray_searcher", "ray_scheduler", "ray_address"}
                                        if core.engine != "ray" else set())
        params = core.model_dump(exclude=skip)
        report = tuning.track_study(run, study, summary, tmp, {
            **params, "storage": storage, "n_workers": len(workers),
            "params": ",".join(core.params or sorted(tuning.SEARCH_SPACE))})
        pictures = {name: image_md(report[name], name.replace("_", " "))
                    for name in ("optimization_history", "param_importances")}

    value = {"study_name": core.study_name, "storage": storage, **summary,
             "min_completed_trials": core.min_completed_trials,
             "multi_objective": core.multi_objective, "mlflow_run_id": run.run_id,
             "n_workers": len(workers), "engine": core.engine}
    extra = {}
    if core.engine == "ray":
        # The Ray nodes this run's trials ran on: a multi-node cluster shows more than one.
        value["ray_nodes"] = sorted({t.user_attrs.get("ray_node_id") or "?" for t in
                                     tuning.batch_trials(study, workers[0]["batch"])})
        extra["ray_nodes"] = dg.MetadataValue.json(value["ray_nodes"])
    return dg.Output(value, metadata={**extra,
        "best_score": dg.MetadataValue.float(round(summary["best_score"] or 0.0, 4)),
        "best_params": dg.MetadataValue.json(value["best_params"]),
        "trials": summary["n_trials"], "complete_trials": summary["n_complete"],
        "pruned_trials": summary["n_pruned"], "run_trials": len(summary["run_trials"]),
        "run_complete_trials": summary["run_complete"],
        "workers": dg.MetadataValue.json(sorted(workers, key=lambda w: w["worker"])),
        "summary": frame_md(tuning.trials_frame(study)), **pictures,
        "storage": dg.MetadataValue.text(storage),
        "mlflow_run": dg.MetadataValue.url(run.url) if run.url else dg.MetadataValue.text("-"),
        "mlflow_run_id": dg.MetadataValue.text(run.run_id),
    })


@dg.config_mapping(config_schema=TuningConfig.to_config_schema())
def _tuning_config(values: dict) -> dict:
    # One TuningConfig for the whole asset, as before it was a graph: the launchpad shows it at
    # ops.tuning_study.config, and every step gets the same values. Built here, not by Dagster
    # (a TuningConfig-annotated mapping), so that a bad value is a config error naming its field
    # at launch: Dagster reports anything else a mapping raises as an "unexpected error".
    from ..config import build_config

    build_config(TuningConfig, values, "ops.tuning_study.config")
    values = {"config": dict(values)}
    return {"create_study": values, "tune_trials": values, "summarize_study": values}


def _handoff_resource() -> dg.ResourceDefinition:
    # Bound to the asset so that every Definitions and test that loads the asset gets it;
    # resource_defs on assets is a beta parameter, whose warning says nothing to a user here.
    return HandoffIOManager().get_resource_definition()


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.graph_asset(
        group_name="candidates",
        kinds={"optuna", "mlflow"},
        tags={"stage": "tuning"},
        config=_tuning_config,
        resource_defs={HANDOFF_IO: _handoff_resource()},
    )
    def tuning_study():
        """Optuna study over the learner's hyperparameters; each trial is a short training run.

        TPE sampling and patient median pruning on intermediate greedy means by default (or
        CMA-ES, NSGA-II, QMC, GP; Hyperband or successive halving); with ``engine: ray`` the
        trials run on a Ray cluster (OptunaSearch or HyperOptSearch, ASHA or population-based
        training) and land in the same study. The first trial of a new study is the baseline
        configuration; with
        ``multi_objective`` it maximises score and minimises training seconds. The study lives in
        the configured storage (a journal file in the data directory by default), so a new run adds
        trials to it. ``n_workers`` worker steps share the run's trials exactly; they run in
        parallel as far as the executor and the ``training`` pool allow. Value: the best parameters,
        which the ``tuned`` partition of trained_agents uses.
        """
        workers = create_study().map(tune_trials)
        return summarize_study(workers.collect())


class TuningWorkerConfig(TuningConfig):
    """Join a running study: the tuning_study asset's fields (``storage``: where the study
    is; empty: the optuna_storage resource's)."""


@dg.op(pool="training", tags={"stage": "tuning"},
       description="Join an existing study by name and storage and run n_trials more trials.")
def join_study(context: dg.OpExecutionContext, config: TuningWorkerConfig,
               optuna_storage: OptunaResource) -> None:
    core = config.core()
    url = _storage(core, optuna_storage)[0]
    # A seed of its own per run: two joined workers must not replay each other's samples.
    seed = core.sampler_seed + 1000 + zlib.crc32(context.run_id.encode()) % 1_000_000
    numbers = _run_share(context, config, url, core.n_trials, batch=context.run_id, worker=0,
                         sampler_seed=seed, create=False)
    context.log.info(f"joined study {core.study_name!r} in {redact_url(url)}: ran trials "
                     f"{numbers}")


@dg.job(tags={"stage": "tuning"},
        description="A tuning worker that joins a running study (tuning_study's, by default) "
                    "and adds n_trials trials; launch it as often as you have machines.")
def tuning_worker():
    join_study()
