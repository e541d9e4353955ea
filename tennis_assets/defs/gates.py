"""The quality gates as asset checks.

Checks on the partitioned candidates are partitioned too, so each result names the candidate
it judged (the Checks tab, the event log and the alerts all say ``[tuned]``). Two kinds:
- faults (ERROR, blocking): the candidate is broken (non-finite weights or history, does not
  solve); its run fails and nothing downstream runs;
- decisions (WARN, not blocking): ``beats_champion`` says whether the candidate is better than
  the champion on the same episodes. Not being better is a finding, not a failure: the run
  succeeds, the check shows why, promotion does not happen and no alert is sent.
The challenger's checks run before the ``champion`` alias moves (see assets/promotion.py).
"""

from __future__ import annotations

import warnings

import dagster as dg

from tennis_assets.workflow.candidate import TrainedAgent
from tennis_assets.workflow.evaluation import BLOCKING_GATES, EvaluationReport
from tennis_assets.workflow.promotion import compare_with_champion

from .partitions import agent_partitions

TRAINED = dg.AssetKey("trained_agents")
REPORT = dg.AssetKey("evaluation_report")
CHALLENGER = dg.AssetKey("challenger_model")

# Failed checks that are decisions rather than faults: shown, never alerted.
DECISION_CHECKS = frozenset({"beats_champion"})

# The severity each check's results carry (the drift check's follows the drift's severity). The
# tables of checks in README.md and docs/dagster.md are tested against these and the specs'
# ``blocking`` (tennis_assets_tests/defs/test_defs_checks_table.py).
ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
SEVERITY = {
    "weights_finite": (ERROR,), "history_has_no_nan": (ERROR,), "solves": (ERROR,),
    "beats_champion": (WARN,), "latency_under_threshold": (WARN,),
    "enough_completed_trials": (WARN,), "challenger_loads_and_plays": (ERROR,),
    "challenger_solves": (ERROR,), "challenger_not_worse_than_champion": (ERROR,),
    "promoted_model_loads_and_plays": (ERROR,),
    "champion_score_has_not_drifted": (WARN, ERROR),
}


def _spec(name: str, asset: dg.AssetKey, blocking: bool, description: str,
          partitioned: bool = True) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():
        # Partitioned checks are a preview in 1.13; their results carry the partition.
        warnings.simplefilter("ignore")
        return dg.AssetCheckSpec(name, asset=asset, blocking=blocking, description=description,
                                 partitions_def=agent_partitions if partitioned else None)


weights_finite = _spec("weights_finite", TRAINED, True,
                       "Every tensor of the trained networks is finite (no NaN or inf).")
history_has_no_nan = _spec("history_has_no_nan", TRAINED, True,
                           "The training and evaluation histories hold no NaN scores.")
solves = _spec("solves", REPORT, True,
               "Greedy mean over fresh episodes >= the environment's solve score (Tennis: 0.5), "
               "or, for an environment with none, better than a random policy on the same "
               "episodes (one-sided Mann-Whitney U, p < 0.01).")
beats_champion = _spec("beats_champion", REPORT, False,
                       "Better than the current champion on the very same episodes and court "
                       "(a decision: a candidate that is not better is simply not promoted).")
latency_under_threshold = _spec("latency_under_threshold", REPORT, False,
                                "p95 latency of one greedy decision stays under the threshold "
                                "(warning only).")

BLOCKING_REPORT_CHECKS = BLOCKING_GATES
BLOCKING_CANDIDATE_CHECKS = frozenset(
    spec.name for spec in (weights_finite, history_has_no_nan, solves, beats_champion,
                           latency_under_threshold) if spec.blocking)


def blocked(results: list[dg.AssetCheckResult], metadata: dict, what: str) -> dg.Failure | None:
    """The failure a candidate asset raises, after yielding ``results``, when one of its
    blocking checks failed: its step fails and nothing is materialized, so the asset's page and
    the partition's status show a failed candidate (a materialization followed by a failed
    check would show as fresh and green). ``metadata`` (what the value would have shown) goes
    with the failure; the stored report still says everything."""
    failed = [r for r in results if r.check_name in BLOCKING_CANDIDATE_CHECKS and not r.passed]
    if not failed:
        return None
    return dg.Failure(
        f"{what} failed its blocking gate(s): "
        + "; ".join(f"{r.check_name}: {r.description}" for r in failed), metadata=metadata)


