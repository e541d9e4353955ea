
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import Environment, TrainingConfig
from ..environment import UnityEnvironmentResource
from ..gates import check_history, check_weights, history_has_no_nan, weights_finite
from ..metadata import frame_md, image_md
from ..partitions import agent_partitions
from ..resources import MlflowResource
from ..store import ModelStore, TrainedAgent


def _warm_start(path: str, agent, train, workdir: Path):
    """Continue from a checkpoint's weights under this run's budget.

    The checkpoint's own learner settings are kept (its tensors only fit them). The starting
    weights are scored first and registered as the best so far, so model selection can only
    replace them with weights that evaluate better.
    """
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training import evaluate, greedy, load_learner, save_checkpoint
    from tennis_assets.training.checkpoints import read_metadata
    from tennis_assets.training.evaluation import selection_seed

    stored = AgentConfig.from_dict(read_metadata(path)["agent_config"])
    agent = stored.replace(seed=agent.seed, device=agent.device, torch_threads=agent.torch_threads)
    learner = load_learner(path)
    start = evaluate(greedy(learner), episodes=train.eval_episodes,
                     seed=selection_seed(train.seed, 9_999), params=train.court_params())
    progress = {"env_steps": 0, "episodes": 0, "evals": 0, "seconds": 0.0,
                "best_greedy_mean": start.mean, "best_updates": learner.updates,
                "last_eval_updates": learner.updates, "history": [], "eval_history": [],
                "resumes": 0}
    resume = save_checkpoint(workdir / "warm_start.safetensors", learner, train_config=train,
                             progress=progress, include_buffer=False,
                             extra_tensors={"extra.best_params": learner.params})
    if train.max_updates is not None:
        # Budgets count the resumed run as a whole: extend by the updates already in the weights.
        train = train.replace(max_updates=learner.updates + train.max_updates)
    return agent, train, str(resume), start.mean


