
import tempfile
from pathlib import Path

import dagster as dg

from ..config import TuningConfig
from ..metadata import frame_md, image_md
from ..resources import MlflowResource, OptunaResource


@dg.asset(
    group_name="tuning",
    kinds={"optuna", "mlflow"},
    pool="training",
    tags={"stage": "tuning"},
)
def tuning_study(context: dg.AssetExecutionContext, config: TuningConfig,
                 optuna_storage: OptunaResource, mlflow: MlflowResource) -> dg.Output[dict]:
    """Optuna study over the learner's hyperparameters; each trial is a short training run.

    TPE sampling and median pruning on intermediate greedy means by default; with
    ``multi_objective`` it maximises score and minimises training seconds. The study lives in
    the configured storage (a journal file in the data directory by default), so a new run adds
    trials to it. Value: the best parameters, which the ``tuned`` partition of trained_agents uses.
    """
    from tennis_assets import tuning
    from tennis_assets.tracking import run_tags

    settings = config.resolved()
    agent, train = config.build()
    url = optuna_storage.url()
    context.log.info(f"study {config.study_name!r} in {url}: {settings['n_trials']} more trial(s)")

    def on_trial(study, trial) -> None:
        context.log.info(f"trial {trial.number}: {trial.state.name} values={trial.values} "
                         f"params={trial.params}")

    tags = run_tags(context.run.run_id, asset="tuning_study")
    with mlflow.start_run("tuning_study", tags) as run:
        run.log_params({"study_name": config.study_name, "storage": url,
                        "sampler": config.sampler.value, "pruner": config.pruner.value,
                        "multi_objective": config.multi_objective, **settings,
                        "params": ",".join(config.params or sorted(tuning.SEARCH_SPACE))})
        study = tuning.run_study(
            config.study_name, url, settings["n_trials"], agent, train, params=config.params,
            sampler=config.sampler.value, pruner=config.pruner.value,
            multi_objective=config.multi_objective, seed=config.seed, on_trial=on_trial)
        frame = tuning.trials_frame(study)
        best = tuning.best_trial(study)
        complete = len(tuning.complete_trials(study))
        pruned = int((frame["state"] == "PRUNED").sum()) if len(frame) else 0
        scores = [v for v in frame["score"].tolist() if v is not None]
        run.log_series("trial_score", [float(s) for s in scores])
        run.log_metrics({"best_score": best.values[0] if best else float("nan"),
                         "complete_trials": complete, "pruned_trials": pruned})
        with tempfile.TemporaryDirectory() as tmp:
            history_png = tuning.plot_history(study, Path(tmp) / "optimization_history.png")
            importance_png = tuning.plot_importances(study, Path(tmp) / "param_importances.png")
            csv = Path(tmp) / "trials.csv"
            frame.to_csv(csv, index=False)
            for path in (history_png, importance_png, csv):
                if path is not None:
                    run.log_artifact(path)
            history_md = image_md(history_png, "optimization history")
            importance_md = image_md(importance_png, "parameter importances")

    value = {
        "study_name": config.study_name, "storage": url,
        "best_params": dict(best.params) if best else {},
        "best_score": float(best.values[0]) if best else None,
        "best_trial": best.number if best else None,
        "n_trials": len(frame), "n_complete": complete, "n_pruned": pruned,
        "min_completed_trials": settings["min_completed_trials"],
        "multi_objective": config.multi_objective, "mlflow_run_id": run.run_id,
    }
    return dg.Output(value, metadata={
        "best_score": dg.MetadataValue.float(value["best_score"] or 0.0),
        "best_params": dg.MetadataValue.json(value["best_params"]),
        "trials": dg.MetadataValue.int(len(frame)),
        "complete_trials": dg.MetadataValue.int(complete),
        "pruned_trials": dg.MetadataValue.int(pruned),
        "summary": frame_md(frame),
        "optimization_history": history_md,
        "param_importances": importance_md,
        "storage": dg.MetadataValue.text(url),
        "mlflow_run": dg.MetadataValue.url(run.url) if run.url else dg.MetadataValue.text("-"),
        "mlflow_run_id": dg.MetadataValue.text(run.run_id),
    })
