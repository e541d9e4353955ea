"""Ray Tune as a second tuning engine: the study's trials run on a Ray cluster.

For a study that outgrows Dagster worker steps on one machine: Ray places each trial (a short
``train()`` run, one CPU) on whichever node of its cluster has room, a local instance by
default or an existing cluster by address. Searchers: OptunaSearch (with any of the study's
samplers), HyperOptSearch (Hyperopt's TPE) or random points; schedulers: FIFO, ASHA (stops weak
trials at rungs of updates) or population-based training (PBT), which Optuna lacks: trials train
side by side, and at every rung the weaker ones copy a stronger one's state (its resume
checkpoint, this project's safetensors format), perturb its hyperparameters and go on training
from there.

A trial trains in ``SEGMENTS`` segments, each continuing the last one's resume checkpoint
(``train(resume_from=...)``, replay buffer included), and reports its greedy mean after each
with a buffer-less copy of that checkpoint: what ASHA judges and PBT exploits. Every Ray trial
is then recorded as a trial of the Optuna study (parameters, score, intermediate greedy means,
state, tags), so the study's summary, its MLflow run and its best parameters are the same
whichever engine ran. A trial that PBT changed records its final hyperparameters and the trials
it continued from. Needs the ``ray`` extra; no Dagster here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Reports per trial: the rungs at which ASHA may stop a trial and PBT may exploit one.
SEGMENTS = 4
METRIC = "greedy_mean"
RESUME_FILE = "resume.safetensors"
OWNER_FILE = "owner.json"
# PBT's explore step multiplies a float hyperparameter by one of these (Ray's default).
PBT_FACTORS = (1.2, 0.8)


def check_ray_choices(searcher: str, scheduler: str, multi_objective: bool,
                      n_workers: int, params: Sequence[str] | None = None) -> None:
    """The engine's choices, before any work (cheap: imports nothing heavy unless PBT must
    check ``params``)."""
    if multi_objective:
        raise ValueError("engine=ray tunes one objective: multi_objective needs engine=optuna")
    if n_workers != 1:
        raise ValueError(f"n_workers={n_workers}: with engine=ray, Ray runs the trials in "
                         "parallel on its cluster; n_workers is the optuna engine's")
    if scheduler == "pbt" and searcher != "random":
        raise ValueError(f"ray_searcher={searcher!r} with ray_scheduler=pbt: PBT explores by "
                         "perturbing its population's trials; use ray_searcher=random")
    if scheduler == "pbt":
        _pbt_params(params)


def check_installed(searcher: str) -> None:
    """Ray Tune (and Hyperopt for its searcher) are installed: the ``ray`` extra."""
    from importlib.util import find_spec

    missing = [m for m in ("ray", *(("hyperopt",) if searcher == "hyperopt" else ()))
               if find_spec(m) is None]
    if missing:
        raise ValueError(f"engine=ray needs {' and '.join(missing)}: "
                         "pip install 'tennis-assets[ray]'")


def _pbt_params(params: Sequence[str] | None) -> list[str]:
    """The tuned parameters PBT may change mid-trial: RETUNABLE (a resumed checkpoint accepts
    other values of them)."""
    from tennis_assets.training.checkpoints import RETUNABLE
    from tennis_assets.tuning import SEARCH_SPACE

    names = list(params) if params is not None else list(SEARCH_SPACE)
    mutable = [n for n in names if n in RETUNABLE]
    if not mutable:
        raise ValueError(f"ray_scheduler=pbt perturbs {list(RETUNABLE)} while trials run; "
                         f"params={names} tunes none of them")
    return mutable


def _space(names: Sequence[str]) -> dict[str, Any]:
    from ray import tune

    from tennis_assets.tuning import SEARCH_SPACE

    out = {}
    for name in names:
        kind, space, log_scale = SEARCH_SPACE[name]
        if kind == "float":
            out[name] = (tune.loguniform if log_scale else tune.uniform)(*space)
        else:
            out[name] = tune.choice(list(space))
    return out


def _clip_to_space(config: dict[str, Any]) -> dict[str, Any]:
    """PBT's perturbed values, kept inside the search space (so the Optuna study can hold them
    and the learner accepts them)."""
    from tennis_assets.tuning import SEARCH_SPACE

    for name, (kind, space, _) in SEARCH_SPACE.items():
        if kind == "float" and name in config:
            config[name] = min(max(float(config[name]), space[0]), space[1])
    return config


def _searcher(name: str, sampler: str, seed: int, names: Sequence[str],
              baseline: dict[str, Any] | None):
    points = [baseline] if baseline else None
    if name == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        from tennis_assets.tuning import make_sampler

        return OptunaSearch(metric=METRIC, mode="max", sampler=make_sampler(sampler, seed),
                            points_to_evaluate=points)
    if name == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        from tennis_assets.tuning import STARTUP_TRIALS

        return HyperOptSearch(metric=METRIC, mode="max", random_state_seed=seed,
                              n_initial_points=STARTUP_TRIALS, points_to_evaluate=points)
    return None  # Ray's own random points


def _scheduler(name: str, names: Sequence[str]):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    if name == "asha":
        # Rungs at the first, second and fourth segment: a trial is judged after a quarter of
        # its budget at the earliest, as the Optuna engine's pruners wait for their warm-up.
        return ASHAScheduler(time_attr="training_iteration", metric=METRIC, mode="max",
                             max_t=SEGMENTS, grace_period=1, reduction_factor=2)
    if name == "pbt":
        return PopulationBasedTraining(
            time_attr="training_iteration", metric=METRIC, mode="max",
            perturbation_interval=1, hyperparam_mutations=_space(_pbt_params(names)),
            quantile_fraction=0.25, resample_probability=0.25,
            perturbation_factors=PBT_FACTORS, custom_explore_fn=_clip_to_space,
            # Synchronous: every member reaches the quarter before the weaker ones copy the
            # stronger. Asynchronous PBT compares only members running at that moment, and
            # trials that Ray runs one after another (fewer CPUs than members) never meet.
            synch=True, log_config=False)
    return FIFOScheduler()


def _segment_budget(train_config, k: int):
    """The budget that ends segment ``k`` (1..SEGMENTS) of a trial: the trial's update and time
    budgets split evenly (``train`` counts both over a resumed run), with a greedy evaluation
    in every segment of an update budget (a report without one would say nothing new)."""
    changes = {}
    if train_config.max_updates is not None:
        step = max(1, math.ceil(train_config.max_updates / SEGMENTS))
        changes["max_updates"] = min(train_config.max_updates, step * k)
        changes["eval_every_updates"] = min(train_config.eval_every_updates, step)
    if train_config.max_seconds is not None:
        changes["max_seconds"] = train_config.max_seconds * k / SEGMENTS
    return train_config.replace(**changes)


def trial_function(config: dict[str, Any], agent_json: str, train_json: str,
                   params: Sequence[str], env_json: str = "{}") -> None:
    """One Ray trial (runs in a Ray worker process): SEGMENTS segments of ``train``, each
    reported with its resume checkpoint. Started from a checkpoint (PBT's exploit, or Ray
    resuming a paused trial), it continues that checkpoint's run under this trial's values."""
    import ray
    from ray import tune

    from tennis_assets.agents import AgentConfig
    from tennis_assets.envs import EnvironmentConfig
    from tennis_assets.files import read_json_object
    from tennis_assets.training import TrainConfig, train
    from tennis_assets.training.checkpoints import without_buffer

    trial_id = tune.get_context().get_trial_id()
    # The node this trial runs on: which machine of a multi-node cluster did the work (several
    # nodes may share a host, so the hostname alone does not say).
    node_id = ray.get_runtime_context().get_node_id()
    agent = AgentConfig.from_dict(json.loads(agent_json)).replace(
        **{name: config[name] for name in params})
    base = TrainConfig.from_dict(json.loads(train_json))
    environment = EnvironmentConfig.from_dict(json.loads(env_json))
    with tempfile.TemporaryDirectory(prefix="tennis-ray-trial-") as work:
        resume = Path(work) / RESUME_FILE
        started_from: list[str] = []
        start = tune.get_checkpoint()
        if start is not None:
            with start.as_directory() as folder:
                shutil.copyfile(Path(folder) / RESUME_FILE, resume)
                owner = read_json_object(Path(folder) / OWNER_FILE,
                                         "the Ray checkpoint's owner record")
            started_from = list(owner["lineage"]) + [owner["trial_id"]]
        # A finished donor's state still gets one report here: its last segment again, which
        # stops at once (its budget is spent) and records the state this trial now holds.
        segment = min(int(owner["segment"]) + 1, SEGMENTS) if start is not None else 1
        for k in range(segment, SEGMENTS + 1):
            cfg = _segment_budget(base, k).replace(
                checkpoint_path=str(resume), checkpoint_every_seconds=0.0,
                checkpoint_include_buffer=True, final_eval_episodes=0)
            result = train(agent, cfg, progress=False, environment=environment,
                           resume_from=str(resume) if resume.exists() else None, retune=True)
            greedy = result.eval_history["greedy_mean"]
            score = float(greedy.iloc[-1]) if len(greedy) else 0.0
            with tempfile.TemporaryDirectory(prefix="tennis-ray-report-") as report:
                without_buffer(resume, Path(report) / RESUME_FILE)
                (Path(report) / OWNER_FILE).write_text(json.dumps(
                    {"trial_id": trial_id, "segment": k,
                     "lineage": [t for t in started_from if t != trial_id]}))
                tune.report({METRIC: score, "best_greedy_mean": _finite(result.best_greedy_mean),
                             "updates": result.updates, "seconds": result.seconds,
                             "episodes": result.episodes, "stop_reason": result.stop_reason,
                             "segment": k, "trial": trial_id, "node_id": node_id,
                             "continued_from": ",".join(t for t in started_from
                                                        if t != trial_id)},
                            checkpoint=tune.Checkpoint.from_directory(report))


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def _connect(address: str, num_cpus: int | None) -> bool:
    """Ray for this study: the cluster at ``address``, the instance this process already
    started (tests, notebooks), or a new local one. True when this call connected (to the
    cluster, or to the instance it started), so the caller disconnects again: a long-lived
    process (a code server, a notebook) must not keep a driver on the cluster."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        return True
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    return True


