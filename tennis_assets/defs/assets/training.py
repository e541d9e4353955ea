"""trained_agents: one candidate per partition, trained by the core workflow
(tennis_assets.workflow.candidate); this asset adds the registry-backed warm start, MLflow
tracking, metadata and the weight checks."""

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import TrainingConfig
from ..gates import blocked, check_history, check_weights, history_has_no_nan, weights_finite
from ..metadata import dagster_metadata, frame_md
from ..partitions import agent_partitions, candidate_partition
from ..resources import MlflowResource
from ..store import ModelStore, TrainedAgent


def _init_checkpoint(init: str | None, mlflow: MlflowResource, tmp: str
                     ) -> tuple[str | None, str | None]:
    """(checkpoint path, what it is for a person) of the warm start, or (None, None)."""
    if init != "champion":
        return init, init
    tracker = mlflow.tracker()
    champion = tracker.champion(mlflow.registered_model)
    if champion is None:
        raise dg.Failure("init_checkpoint='champion' but no model has the 'champion' alias in "
                         f"{mlflow.registered_model!r}")
    return (str(tracker.champion_checkpoint(champion, Path(tmp) / "champion")),
            f"champion v{champion.version}")


def warm_start_label(started_from: str | None, partition: str) -> str:
    """What a warm-started candidate is, so that it is not read as its partition's recipe: the
    learner settings of the weights it starts from are kept (their tensors only fit them), so
    the partition's own (the study's for ``tuned``) are not applied."""
    if not started_from:
        return f"trained from scratch with the {partition} recipe"
    return (f"warm start from {started_from}: its weights and learner settings; the {partition} "
            "recipe's learner settings are not applied")


def _track(run, trained, partition: str, candidate, environment) -> str:
    result, h, e = trained.result, trained.result.history, trained.result.eval_history
    run.log_params({"agent": trained.agent_config.to_dict(),
                    "train": trained.train_config.to_dict(), "partition": partition,
                    "init_checkpoint": candidate.init_checkpoint,
                    "environment": environment.to_dict(), "profile": candidate.profile})
    run.log_series("episode_score", h["score"].tolist(), h["episode"].tolist())
    run.log_series("avg100", h["avg100"].tolist(), h["episode"].tolist())
    run.log_series("greedy_mean", e["greedy_mean"].tolist(), e["updates"].tolist())
    run.log_metrics({"best_greedy_mean": result.best_greedy_mean, "seconds": result.seconds,
                     "updates": result.updates, "episodes": result.episodes,
                     "env_steps": result.env_steps, "warm_start_mean": trained.warm_start_mean,
                     **{f"time_{k}": v for k, v in result.timing.items()},
                     **{f"resource_{k}": v for k, v in trained.resource_usage.items()}})
    checkpoint = trained.paths["checkpoint"]
    for path in (*trained.paths.values(), checkpoint.with_suffix(".json")):
        run.log_artifact(path, "training")
    return run.log_policy_model(checkpoint)


def _tuned_params(partition: str, tuning_study: dict | None) -> dict[str, Any]:
    """The study's best parameters for the ``tuned`` candidate ({} for the others)."""
    if partition != "tuned":
        return {}
    if not tuning_study or not tuning_study.get("best_params"):
        raise dg.Failure("the 'tuned' partition needs a tuning_study with at least one "
                         "completed trial; materialize tuning_study first")
    return dict(tuning_study["best_params"])


@dg.asset(
    partitions_def=agent_partitions,
    group_name="candidates",
    kinds={"pytorch", "mlflow"},
    pool="training",
    ins={"tuning_study": dg.AssetIn(metadata={"optional": True})},
    check_specs=[weights_finite, history_has_no_nan],
    tags={"stage": "training"},
)
def trained_agents(context: dg.AssetExecutionContext, config: TrainingConfig,
                   tuning_study: dict | None, mlflow: MlflowResource,
                   model_store: ModelStore):
    """A trained learner per candidate configuration (partition).

    ``baseline`` trains with the tuned defaults, ``tuned`` with the study's best parameters.
    The checkpoint is written once, as safetensors, into the model store (one folder per run);
    the value passed on names it. Every run is an MLflow run (parameters, per-episode scores,
    the checkpoint as a pyfunc model, the learning curve). A training from scratch whose
    configuration, seed, environment and code were trained before is reused (``reuse``), and
    the materialization links to the run that trained it.
    """
    from tennis_assets.workflow.reuse import TrainingIndex, training_key

    partition = candidate_partition(context)
    tuned = _tuned_params(partition, tuning_study)
    candidate, environment = config.candidate(), config.environment_config()
    agent_cfg, train_cfg = config.build(tuned)
    key = training_key(agent_cfg, train_cfg, environment) \
        if candidate.reuse and candidate.init_checkpoint is None else None
    index = TrainingIndex(model_store.training_index())
    with index.claim(key) if key else contextlib.nullcontext(False) as waited:
        earlier = index.find(key) if key else None
        if earlier is not None:
            yield from _reused(context, earlier, partition, tuned, waited, mlflow)
            return
        value, metadata, results = _trained(context, config, partition, tuned, mlflow,
                                            model_store, key)
        failure = blocked(results, metadata, f"candidate {partition}")
        if failure is not None:
            yield from results
            raise failure
        if value.training_key is not None and not index.record(value.training_key, value):
            context.log.info(f"training not indexed for reuse: it stopped on "
                             f"{value.summary.stop_reason}, which the inputs do not decide")
    yield dg.Output(value, metadata=metadata)
    yield from results


