"""Hyperparameter tuning with Optuna: each trial is a short ``train()`` run.

Single objective (default): maximise the best greedy mean over fresh episodes, with intermediate
greedy means reported so a pruner can stop weak trials early. Multi-objective: maximise that score
and minimise the training seconds (Optuna cannot prune multi-objective trials, so they run to the
end of their budget).

Storage comes from a URL: ``sqlite:///path.db`` or any SQLAlchemy RDB URL (PostgreSQL, MySQL)
for RDBStorage, a file path (``journal:path`` or ``*.log``/``*.jsonl``) for a JournalStorage
that several processes can share, ``redis://[:password@]host:port/db`` for the same journal on
a Redis server (shared by machines), or ``memory`` for a throwaway study. Several processes (or
machines) can work on one study at once: each opens it by name in a shared storage and runs an
exact share of the trials (``split_trials``, ``optimize``). No Dagster here.

A worker on an RDB storage heartbeats its running trial; a trial whose worker was killed is
failed once its heartbeat is older than the grace period (by the next worker that opens the
study or starts a trial) and re-queued once with the same parameters. The journal storage has
no heartbeat in optuna 5.0 (``JournalStorage`` does not implement ``BaseHeartbeat``): there the
next worker on the same machine that opens the study or starts a trial fails, and re-queues the
same way, each RUNNING trial whose worker process (tagged on the trial) is gone
(``fail_dead_trials``). A trial of a worker on another machine stays RUNNING until that worker's
share is run again (see ``optimize``).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from tennis_assets.tuning_config import PRUNERS, TuningConfig

log = logging.getLogger(__name__)

# Field of AgentConfig -> (kind, choices or (low, high), log scale). Learning rates, target-update
# rate, exploration, batch and network sizes, discount; the rest keep the tuned defaults, so a
# short study searches where DDPG is most sensitive.
SEARCH_SPACE: dict[str, tuple[str, Any, bool]] = {
    "actor_lr": ("float", (2e-4, 3e-3), True),
    "critic_lr": ("float", (2e-4, 3e-3), True),
    "tau": ("float", (0.005, 0.05), True),
    "noise_sigma": ("float", (0.1, 0.5), False),
    "batch_size": ("categorical", (64, 128, 256), False),
    "actor_hidden": ("categorical", (64, 128, 256), False),
    "critic_hidden": ("categorical", (64, 128, 256), False),
    "gamma": ("float", (0.95, 0.995), False),
}
# Trials before a model-based sampler (TPE, GP) takes over from random points, and NSGA-II's
# generation size: studies here are 4-20 trials, so optuna's defaults (10 trials, 50 per
# generation) would make the whole study random.
STARTUP_TRIALS = 3
NSGA2_POPULATION = 6
# The study's objective names, shown by optuna-dashboard and the optuna CLI.
METRIC_NAMES = ("greedy_mean",)
MULTI_METRIC_NAMES = ("greedy_mean", "train_seconds")


def check_params(names: Sequence[str]) -> list[str]:
    unknown = sorted(set(names) - set(SEARCH_SPACE))
    if unknown:
        raise ValueError(f"tuning params {unknown} are not in the search space; "
                         f"known: {sorted(SEARCH_SPACE)}")
    if not names:
        raise ValueError("tuning params: choose at least one parameter to tune")
    return list(names)


# Trials are training runs of tens of seconds to minutes. A beat every 20 s is one small write
# per trial; a trial is declared dead only after three missed beats, so a slow storage write or
# a busy machine is not taken for a killed worker, and a dead one is found within about a minute.
HEARTBEAT_INTERVAL_S = 20
HEARTBEAT_GRACE_S = 60
# A killed worker's trial runs once more; one that dies again stays FAIL, so a configuration
# that kills its worker (out of memory) cannot take every worker down in turn.
MAX_TRIAL_RETRIES = 1
# The tags with which ``optimize`` says which worker owns a trial.
OWNER_ATTRS = ("batch", "worker", "worker_pid", "host", "pid_namespace")
# A process's start time is known to about a second (the boot time is stored in whole seconds),
# so a pid counts as reused only when its process started clearly after the trial did.
PID_START_SLACK_S = 2.0


def check_heartbeat(heartbeat_interval: int | None, grace_period: int | None) -> None:
    for name, value in (("heartbeat_interval", heartbeat_interval),
                        ("grace_period", grace_period)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"tuning {name}={value!r}: must be a whole number of seconds >= 1 "
                             f"(or None: no heartbeat)")
    if heartbeat_interval is not None and grace_period is not None and \
            grace_period <= heartbeat_interval:
        raise ValueError(f"tuning grace_period={grace_period} must exceed "
                         f"heartbeat_interval={heartbeat_interval}, else a live trial is failed "
                         f"between two beats; use about 3x the interval")


class RetryStaleTrial:
    """Optuna's retry of a heartbeat-stale trial, without the dead worker's ownership tags:
    the copy belongs to whichever worker runs it (which tags it), not to the dead worker's
    share, whose accounting already holds the failed trial."""

    def __init__(self, max_retry: int = MAX_TRIAL_RETRIES) -> None:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study, trial) -> None:
        trial = copy.copy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in OWNER_ATTRS}
        self._retry(study, trial)


def pid_namespace() -> str:
    """What a pid is relative to: this kernel boot and pid namespace. Containers can share a
    hostname (host networking) yet not their processes; "" where there is no /proc (macOS),
    there the hostname alone names the machine."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def worker_gone(pid: int, started: datetime | None) -> bool:
    """Whether the process ``pid`` that started a trial at ``started`` (local time, as optuna
    stores it) no longer runs: it does not exist, is a zombie, or the pid now names a newer
    process."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        return started is not None and \
            proc.create_time() > started.timestamp() + PID_START_SLACK_S
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        # Another user's live process: nothing says it is gone.
        return False


def fail_dead_trials(study) -> list[int]:
    """On a storage without a heartbeat: fail the RUNNING trials whose worker ran on this
    machine and is gone, and re-queue each once as RetryStaleTrial does; their numbers."""
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    # optuna's own test for whether its loop heartbeats and fails stale trials: there the
    # heartbeat decides, and a trial is never failed (and copied) twice.
    if is_heartbeat_enabled(study._storage):
        return []
    host, namespace = socket.gethostname(), pid_namespace()
    failed: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("worker_pid")
        # A trial of another machine or container is left alone: its pid means nothing here,
        # and only a heartbeat can tell whether that worker lives. So is one not yet tagged.
        if trial.user_attrs.get("host") == host and \
                trial.user_attrs.get("pid_namespace") == namespace and \
                isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and \
                worker_gone(pid, trial.datetime_start) and fail_and_retry(study, trial):
            failed.append(trial.number)
    return failed


def fail_and_retry(study, trial) -> bool:
    """Fail the RUNNING ``trial`` (as read by this worker) and re-queue it (RetryStaleTrial);
    False where another worker that found it dead too failed it first, and so re-queued it."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        # As in optuna's fail_stale_trials: the first writer of the FAIL wins.
        return False
    dead = copy.deepcopy(storage.get_trial(trial._trial_id))
    again = len(dead.system_attrs.get("retry_history", [])) < MAX_TRIAL_RETRIES
    log.warning("tuning trial %d: its worker (pid %s on %s) is gone; marked FAIL, %s",
                dead.number, dead.user_attrs.get("worker_pid"), dead.user_attrs.get("host"),
                "re-queued" if again else
                f"not re-queued (already retried {MAX_TRIAL_RETRIES} time(s))")
    RetryStaleTrial()(study, dead)
    return True


REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_redis(url: str | None) -> bool:
    """Whether ``url`` names a Redis server (``redis://``, ``rediss://`` with TLS, or a
    ``unix://`` socket), which holds the study as an Optuna journal."""
    if not url or "://" not in url:
        return False
    return url.split("://", 1)[0].lower() in REDIS_SCHEMES


def make_storage(url: str | None, heartbeat_interval: int | None = HEARTBEAT_INTERVAL_S,
                 grace_period: int | None = HEARTBEAT_GRACE_S):
    """An Optuna storage from a URL or path (see the module docstring). An RDB storage
    heartbeats running trials every ``heartbeat_interval`` seconds (None: no heartbeat)."""
    import optuna

    check_heartbeat(heartbeat_interval, grace_period)
    if not url or url == "memory":
        return optuna.storages.InMemoryStorage()
    if is_redis(url):
        from optuna.storages.journal import JournalRedisBackend

        # The same journal as a file's, kept by a Redis server: every write is one atomic Lua
        # script there, so workers on any machine that reaches the server share the study.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.JournalStorage(JournalRedisBackend(url))
    if "://" in url and not url.startswith("journal:"):
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        from tennis_assets.settings import database_url

        if heartbeat_interval is None:
            return optuna.storages.RDBStorage(database_url(url))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                database_url(url), heartbeat_interval=heartbeat_interval,
                grace_period=grace_period, heartbeat_stale_trial_callback=RetryStaleTrial())
    path = Path(url.removeprefix("journal:")).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    from tennis_assets.optuna_journal import JournalFile

    # Optuna's journal file backend, but a record cut short by a crash never poisons the file.
    return optuna.storages.JournalStorage(JournalFile(path))