def run_ray_study(study, n_trials: int, agent_config, train_config,
                  params: Sequence[str] | None = None, searcher: str = "optuna",
                  scheduler: str = "asha", sampler: str = "tpe", seed: int = 0,
                  address: str = "", storage_path: str | os.PathLike | None = None,
                  batch: str | None = None, num_cpus: int | None = None,
                  on_trial: Callable[[Any, Any], None] | None = None,
                  time_budget_s: float | None = None, baseline_first: bool = True,
                  environment: Any = None) -> list[int]:
    """Run ``n_trials`` trials on Ray and record each in ``study`` (an Optuna study, as
    :func:`tennis_assets.tuning.open_study` opens it); the numbers of the recorded trials.
    ``batch`` tags them as the Optuna engine's worker 0 would be tagged, so
    ``tuning.check_batch`` and ``tuning.summarize`` account for them the same way.
    time_budget_s: Ray stops the study then, trials in flight included (those not finished are
    recorded as pruned). baseline_first: a new study's first point is the baseline
    configuration (searchers only; PBT samples its population)."""
    from ray import tune

    from tennis_assets.tuning import SEARCH_SPACE, baseline_params, check_params

    names = check_params(list(params) if params is not None else list(SEARCH_SPACE))
    check_ray_choices(searcher, scheduler, False, 1, names)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"tuning n_trials={n_trials!r}: must be an integer >= 1")
    # The baseline configuration first in a new study, as the Optuna engine does.
    baseline = baseline_params(agent_config, names) \
        if baseline_first and not study.get_trials(deepcopy=False) else None
    if baseline is not None and set(baseline) != set(names):
        baseline = None  # the baseline lies outside the search space: nothing to evaluate
    started = _connect(address, num_cpus)
    try:
        root = str(storage_path) if storage_path else tempfile.mkdtemp(prefix="tennis-ray-")
        if "://" not in root:
            root = str(Path(root).resolve())  # Ray wants an absolute path or a URI
        trainable = tune.with_resources(
            tune.with_parameters(trial_function, agent_json=json.dumps(agent_config.to_dict()),
                                 train_json=json.dumps(train_config.to_dict()), params=names,
                                 env_json=json.dumps(environment.to_dict()
                                                     if environment is not None else {})),
            {"cpu": 1})
        if scheduler == "pbt":
            import random

            # Ray's PBT draws its explore steps from the random module: seeded, a study is
            # repeatable up to the order in which trials report.
            random.seed(seed)
        tuner = tune.Tuner(
            trainable, param_space=_space(names),
            tune_config=tune.TuneConfig(
                # A trial's Ray worker goes on to the next trial (or PBT's restart of one)
                # without a new process, which would import torch and the simulator again.
                reuse_actors=True, time_budget_s=time_budget_s,
                num_samples=n_trials, search_alg=_searcher(searcher, sampler, seed, names,
                                                           baseline),
                scheduler=_scheduler(scheduler, names)),
            run_config=tune.RunConfig(
                name=f"{study.study_name}-{batch or 'run'}", storage_path=root,
                # A trial ends after its last segment's report; without this PBT would
                # exploit on that report too and restart finished trials without end.
                stop={"segment": SEGMENTS}, verbose=0))
        grid = tuner.fit()
        return _record(study, grid, names, searcher, scheduler, batch, baseline, on_trial)
    finally:
        if started:
            import ray

            ray.shutdown()