def _reused(context: dg.AssetExecutionContext, earlier: TrainedAgent, partition: str,
            tuned: dict[str, Any], waited: bool, mlflow: MlflowResource):
    """The earlier training as this partition's value, its checks run again on its files."""
    value = earlier.model_copy(update={
        "partition": partition, "tuned_params": tuned, "dagster_run_id": context.run.run_id,
        "reused_from": earlier.reused_from or earlier.dagster_run_id})
    context.log.info(f"reusing the training of run {value.reused_from} (same configuration, "
                     f"seed, environment and code{'; waited for it' if waited else ''}): "
                     f"best greedy mean {value.summary.best_greedy_mean:.3f}")
    history, eval_history = value.history(), value.eval_history()
    results = [check_weights(value.learner(), partition),
               check_history(history, eval_history, partition)]
    yield dg.Output(value, metadata={
        "started_from": f"reused the training of run {value.reused_from}",
        **dagster_metadata(value.metadata(), {value.learning_curve: mlflow.artifact_url(
            value.mlflow_run_id, f"training/{Path(value.learning_curve).name}") or ""}),
        "history_tail": frame_md(history.tail(10)), "eval_history": frame_md(eval_history)})
    yield from results


def _trained(context: dg.AssetExecutionContext, config: TrainingConfig, partition: str,
             tuned: dict[str, Any], mlflow: MlflowResource, model_store: ModelStore,
             key: str | None) -> tuple[TrainedAgent, dict[str, Any], list]:
    """Train (or resume) the candidate and track it: (value, metadata, check results)."""
    from tennis_assets.tracking import run_tags
    from tennis_assets.workflow.candidate import interruption, resume_state, train_candidate

    candidate, environment = config.candidate(), config.environment_config()
    agent_cfg, train_cfg = config.build(tuned)
    out_dir = model_store.agent_dir(partition, context.run.run_id)
    # Kept per run lineage: a re-execution or retry of this run continues where it stopped.
    resume = model_store.resume_path(partition, context.run.root_run_id or context.run.run_id)
    resume_from, agent_cfg = resume_state(resume, agent_cfg)
    train_cfg = train_cfg.replace(checkpoint_path=str(resume))
    tags = run_tags(context.run.run_id, asset="trained_agents", partition=partition,
                    **{"dagster.run_url": mlflow.dagster_run_url(context.run.run_id)})

    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run(f"train-{partition}", tags) as run:
        # A resumed run's state already holds its warm-started weights.
        init, started_from = (None, None) if resume_from else _init_checkpoint(
            candidate.init_checkpoint, mlflow, tmp)
        context.log.info(f"training {partition} on {environment.env} "
                         f"{environment.env_kwargs or ''}: budget {train_cfg.max_seconds} s / "
                         f"{train_cfg.max_updates} updates"
                         + (f", {warm_start_label(started_from, partition)}" if init else "")
                         + (f", resuming from {resume_from}" if resume_from else ""))
        trained = train_candidate(agent_cfg, train_cfg, out_dir, init_checkpoint=init,
                                  resume_from=resume_from, workdir=Path(tmp),
                                  environment=environment,
                                  title=f"{partition}: best greedy mean {{best:.2f}}")
        if trained.result.interrupted:
            raise dg.Failure(interruption(trained.result, resume, "re-execute this run (or let "
                                                                  "the run retry)"),
                             metadata={"resume_state": dg.MetadataValue.path(str(resume))})
        model_source = _track(run, trained, partition, candidate, environment)
    # Done and tracked: the state (replay buffer included) is no longer needed to continue.
    for path in (resume, resume.with_suffix(".json")):
        path.unlink(missing_ok=True)

    result = trained.result
    value = TrainedAgent(
        partition=partition, checkpoint=str(trained.paths["checkpoint"]),
        history_csv=str(trained.paths["history"]),
        eval_history_csv=str(trained.paths["eval_history"]),
        learning_curve=str(trained.paths["learning_curve"]),
        agent_config=trained.agent_config, train_config=trained.train_config,
        environment=environment,
        summary=result.summary(), dagster_run_id=context.run.run_id, mlflow_run_id=run.run_id,
        mlflow_run_url=run.url, model_source=model_source, tuned_params=tuned,
        init_checkpoint=candidate.init_checkpoint,
        resource_usage=trained.resource_usage, warm_start_mean=trained.warm_start_mean,
        # A resumed training continues from a saved state: not indexed for reuse.
        training_key=None if resume_from else key)
    metadata: dict[str, Any] = {
        "started_from": warm_start_label(started_from if not resume_from else
                                         candidate.init_checkpoint, partition),
        **dagster_metadata(value.metadata(), {value.learning_curve: mlflow.artifact_url(
            run.run_id, f"training/{Path(value.learning_curve).name}") or ""}),
        "history_tail": frame_md(result.history.tail(10)),
        "eval_history": frame_md(result.eval_history),
    }
    results = [check_weights(result.learner, partition),
               check_history(result.history, result.eval_history, partition)]
    return value, metadata, results