def make_sampler(name: str, seed: int, multi_objective: bool = False):
    import optuna

    # The choice is TuningConfig's to check; this only dispatches on it.
    TuningConfig.from_dict({"sampler": name, "multi_objective": multi_objective})
    with warnings.catch_warnings():
        # GP, QMC and CMA-ES's margin options are marked experimental in optuna 5.0.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                              multivariate=True)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            # CMA-ES searches the float parameters; the categorical ones (sizes) go to TPE
            # rather than to optuna's default of random, and without a warning per trial.
            return optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=1, warn_independent_sampling=False,
                independent_sampler=optuna.samplers.TPESampler(seed=seed,
                                                               n_startup_trials=STARTUP_TRIALS))
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=NSGA2_POPULATION)
        if name == "qmc":
            # Scrambled, so that two studies with different seeds cover different points.
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                              warn_independent_sampling=False,
                                              warn_asynchronous_seeding=False)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                         warn_independent_sampling=False)


# Updates before a trial may be pruned: the default learner needs about 2,000-10,000 updates
# to solve, and its greedy mean is flat near 0 for the first thousands.
PRUNE_WARMUP_UPDATES = 2_000


def prune_warmup(max_updates: int | None) -> int:
    """Warm-up of a trial budget: half of an update budget, else PRUNE_WARMUP_UPDATES."""
    return PRUNE_WARMUP_UPDATES if max_updates is None else max(1, min(PRUNE_WARMUP_UPDATES,
                                                                       max_updates // 2))


def make_pruner(name: str, warmup_updates: int = PRUNE_WARMUP_UPDATES):
    import optuna

    if name == "median":
        # Steps are update counts. No trial is judged before its warm-up: RL curves start
        # flat and noisy, and pruning at the first report (n_warmup_steps=0) killed every new
        # trial of a short study before it could learn.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup_updates,
                                           n_min_trials=2)
    if name == "hyperband":
        # Resources are updates: the smallest bracket still sees about two evaluations.
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_updates // 2),
                                              reduction_factor=3)
    if name == "successive_halving":
        # Hyperband's single most aggressive bracket: a trial is first judged after its
        # warm-up, and only the top third goes on at each rung.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup_updates),
                                                      reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"tuning pruner={name!r}: expected one of {PRUNERS}")


