"""Staging to production on MLflow aliases: ``challenger_model`` registers the best candidate
that the promotion rule accepts as ``challenger``; its blocking checks replay it through the
registered MLflow model before ``production_model`` moves ``champion`` (the old champion
becomes ``previous``). The rule is tennis_assets.workflow.promotion; the atomic move of the
alias and the pointer file is tennis_assets.workflow.production."""


import tempfile

import dagster as dg

from tennis_assets.workflow.production import ChampionRecord
from tennis_assets.workflow.promotion import ChallengerRecord

from ..config import ChallengerConfig, PromotionConfig
from ..gates import SEVERITY
from ..metadata import dagster_metadata, rounded
from ..resources import MlflowResource
from ..store import ModelStore

CHALLENGER_CHECKS = ("challenger_loads_and_plays", "challenger_solves",
                     "challenger_not_worse_than_champion")


@dg.asset(
    deps=[dg.AssetDep("evaluation_report", partition_mapping=dg.AllPartitionMapping())],
    group_name="production", kinds={"mlflow"}, output_required=False, pool="promotion",
    tags={"stage": "promotion"},
)
def challenger_model(context: dg.AssetExecutionContext, config: ChallengerConfig,
                     mlflow: MlflowResource, model_store: ModelStore):
    """The best candidate that the promotion rule accepts, registered with alias
    ``challenger`` (one model version per training run). When none is accepted nothing is
    materialized, nothing downstream runs, and the run still succeeds: a candidate that is not
    better than the champion is a finding, not a failure."""
    from tennis_assets.workflow.production import register_challenger
    from tennis_assets.workflow.promotion import (
        ChallengerRecord,
        Champion,
        Evidence,
        choose,
        version_record,
    )

    tracker, name = mlflow.tracker(), mlflow.registered_model
    settings = config.core()
    current = tracker.champion(name)
    champion = Champion(current.version if current else None, current.run_id if current else None)
    # A run that also evaluated a candidate (run_pipeline) promotes that candidate or none.
    partition = settings.partition or context.run.tags.get("dagster/partition")
    reports = _reports(model_store, partition, settings.report_run_id)
    evidence = [Evidence.from_report(r) for r in reports.values()]
    with tempfile.TemporaryDirectory() as tmp:
        evidence = [_rejudged(context, e, reports[e.partition], champion, tracker, name,
                              settings.replay_episodes, tmp) for e in evidence]
    best, passed_over = choose(evidence, champion)
    if best is None:
        context.log.info("no challenger: " + ("; ".join(f"{p}: {why}" for p, why in
                                                        sorted(passed_over.items()))
                                              or "no evaluation report matches"))
        return
    report = reports[best.partition]
    if report.candidate is None or not report.candidate.model_source or not best.train_run_id:
        raise dg.Failure(f"the {best.partition} report names no trained model to register "
                         "(written before reports named their training run): retrain it")
    tags, description = version_record(report, context.run.run_id, tracker.run_url,
                                       mlflow.dagster_run_url)
    info = register_challenger(tracker, name, model_store.production_pointer().parent,
                               source=report.candidate.model_source,
                               run_id=best.train_run_id, tags=tags, description=description)
    context.log.info(f"challenger: {name} v{info.version} ({best.partition}, mean "
                     f"{best.mean:.3f}); champion {champion.version or 'none'}")
    value = ChallengerRecord(
        model_name=name, version=info.version, partition=best.partition,
        train_mlflow_run_id=best.train_run_id, report_dagster_run_id=best.report_run_id,
        environment=report.environment, eval_mean=best.mean, champion_version=champion.version,
        passed_over=passed_over)
    yield dg.Output(value, metadata=dagster_metadata(
        value.metadata(tracker.model_url(name, info.version))))


def _reports(model_store: ModelStore, partition: str | None, report_run_id: str | None
             ) -> dict:
    """The reports to choose from: the one of run ``report_run_id`` (the promotion sensor's
    trigger; an older report than the latest is judged too), else the latest of each
    partition (of ``partition`` only, when given)."""
    if report_run_id is not None and partition is not None:
        report = model_store.run_report(partition, report_run_id)
        return {partition: report} if report is not None else {}
    return {p: r for p, r in model_store.latest_reports().items()
            if (partition is None or p == partition)
            and (report_run_id is None or r.dagster_run_id == report_run_id)}


