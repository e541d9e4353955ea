"""The quality gates evaluated inside the assets they guard.

Checks on partitioned candidates are computed in the asset's own step from the values it just
made (``check_specs``): each result then belongs to that partition, and a failing blocking ERROR
check fails the step after the value is stored, so nothing downstream (promotion) runs.
"""

from __future__ import annotations

import math
from typing import Any

import dagster as dg

TRAINED = dg.AssetKey("trained_agents")
REPORT = dg.AssetKey("evaluation_report")

weights_finite = dg.AssetCheckSpec(
    "weights_finite", asset=TRAINED, blocking=True,
    description="Every tensor of the trained networks is finite (no NaN or inf).")
history_has_no_nan = dg.AssetCheckSpec(
    "history_has_no_nan", asset=TRAINED, blocking=True,
    description="The training and evaluation histories hold no NaN scores.")
solves_tennis = dg.AssetCheckSpec(
    "solves_tennis", asset=REPORT, blocking=True,
    description="Greedy mean over fresh episodes >= the target (0.5): the game is solved.")
beats_champion = dg.AssetCheckSpec(
    "beats_champion", asset=REPORT, blocking=True,
    description="Not worse than the current champion on the same episodes, within a margin.")
latency_under_threshold = dg.AssetCheckSpec(
    "latency_under_threshold", asset=REPORT, blocking=False,
    description="p95 latency of one greedy decision stays under the threshold (warning only).")

BLOCKING_REPORT_CHECKS = ("solves_tennis", "beats_champion")


def check_weights(learner) -> dg.AssetCheckResult:
    import torch

    bad = [name for name, t in learner.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return dg.AssetCheckResult(
        check_name="weights_finite", asset_key=TRAINED, passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"non_finite_tensors": dg.MetadataValue.json(bad)})


def check_history(history, eval_history) -> dg.AssetCheckResult:
    nan_scores = int(history["score"].isna().sum()) if len(history) else 0
    nan_evals = int(eval_history["greedy_mean"].isna().sum()) if len(eval_history) else 0
    return dg.AssetCheckResult(
        check_name="history_has_no_nan", asset_key=TRAINED,
        passed=nan_scores == 0 and nan_evals == 0, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"episodes": len(history), "nan_episode_scores": nan_scores,
                  "evaluations": len(eval_history), "nan_greedy_means": nan_evals})


def report_gates(report: dict[str, Any], target: float, margin: float,
                 max_latency_ms: float) -> dict[str, bool]:
    mean = report["evaluation"]["mean"]
    champion = report.get("champion")
    return {
        "solves_tennis": bool(math.isfinite(mean) and mean >= target - 1e-9),
        "beats_champion": bool(champion is None or mean >= champion["mean"] - margin - 1e-9),
        "latency_under_threshold": bool(report["latency"]["p95_ms"] <= max_latency_ms),
    }


def report_check_results(report: dict[str, Any], target: float, margin: float,
                         max_latency_ms: float) -> list[dg.AssetCheckResult]:
    gates = report["gates"]
    mean = report["evaluation"]["mean"]
    champion = report.get("champion")
    return [
        dg.AssetCheckResult(
            check_name="solves_tennis", asset_key=REPORT, passed=gates["solves_tennis"],
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"mean": mean, "target": target,
                      "episodes": report["evaluation"]["episodes"]}),
        dg.AssetCheckResult(
            check_name="beats_champion", asset_key=REPORT, passed=gates["beats_champion"],
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"mean": mean, "margin": margin,
                      "champion_version": champion["version"] if champion else "none",
                      "champion_mean": champion["mean"] if champion else float("nan")}),
        dg.AssetCheckResult(
            check_name="latency_under_threshold", asset_key=REPORT,
            passed=gates["latency_under_threshold"], severity=dg.AssetCheckSeverity.WARN,
            metadata={"p95_ms": report["latency"]["p95_ms"],
                      "p50_ms": report["latency"]["p50_ms"], "threshold_ms": max_latency_ms}),
    ]