def baseline_params(agent_config, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The values of ``agent_config`` (the configuration the baseline candidate trains with)
    for the searched parameters that the search space can represent."""
    out = {}
    for name in (names if names is not None else SEARCH_SPACE):
        kind, space, _ = SEARCH_SPACE[name]
        value = getattr(agent_config, name)
        if (kind == "float" and space[0] <= value <= space[1]) or \
                (kind == "categorical" and value in space):
            out[name] = value
    return out


def enqueue_baseline(study, agent_config, names: Sequence[str] | None = None) -> bool:
    """Make the baseline configuration the study's first trial, so the study's best is never
    worse than the baseline on its own measure. Only for a study with no trials yet."""
    if study.get_trials(deepcopy=False):
        return False
    study.enqueue_trial(baseline_params(agent_config, names), user_attrs={"baseline": True})
    return True


def storage_for_cli(url: str | None) -> str:
    """The storage as the ``optuna`` CLI and optuna-dashboard take it (a journal file is its
    path), with any password masked."""
    from tennis_assets.redaction import redact_url

    if not url or url == "memory":
        return "memory"
    if url.startswith("journal:"):
        return url[len("journal:"):]
    return redact_url(url)


def suggest(trial, names: Sequence[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        kind, space, log = SEARCH_SPACE[name]
        if kind == "float":
            out[name] = trial.suggest_float(name, space[0], space[1], log=log)
        else:
            out[name] = trial.suggest_categorical(name, list(space))
    return out


@dataclass
class TrialScore:
    score: float
    seconds: float
    updates: int
    pruned: bool


def study_config(profile: str, **overrides: Any) -> TuningConfig:
    """The study configuration of ``profile`` with ``overrides`` (TuningConfig fields)."""
    from tennis_assets.profiles import resolve

    return resolve(TuningConfig(), profile, overrides)


def trial_configs(config: TuningConfig, profile: str,
                  environment: Any = None) -> tuple[Any, Any]:
    """(AgentConfig, TrainConfig) of one trial: the profile's baseline candidate (sized for
    ``environment``, default Tennis), trained for the trial's budget (never stopped early: the
    study compares whole budgets)."""
    from tennis_assets.workflow.candidate import candidate_configs

    agent, train = candidate_configs(profile, train_overrides={"seed": config.sampler_seed},
                                     environment=environment)
    return agent, train.replace(max_seconds=config.trial_max_seconds,
                                max_updates=config.trial_max_updates, stop_when_solved=False)


def run_trial(trial, agent_config, train_config, params: Sequence[str],
              multi_objective: bool, environment: Any = None) -> TrialScore:
    """One short training run with the trial's parameters; reports greedy means for pruning."""
    import optuna

    from tennis_assets.training import train

    agent = agent_config.replace(**suggest(trial, params))
    pruned = False

    def on_event(kind: str, info: dict[str, Any]) -> bool:
        nonlocal pruned
        if kind != "eval" or multi_objective:
            return False
        trial.report(float(info["greedy_mean"]), step=int(info["updates"]))
        pruned = trial.should_prune()
        return pruned

    result = train(agent, train_config, progress=False, callback=on_event,
                   environment=environment)
    score = result.best_greedy_mean
    if not math.isfinite(score):
        # No evaluation happened within the budget: the training average is the only signal.
        score = float(result.history["score"].tail(100).mean()) if len(result.history) else 0.0
    trial.set_user_attr("seconds", result.seconds)
    trial.set_user_attr("updates", result.updates)
    trial.set_user_attr("episodes", result.episodes)
    trial.set_user_attr("stop_reason", result.stop_reason)
    if pruned:
        raise optuna.TrialPruned(f"greedy mean {score:.3f} below the median at "
                                 f"{result.updates} updates")
    return TrialScore(score=score, seconds=result.seconds, updates=result.updates, pruned=False)