def _rejudged(context, evidence, report, champion, tracker, name: str, episodes: int,
              workdir: str):
    """The evidence, judged again against the current champion when it was judged against
    another one."""
    from tennis_assets.workflow.promotion import rejudge, stale

    if not stale(evidence, champion):
        return evidence
    again = rejudge(evidence, report, tracker, name, episodes, workdir)
    if again.compared_version == champion.version:
        context.log.info(f"{evidence.partition}: judged against v{evidence.compared_version}, "
                         f"judged again against champion v{champion.version} on "
                         f"{episodes} fresh episodes: {again.mean:.3f} vs "
                         f"{again.champion_mean:.3f}")
    return again


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(n, asset="challenger_model", blocking=True, description=d)
           for n, d in zip(CHALLENGER_CHECKS, (
               ("The challenger loads through the registry (models:/<name>@challenger) and "
                "plays with finite actions."),
               ("It solves on fresh episodes of the environment it was judged on (the solve "
                "score, or better than a random policy on the same episodes)."),
               ("It is not worse than the champion on the very same fresh episodes "
                "(within the margin).")))],
    description="Replay the challenger and the champion through their registered MLflow models "
                "before the champion alias moves.")
def challenger_checks(context: dg.AssetCheckExecutionContext, challenger_model: ChallengerRecord,
                      config: ChallengerConfig, mlflow: MlflowResource):
    from tennis_assets.workflow.promotion import confirmation_seed, replay_registered

    settings = config.core()
    version = challenger_model.version
    episodes, seed = settings.replay_episodes, confirmation_seed(version)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            verdict = replay_registered(mlflow.tracker(), challenger_model.model_name,
                                        version, episodes, seed, settings.champion_margin, tmp)
        failure = None
    except Exception as exc:  # noqa: BLE001 - any failure to load or play is the finding
        verdict, failure = None, f"{type(exc).__name__}: {exc}"
    for check, key in zip(CHALLENGER_CHECKS, ("loads_and_plays", "solves", "not_worse")):
        passed = verdict is not None and getattr(verdict, key)
        reason = verdict.reasons[key] if verdict is not None else str(failure)
        yield dg.AssetCheckResult(
            asset_key="challenger_model", check_name=check, passed=bool(passed),
            severity=SEVERITY[check][0],
            description=f"v{version} ({challenger_model.partition}): {reason}",
            metadata={"version": version, "partition": challenger_model.partition,
                      "episodes": episodes, "seed": seed,
                      "env_kwargs": dg.MetadataValue.json(
                          dict(challenger_model.environment.env_kwargs)),
                      **({} if verdict is None else rounded(
                          {"mean": verdict.mean, "champion_mean": verdict.champion_mean}))})


@dg.asset(
    ins={"challenger_model": dg.AssetIn(metadata={"optional": True})},
    group_name="production", kinds={"mlflow"}, pool="promotion", tags={"stage": "production"},
)
def production_model(context: dg.AssetExecutionContext, config: PromotionConfig,
                     challenger_model: ChallengerRecord | None, mlflow: MlflowResource,
                     model_store: ModelStore) -> dg.Output[ChampionRecord]:
    """The champion: the registry's ``champion`` alias moved to the challenger that passed its
    checks (the old champion keeps ``previous``), or with ``rollback: true`` (the ``rollback``
    job) moved back to ``previous``. The pointer file is written from the registry afterwards,
    so it always says what the registry says."""
    from tennis_assets.workflow.production import move_champion

    tracker, name = mlflow.tracker(), mlflow.registered_model
    rollback = config.core().rollback
    if not rollback and challenger_model is None:
        raise dg.Failure("no challenger_model has been materialized: nothing to promote")
    try:
        value = move_champion(tracker, name, model_store.production_pointer(),
                              version=None if rollback or challenger_model is None
                              else challenger_model.version,
                              rollback=rollback, run_id=context.run.run_id)
    except RuntimeError as exc:
        raise dg.Failure(f"{'rollback' if rollback else 'promotion'}: {exc}") from None
    if rollback:
        context.log.warning(f"{name}: {value.outcome()}")
    # Everything below is what the registry said after the move, as the pointer file says it.
    return dg.Output(value, metadata={
        **dagster_metadata(value.metadata(tracker.model_url(name, value.version),
                                          tracker.run_url(value.mlflow_run_id))),
        "pointer": dg.MetadataValue.path(str(model_store.production_pointer())),
    })