def check_weights(learner, partition: str) -> dg.AssetCheckResult:
    import torch

    bad = [name for name, t in learner.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return dg.AssetCheckResult(
        check_name="weights_finite", asset_key=TRAINED, passed=not bad,
        severity=SEVERITY["weights_finite"][0],
        description=f"[{partition}] " + (f"non-finite tensors: {bad}" if bad
                                         else "all tensors finite"),
        metadata={"partition": partition, "non_finite_tensors": dg.MetadataValue.json(bad)})


def check_history(history, eval_history, partition: str) -> dg.AssetCheckResult:
    nan_scores = int(history["score"].isna().sum()) if len(history) else 0
    nan_evals = int(eval_history["greedy_mean"].isna().sum()) if len(eval_history) else 0
    return dg.AssetCheckResult(
        check_name="history_has_no_nan", asset_key=TRAINED,
        passed=nan_scores == 0 and nan_evals == 0,
        severity=SEVERITY["history_has_no_nan"][0],
        description=f"[{partition}] {nan_scores} NaN episode scores, {nan_evals} NaN greedy means",
        metadata={"partition": partition, "episodes": len(history),
                  "nan_episode_scores": nan_scores, "evaluations": len(eval_history),
                  "nan_greedy_means": nan_evals})


def _solves_description(report: EvaluationReport) -> str:
    ev, target, passed = report.evaluation, report.environment.fixed_target(), report.gates.solves
    if target is not None:
        return (f"[{report.partition}] greedy mean {ev.mean:.3f} {'>=' if passed else '<'} "
                f"{target} over {ev.episodes} fresh episodes")
    rnd = report.random
    versus = f"a random policy's {rnd.mean:.3f} (p = {rnd.p_value:.2g})" if rnd else "random"
    return (f"[{report.partition}] greedy mean {ev.mean:.3f} vs {versus} on the same "
            f"{ev.episodes} fresh episodes: {'better' if passed else 'not clearly better'}")


def warm_start_note(trained: TrainedAgent | None) -> str:
    """Why a warm-started candidate that is not better than the champion could not be: when no
    update beat the starting weights, model selection kept them, so it plays as they did."""
    if trained is None or not trained.init_checkpoint or trained.warm_start_mean is None:
        return ""
    best, start = trained.summary.best_greedy_mean, trained.warm_start_mean
    if best is not None and best > start + 1e-9:
        return (f"; warm-started from {trained.init_checkpoint} (selection mean {start:.3f} at "
                f"the start, best {best:.3f} in training)")
    return (f"; warm-started from {trained.init_checkpoint}: no update in "
            f"{trained.summary.updates} beat the starting weights' selection mean {start:.3f}, "
            "so model selection kept them and the candidate plays as they did (to explore "
            "further: a larger train budget, or no init_checkpoint)")


def report_check_results(report: EvaluationReport, max_latency_ms: float,
                         trained: TrainedAgent | None = None) -> list[dg.AssetCheckResult]:
    gates, partition, ev = report.gates, report.partition, report.evaluation
    champion = report.champion
    versus = compare_with_champion(ev.mean, champion.mean if champion else None,
                                   champion.version if champion else None)
    why_not = "" if gates.beats_champion else warm_start_note(trained)
    p95 = report.latency.p95_ms
    target = report.environment.fixed_target()
    return [
        dg.AssetCheckResult(
            check_name="solves", asset_key=REPORT, passed=gates.solves,
            severity=SEVERITY["solves"][0], description=_solves_description(report),
            metadata={"partition": partition, "mean": round(ev.mean, 3),
                      "target": target if target is not None else "beat a random policy",
                      "random_mean": round(report.random.mean, 3) if report.random else None,
                      "episodes": ev.episodes}),
        dg.AssetCheckResult(
            check_name="beats_champion", asset_key=REPORT, passed=gates.beats_champion,
            severity=SEVERITY["beats_champion"][0],
            description=f"[{partition}] {versus.reason}{why_not}",
            metadata={"partition": partition, "mean": round(ev.mean, 3),
                      "champion_version": (champion.version if champion else None) or "none",
                      "champion_mean": round(champion.mean, 3) if champion else None}),
        dg.AssetCheckResult(
            check_name="latency_under_threshold", asset_key=REPORT,
            passed=gates.latency_under_threshold,
            severity=SEVERITY["latency_under_threshold"][0],
            description=f"[{partition}] p95 {p95:.3g} ms (threshold {max_latency_ms} ms)",
            metadata={"partition": partition, "p95_ms": round(p95, 4),
                      "p50_ms": round(report.latency.p50_ms, 4),
                      "threshold_ms": max_latency_ms}),
    ]