def open_study(study_name: str, storage_url: str | None, sampler: str = "tpe",
               pruner: str = "median", multi_objective: bool = False, seed: int = 0,
               create: bool = True, warmup_updates: int = PRUNE_WARMUP_UPDATES,
               heartbeat_interval: int | None = HEARTBEAT_INTERVAL_S,
               grace_period: int | None = HEARTBEAT_GRACE_S):
    """The study ``study_name`` in the storage: created if missing (``create``), else it must
    exist, which is how a worker joins a study someone else started. Trials whose heartbeat
    is stale, or (without a heartbeat) whose worker on this machine is gone, are failed (and
    re-queued) here."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions: list[Literal["maximize", "minimize"]] = \
        ["maximize", "minimize"] if multi_objective else ["maximize"]
    storage = make_storage(storage_url, heartbeat_interval, grace_period)
    if create:
        study = optuna.create_study(
            study_name=study_name, storage=storage, load_if_exists=True,
            directions=directions, sampler=make_sampler(sampler, seed, multi_objective),
            pruner=make_pruner(pruner, warmup_updates))
        if not study.metric_names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(MULTI_METRIC_NAMES if multi_objective
                                            else METRIC_NAMES))
    else:
        try:
            study = optuna.load_study(study_name=study_name, storage=storage,
                                      sampler=make_sampler(sampler, seed, multi_objective),
                                      pruner=make_pruner(pruner, warmup_updates))
        except KeyError:
            raise ValueError(f"no study {study_name!r} in {storage_for_cli(storage_url)}: a "
                             "worker joins an existing study; start it with the tune job "
                             "first") from None
    if len(study.directions) != len(directions):
        raise ValueError(f"study {study_name!r} exists with {len(study.directions)} objective(s); "
                         f"use another study name for multi_objective={multi_objective}")
    # optimize does this before each trial; doing it on open too keeps a dead worker's trial
    # from showing as RUNNING in a summary or report made without running a trial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    fail_dead_trials(study)
    return study


def split_trials(n_trials: int, n_workers: int) -> list[int]:
    """Each worker's exact share of ``n_trials``: sizes differ by at most one, none is empty."""
    if n_trials < 1 or n_workers < 1:
        raise ValueError(f"n_trials={n_trials}, n_workers={n_workers}: both must be >= 1")
    workers = min(n_workers, n_trials)
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def batch_trials(study, batch: str, worker: int | None = None) -> list:
    """Trials tagged with ``batch`` (and ``worker``) by :func:`optimize`."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("batch") == batch
            and (worker is None or t.user_attrs.get("worker") == worker)]


def optimize(study, n_trials: int, agent_config, train_config,
             params: Sequence[str] | None = None, multi_objective: bool = False,
             timeout: float | None = None, on_trial: Callable[[Any, Any], None] | None = None,
             batch: str | None = None, worker: int = 0, environment: Any = None) -> list[int]:
    """Run this process's share of trials on ``environment`` (an EnvironmentConfig; None:
    Tennis); returns the numbers of the trials it ran.

    Every trial is tagged with its process (pid, host, pid namespace), by which
    :func:`fail_dead_trials` finds a killed worker's trial; that runs before each trial here.
    With ``batch``, every trial is also tagged (batch, worker) and the share is idempotent: a
    worker that runs again under the same batch and worker index (a retried step) first counts
    the trials it already owns, marks any it left RUNNING as FAIL (its process died; no one else
    runs that worker), and runs only the rest. So a batch of N trials split into shares ends
    with exactly N trials tagged with it.
    """
    import optuna

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"tuning n_trials={n_trials!r}: must be an integer >= 1")
    names = check_params(list(params) if params is not None else list(SEARCH_SPACE))
    owned: list[int] = []
    # Before the batch's own RUNNING trials are failed below, so a dead one is also re-queued.
    fail_dead_trials(study)
    if batch is not None:
        for t in batch_trials(study, batch, worker):
            if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING):
                study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            owned.append(t.number)
    remaining = n_trials - len(owned)
    if remaining <= 0:
        return owned
    host, pid, namespace = socket.gethostname(), os.getpid(), pid_namespace()

    def objective(trial):
        if batch is not None:
            trial.set_user_attr("batch", batch)
            trial.set_user_attr("worker", worker)
        trial.set_user_attr("worker_pid", pid)
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid_namespace", namespace)
        owned.append(trial.number)
        result = run_trial(trial, agent_config, train_config, names, multi_objective,
                           environment)
        return (result.score, result.seconds) if multi_objective else result.score

    # After each trial, that is before the next one asks for a trial, so a dead worker's
    # re-queued trial can be the next one run.
    callbacks = ([on_trial] if on_trial is not None else []) + \
        [lambda s, _trial: fail_dead_trials(s)]
    # A configuration the learner rejects fails its trial, not the study.
    study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks,
                   catch=(ValueError,))
    return owned


def run_study(study_name: str, storage_url: str | None, n_trials: int, agent_config,
              train_config, params: Sequence[str] | None = None, sampler: str = "tpe",
              pruner: str = "median", multi_objective: bool = False, seed: int = 0,
              timeout: float | None = None,
              on_trial: Callable[[Any, Any], None] | None = None,
              heartbeat_interval: int | None = HEARTBEAT_INTERVAL_S,
              grace_period: int | None = HEARTBEAT_GRACE_S):
    """Create or resume ``study_name`` in the storage and run ``n_trials`` more trials."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"tuning n_trials={n_trials!r}: must be an integer >= 1")
    names = check_params(list(params) if params is not None else list(SEARCH_SPACE))
    study = open_study(study_name, storage_url, sampler=sampler, pruner=pruner,
                       multi_objective=multi_objective, seed=seed,
                       warmup_updates=prune_warmup(train_config.max_updates),
                       heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    optimize(study, n_trials, agent_config, train_config, params=names,
             multi_objective=multi_objective, timeout=timeout, on_trial=on_trial)
    return study


def check_batch(study, batch: str, workers: Sequence[Mapping[str, Any]]) -> list[int]:
    """The numbers of ``batch``'s trials, after checking that they are exactly the trials the
    workers were asked for and reported (none lost, none run twice); ValueError otherwise."""
    reported = sorted(n for w in workers for n in w["trials"])
    numbers = sorted(t.number for t in batch_trials(study, batch))
    requested = sum(w["n_trials"] for w in workers)
    if len(numbers) != requested or numbers != reported or \
            len({w["worker"] for w in workers}) != len(workers):
        raise ValueError(f"trial accounting: {requested} requested, the study holds {numbers} "
                         f"for this run, workers reported {reported}")
    return numbers


def summarize(study, batch: str | None = None) -> dict[str, Any]:
    """The study's best trial and counts, and (with ``batch``) the trials of that run."""
    frame = trials_frame(study)
    best = best_trial(study)
    own = batch_trials(study, batch) if batch is not None else []
    return {
        "best_params": dict(best.params) if best else {},
        "best_score": float(best.values[0]) if best else None,
        "best_trial": best.number if best else None,
        "n_trials": len(frame), "n_complete": len(complete_trials(study)),
        "n_pruned": int((frame["state"] == "PRUNED").sum()) if len(frame) else 0,
        "run_trials": sorted(t.number for t in own),
        "run_complete": sum(1 for t in own if t.state.name == "COMPLETE"),
    }


def track_study(run, study, summary: Mapping[str, Any], out_dir: str | os.PathLike,
                params: Mapping[str, Any]) -> dict[str, Path | None]:
    """Record the study on a tracking run (``run``: the tracker interface): ``params``, each
    completed trial's score, the summary's counts and the report's files (written into
    ``out_dir``, whose paths are returned)."""
    run.log_params(dict(params))
    run.log_series("trial_score", [t.values[0] for t in complete_trials(study)])
    run.log_metrics({"best_score": summary["best_score"] or float("nan"),
                     "complete_trials": summary["n_complete"],
                     "pruned_trials": summary["n_pruned"]})
    report = write_report(study, out_dir)
    for path in report.values():
        if path is not None:
            run.log_artifact(path)
    return report


def write_report(study, folder: str | os.PathLike) -> dict[str, Path | None]:
    """The study's pictures and table into ``folder``: optimization history, parameter
    importances (None where there is nothing to draw) and trials.csv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "trials.csv"
    trials_frame(study).to_csv(csv, index=False)
    return {"optimization_history": plot_history(study, folder / "optimization_history.png"),
            "param_importances": plot_importances(study, folder / "param_importances.png"),
            "trials": csv}


def complete_trials(study) -> list:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def best_trial(study):
    """Single objective: the best trial. Multi-objective: the Pareto-front trial with the highest
    score (the time objective breaks ties through the front itself)."""
    if not complete_trials(study):
        return None
    if len(study.directions) == 1:
        return study.best_trial
    return max(study.best_trials, key=lambda t: (t.values[0], -t.values[1]))


def trials_frame(study):
    """One row per trial: number, state, score (and seconds), duration, where it ran (host,
    worker pid, and the Ray node for engine=ray), parameters."""
    import pandas as pd

    rows = []
    on_ray = any("ray_node_id" in t.user_attrs for t in study.trials)
    for t in study.trials:
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        values = t.values or [None] * len(study.directions)
        row["score"] = values[0]
        if len(study.directions) > 1:
            row["train_seconds"] = values[1]
        row["duration_s"] = (t.duration.total_seconds() if t.duration is not None else None)
        row["last_step"] = t.last_step
        row["host"] = t.user_attrs.get("host")
        row["pid"] = t.user_attrs.get("worker_pid")
        if on_ray:
            row["ray_node"] = t.user_attrs.get("ray_node_id")
        row.update(t.params)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_history(study, path: str | os.PathLike) -> Path | None:
    """Optimization history (score against trial); None when there is nothing to plot."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    if not complete_trials(study):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        if len(study.directions) > 1:
            ax = ovm.plot_pareto_front(study, target_names=["score", "train seconds"])
        else:
            ax = ovm.plot_optimization_history(study)
    return _save(ax, path, plt)


def plot_importances(study, path: str | os.PathLike) -> Path | None:
    """Parameter importances (fANOVA); None with fewer than two completed trials, where
    importance is undefined."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    if len(complete_trials(study)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
            ax = ovm.plot_param_importances(study, target=target, target_name="score")
        except (RuntimeError, ValueError, ZeroDivisionError):
            # All completed trials scored the same: no variance to attribute.
            return None
    return _save(ax, path, plt)


def _save(ax, path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
    fig.set_size_inches(8, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