@dg.asset(
    partitions_def=agent_partitions,
    group_name="training",
    kinds={"pytorch", "mlflow"},
    pool="training",
    ins={"tuning_study": dg.AssetIn(metadata={"optional": True})},
    check_specs=[weights_finite, history_has_no_nan],
    tags={"stage": "training"},
)
def trained_agents(context: dg.AssetExecutionContext, config: TrainingConfig,
                   tuning_study: dict | None, mlflow: MlflowResource,
                   model_store: ModelStore, unity_environment: UnityEnvironmentResource):
    """A trained learner per candidate configuration (partition).

    ``baseline`` trains with the tuned defaults, ``tuned`` with the study's best parameters.
    The checkpoint is written once, as safetensors, into the model store (one folder per run);
    the value passed on names it, with the training history as CSV. Every run is an MLflow run
    (parameters, per-episode scores, the checkpoint as a pyfunc model, the learning curve).
    """
    from tennis_assets.tracking import run_tags
    from tennis_assets.tracking.resource_usage import ResourceUsage
    from tennis_assets.training import plot_learning_curve, save_checkpoint, train

    partition = context.partition_key
    tuned: dict[str, Any] = {}
    if partition == "tuned":
        if not tuning_study or not tuning_study.get("best_params"):
            raise dg.Failure(
                "the 'tuned' partition needs a tuning_study with at least one completed trial; "
                "materialize tuning_study first",
                metadata={"tuning_study": dg.MetadataValue.json(tuning_study or {})})
        tuned = dict(tuning_study["best_params"])
    agent_cfg, train_cfg = config.build(tuned)
    out_dir = model_store.agent_dir(partition, context.run.run_id)
    tags = run_tags(context.run.run_id, asset="trained_agents", partition=partition)

    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run(f"train-{partition}", tags) as run:
        resume_from, warm_mean = None, None
        if config.init_checkpoint:
            init = config.init_checkpoint
            if init == "champion":
                tracker = mlflow.tracker()
                champion = tracker.champion(mlflow.registered_model)
                if champion is None:
                    raise dg.Failure("init_checkpoint='champion' but no model has the "
                                     f"'champion' alias in {mlflow.registered_model!r}")
                init = str(tracker.champion_checkpoint(champion, Path(tmp) / "champion"))
            elif not Path(init).is_file():
                raise dg.Failure(f"init_checkpoint: no checkpoint at {init}")
            agent_cfg, train_cfg, resume_from, warm_mean = _warm_start(init, agent_cfg, train_cfg,
                                                                       Path(tmp))
            context.log.info(f"warm start from {init} (greedy mean {warm_mean:.3f}); the "
                             "checkpoint's learner settings apply"
                             + (f", not the study's {tuned}" if tuned else ""))
        env = None
        if config.environment == Environment.unity:
            # Training and its evaluations play on the build (an Editor is a single instance);
            # the learner takes the build's observation and action sizes.
            env = unity_environment.open(seed=train_cfg.seed)
            agent_cfg = agent_cfg.replace(obs_size=env.obs_size, action_size=env.action_size)
            context.log.info(f"Unity environment {unity_environment.describe()}: "
                             f"{env.num_courts} courts, {env.obs_size} observations, "
                             f"{env.action_size} actions")
        run.log_params({"agent": agent_cfg.to_dict(), "train": train_cfg.to_dict(),
                        "partition": partition, "init_checkpoint": config.init_checkpoint,
                        "environment": config.environment.value,
                        **({"unity": unity_environment.describe()} if env is not None else {}),
                        "profile": config.profile.value})
        context.log.info(f"training {partition}: {agent_cfg.to_dict()} budget "
                         f"{train_cfg.max_seconds} s / {train_cfg.max_updates} updates")
        try:
            with ResourceUsage() as usage:
                result = train(agent_cfg, train_cfg, progress=False, resume_from=resume_from,
                               env=env)
        finally:
            if env is not None:
                env.close()
        resources_used = usage.summary()

        checkpoint = save_checkpoint(out_dir / "checkpoint.safetensors", result.learner,
                                     train_config=train_cfg, progress=result.summary(),
                                     include_buffer=False)
        history_csv, eval_csv = out_dir / "history.csv", out_dir / "eval_history.csv"
        result.history.to_csv(history_csv, index=False)
        result.eval_history.to_csv(eval_csv, index=False)
        curve = plot_learning_curve(result.history, result.eval_history,
                                    out_dir / "learning_curve.png",
                                    title=f"{partition}: best greedy mean "
                                          f"{result.best_greedy_mean:.2f}",
                                    target=train_cfg.target_score)

        h, e = result.history, result.eval_history
        run.log_series("episode_score", h["score"].tolist(), h["episode"].tolist())
        run.log_series("avg100", h["avg100"].tolist(), h["episode"].tolist())
        run.log_series("greedy_mean", e["greedy_mean"].tolist(), e["updates"].tolist())
        run.log_metrics({"best_greedy_mean": result.best_greedy_mean, "seconds": result.seconds,
                         "updates": result.updates, "episodes": result.episodes,
                         "env_steps": result.env_steps, "warm_start_mean": warm_mean,
                         **{f"time_{k}": v for k, v in result.timing.items()},
                         **{f"resource_{k}": v for k, v in resources_used.items()}})
        for path in (checkpoint, checkpoint.with_suffix(".json"), history_csv, eval_csv, curve):
            run.log_artifact(path, "training")
        model_source = run.log_policy_model(checkpoint)

    weights = check_weights(result.learner)
    history = check_history(result.history, result.eval_history)
    value = TrainedAgent(
        partition=partition, checkpoint=str(checkpoint), history_csv=str(history_csv),
        eval_history_csv=str(eval_csv), learning_curve=str(curve),
        agent_config=agent_cfg.to_dict(), train_config=train_cfg.to_dict(),
        summary=result.summary(), dagster_run_id=context.run.run_id, mlflow_run_id=run.run_id,
        mlflow_run_url=run.url, extra={"model_source": model_source,
                                       "tuned_params": tuned,
                                       "init_checkpoint": config.init_checkpoint,
                                       "environment": config.environment.value,
                                       "resource_usage": resources_used})
    yield dg.Output(value, metadata={
        "best_greedy_mean": dg.MetadataValue.float(float(result.best_greedy_mean)),
        "seconds": dg.MetadataValue.float(result.seconds),
        "updates": dg.MetadataValue.int(result.updates),
        "episodes": dg.MetadataValue.int(result.episodes),
        "stop_reason": dg.MetadataValue.text(result.stop_reason),
        "cpu_seconds": dg.MetadataValue.float(resources_used["cpu_seconds"]),
        "cpu_percent_mean": dg.MetadataValue.float(resources_used["cpu_percent_mean"]),
        "memory_rss_peak_mb": dg.MetadataValue.float(
            resources_used["memory_rss_peak_bytes"] / 2**20),
        "resource_usage": dg.MetadataValue.json(resources_used),
        "solved_greedy": dg.MetadataValue.json(result.solved_greedy or {}),
        "checkpoint": dg.MetadataValue.path(str(checkpoint)),
        "learning_curve": image_md(curve, "learning curve"),
        "history_tail": frame_md(result.history.tail(10)),
        "eval_history": frame_md(result.eval_history),
        "agent_config": dg.MetadataValue.json(agent_cfg.to_dict()),
        "tuned_params": dg.MetadataValue.json(tuned),
        "mlflow_run": dg.MetadataValue.url(run.url),
        "mlflow_run_id": dg.MetadataValue.text(run.run_id),
    })
    yield weights
    yield history