def _record(study, grid, names: Sequence[str], searcher: str, scheduler: str,
            batch: str | None, baseline: dict[str, Any] | None,
            on_trial: Callable[[Any, Any], None] | None) -> list[int]:
    """Each Ray trial as a finished trial of the Optuna study, in the order Ray created them."""
    import optuna

    from tennis_assets.tuning import SEARCH_SPACE

    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    for name in names:
        kind, space, log_scale = SEARCH_SPACE[name]
        if kind == "float":
            low, high = space
            distributions[name] = optuna.distributions.FloatDistribution(low, high, log=log_scale)
        else:
            distributions[name] = optuna.distributions.CategoricalDistribution(list(space))
    numbers = []

    def is_baseline(r) -> bool:
        return baseline is not None and r.config is not None and \
            {name: r.config.get(name) for name in names} == baseline
    # The baseline first, as the Optuna engine runs it first in a new study; the others in the
    # order they first reported (Ray's trial ids are random). Two trials started together
    # report in either order, so the first report alone does not find the baseline.
    results = sorted(grid, key=lambda r: (not is_baseline(r),
                                          r.metrics_dataframe is None or
                                          not len(r.metrics_dataframe),
                                          r.metrics_dataframe["timestamp"].min()
                                          if r.metrics_dataframe is not None and
                                          len(r.metrics_dataframe) else 0, r.path))
    marked = False
    for result in results:
        if result.config is None:
            continue  # never started: the time budget ran out first
        history = result.metrics_dataframe
        metrics = result.metrics or {}
        segments = int(metrics.get("segment", 0) or 0)
        if result.error is not None or history is None or not len(history):
            state, value = optuna.trial.TrialState.FAIL, None
        elif segments < SEGMENTS:
            state, value = optuna.trial.TrialState.PRUNED, None  # stopped early by ASHA
        else:
            state = optuna.trial.TrialState.COMPLETE
            value = float(history["best_greedy_mean"].max())
        config = {name: result.config[name] for name in names}
        continued = sorted({t for cell in (history["continued_from"] if history is not None
                                           and "continued_from" in history else [])
                            for t in str(cell).split(",") if t})
        attrs = {"engine": "ray", "ray_searcher": searcher, "ray_scheduler": scheduler,
                 "ray_trial_id": str(metrics.get("trial") or Path(result.path).name),
                 "seconds": float(metrics.get("seconds", 0.0) or 0.0),
                 "updates": int(metrics.get("updates", 0) or 0),
                 "episodes": int(metrics.get("episodes", 0) or 0),
                 "stop_reason": str(metrics.get("stop_reason", "")),
                 "continued_from": continued, "worker": 0,
                 "worker_pid": int(metrics.get("pid", 0) or 0),
                 "host": str(metrics.get("hostname", "")),
                 "ray_node_id": str(metrics.get("node_id", "")),
                 "ray_node_ip": str(metrics.get("node_ip", ""))}
        if batch is not None:
            attrs["batch"] = batch
        if baseline is not None and not marked and config == baseline:
            attrs["baseline"] = marked = True
        intermediate = {}
        if history is not None and len(history):
            for _, row in history.iterrows():
                intermediate[int(row["updates"])] = float(row[METRIC])
        trial = optuna.trial.create_trial(
            state=state, value=value, params=config, distributions=distributions,
            user_attrs=attrs, intermediate_values=intermediate)
        study.add_trial(trial)
        recorded = study.get_trials(deepcopy=False)[-1]
        numbers.append(recorded.number)
        if on_trial is not None:
            on_trial(study, recorded)
    return numbers
