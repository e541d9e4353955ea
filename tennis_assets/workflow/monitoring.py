"""Monitor the champion: play it under production's conditions and test its scores against
the scores it earned when it was judged (its evaluation baseline).

Which conditions: the champion's own environment (recorded on its model version), with the
keyword arguments configured for production (Tennis: the court) over the ones it was judged on;
none configured: the conditions it was judged on. The result is tied to the model version it
describes."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from tennis_assets.config.metadata import Json, Metadata, Picture, RunLink
from tennis_assets.config.model import ConfigModel, Record, Seed
from tennis_assets.envs.config import EnvironmentConfig
from tennis_assets.training.drift import DEFAULT_RULES, DriftRule

# Seeds of monitoring episodes: a range of their own, away from training, model selection
# (1e9...) and final evaluation (2e9...), so production is never judged on episodes it was
# selected or evaluated on.
MONITOR_SEED_BASE = 3_000_000_000
# The baseline of a champion that has no recorded evaluation: a replay under its conditions.
REFERENCE_SEED = 2_999_999_000


class MonitoringConfig(ConfigModel):
    """How the champion is played under production's conditions and judged for drift."""

    monitor_episodes: int = Field(100, ge=10)
    """Greedy episodes the champion plays (the drift test needs at least 10)."""
    monitor_seed: Seed | None = None
    """Episode seed; None: fresh for every run."""
    production_kwargs: dict[str, Any] | None = None
    """Production's conditions: the keyword arguments of the champion's environment that
    differ there (Tennis: the court, e.g. {"gravity": -19.62}); None: $TENNIS_ASSETS_ENV_KWARGS,
    else the conditions it was judged on."""
    rules: list[DriftRule] = Field(default_factory=lambda: list(DEFAULT_RULES), min_length=1)
    """Drift rules; the most severe that holds names the drift's severity."""
    output_dir: str | None = None
    """Where latest.json goes for the policy server's drift metrics (None: <data dir>/
    monitoring)."""

    def production_conditions(self) -> dict[str, Any]:
        """The keyword arguments production changes: this config's, else
        $TENNIS_ASSETS_ENV_KWARGS ({} for neither: the champion's own conditions)."""
        if self.production_kwargs is not None:
            return dict(self.production_kwargs)
        from tennis_assets import settings

        return settings.production_kwargs()


def production_environment(judged: EnvironmentConfig, configured: dict[str, Any]
                           ) -> tuple[EnvironmentConfig, str]:
    """(the environment production plays, where its conditions came from)."""
    if configured:
        return judged.with_kwargs(configured), "production conditions (configuration)"
    if judged.env_kwargs:
        return judged, "the conditions the champion was judged on"
    return judged, "default conditions"


class MonitoringRecord(Record):
    """One monitoring result, tied to the model version it describes: the drift test of the
    champion's scores under production's conditions against its baseline (the file the policy
    server exports, and the production_monitoring asset's value)."""

    time: str
    model_name: str
    model_version: str
    model_partition: str | None = None
    environment: EnvironmentConfig
    court: dict[str, Any]
    """Every keyword argument in force (Tennis: the whole court), for the drift gauges."""
    court_overrides: dict[str, Any]
    """The keyword arguments that differ from the environment's defaults."""
    court_source: str
    seed: int
    baseline_source: str
    dagster_run_id: str | None = None
    mlflow_run_id: str | None = None
    statistic: float
    p_value: float
    mean: float
    baseline_mean: float
    mean_drop: float
    episodes: int
    baseline_episodes: int
    drifted: bool
    severity: str
    test: str
    rules: list[dict[str, Any]]
    scores: list[float]

    def metadata(self, plot: str | None = None, latest: str | None = None) -> Metadata:
        return {
            "model_version": self.model_version, "model_partition": str(self.model_partition),
            "environment": self.environment.env, "court": Json(self.court),
            "court_overrides": Json(self.court_overrides), "court_source": self.court_source,
            "mean": self.mean, "baseline_mean": self.baseline_mean, "p_value": self.p_value,
            "statistic": self.statistic, "test": self.test, "severity": self.severity,
            "drifted": self.drifted, "episodes": self.episodes,
            "baseline_source": self.baseline_source,
            "score_distributions": Picture(plot, "score distributions"),
            "latest": latest, "dagster_run": RunLink(self.dagster_run_id),
        }


def _conditions(environment: EnvironmentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every keyword argument in force, those that differ from the defaults)."""
    if environment.kind == "tennis":
        court = environment.court()
        return court.to_dict(), court.changes()
    return dict(environment.env_kwargs), dict(environment.env_kwargs)


@dataclass
class MonitoringOutcome:
    evaluation: Any
    drift: Any  # tennis_assets.training.drift.DriftResult
    baseline: Sequence[float]
    baseline_source: str

    def result(self, *, model_name: str, model_version: str, partition: str | None,
               environment: EnvironmentConfig, source: str, seed: int,
               **links: Any) -> MonitoringRecord:
        """The monitoring result (see monitoring_file for its file)."""
        court, overrides = _conditions(environment)
        return MonitoringRecord(
            time=datetime.now(UTC).isoformat(), model_name=model_name,
            model_version=model_version, model_partition=partition, environment=environment,
            court=court, court_overrides=overrides, court_source=source, seed=seed,
            baseline_source=self.baseline_source, **links, **self.drift.summary(),
            scores=[round(float(s), 2) for s in self.evaluation.scores])

    def track(self, run, folder: str | Path, *, title: str, params: dict[str, Any]) -> Path:
        """Record this outcome in a tracker run (params, per-episode scores, the drift test's
        figures) with a picture of both score distributions, which is returned."""
        from tennis_assets.training.plots import plot_score_drift

        plot = plot_score_drift(self.evaluation.scores, self.baseline,
                                Path(folder) / "score_drift.png", title=title)
        run.log_params({**params, "baseline_source": self.baseline_source})
        run.log_series("episode_score", [float(s) for s in self.evaluation.scores])
        run.log_metrics({k: v for k, v in self.drift.summary().items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
        run.log_metrics({"drifted": float(self.drift.drifted)})
        run.log_artifact(plot)
        return plot


def monitoring_seed(run_id: str) -> int:
    """Fresh episodes for every monitoring run, reproducible from its run id."""
    return MONITOR_SEED_BASE + zlib.crc32(run_id.encode()) % 100_000_000


def monitor_champion(learner, baseline: Sequence[float] | None,
                     production: EnvironmentConfig, episodes: int, seed: int, rules,
                     judged: EnvironmentConfig | None = None) -> MonitoringOutcome:
    """Play ``episodes`` greedy episodes of ``production`` and test them against ``baseline``
    (the champion's evaluation scores; None: a replay under the conditions it was judged on,
    ``judged``, from a reference seed)."""
    from tennis_assets.training import evaluate, greedy
    from tennis_assets.training.drift import score_drift

    ev = evaluate(greedy(learner), episodes=episodes, seed=seed, environment=production,
                  threshold=None)
    source = "the champion's evaluation run"
    if baseline is None or len(baseline) < 2:
        baseline = evaluate(greedy(learner), episodes=episodes, seed=REFERENCE_SEED,
                            environment=judged or production, threshold=None).scores
        source = "replay under the conditions it was judged on (no evaluation run)"
    return MonitoringOutcome(ev, score_drift(ev.scores, baseline, rules), list(baseline), source)
