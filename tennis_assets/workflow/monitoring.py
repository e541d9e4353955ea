"""Monitor the champion: play it on the production court and test its scores against the
scores it earned when it was judged (its evaluation baseline).

Which court: the one configured for production, else the court the champion was judged on
(recorded on its model version), else the default court. The result is tied to the model
version it describes."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field

from tennis_assets.config.model import ConfigModel, Seed
from tennis_assets.sim.params import CourtParams
from tennis_assets.training.drift import DEFAULT_RULES, DriftRule

# Seeds of monitoring episodes: a range of their own, away from training, model selection
# (1e9...) and final evaluation (2e9...), so production is never judged on episodes it was
# selected or evaluated on.
MONITOR_SEED_BASE = 3_000_000_000
# The baseline of a champion that has no recorded evaluation: a replay on its court.
REFERENCE_SEED = 2_999_999_000


class MonitoringConfig(ConfigModel):
    """How the champion is played on the production court and judged for drift."""

    monitor_episodes: int = Field(100, ge=10)
    """Greedy episodes the champion plays (the drift test needs at least 10)."""
    monitor_seed: Seed | None = None
    """Episode seed; None: fresh for every run."""
    court: CourtParams | None = None
    """The production court; None: $TENNIS_ASSETS_COURT, else the court the champion was
    judged on."""
    rules: list[DriftRule] = Field(default_factory=lambda: list(DEFAULT_RULES), min_length=1)
    """Drift rules; the most severe that holds names the drift's severity."""
    output_dir: str | None = None
    """Where latest.json goes for the policy server's drift metrics (None: <data dir>/
    monitoring)."""

    def production_court(self) -> dict[str, Any]:
        """The court overrides production plays on: this config's court, else
        $TENNIS_ASSETS_COURT ({} for neither: the champion's own court decides)."""
        if self.court is not None:
            return self.court.changes()
        from tennis_assets import settings

        return settings.production_court()


def court_for_champion(configured: dict[str, Any] | None, version_tags: dict[str, str]
                       ) -> tuple[dict[str, Any], str]:
    """(court overrides, where they came from)."""
    if configured:
        return dict(configured), "production court (configuration)"
    raw = version_tags.get("court")
    if raw:
        court = json.loads(raw)
        if court:
            return court, "the court the champion was judged on"
    return {}, "default court"


@dataclass
class MonitoringOutcome:
    evaluation: Any
    drift: Any  # tennis_assets.training.drift.DriftResult
    baseline: Sequence[float]
    baseline_source: str

    def result(self, *, model_name: str, model_version: str, partition: str | None,
               court: dict[str, Any], court_source: str, seed: int,
               **links: Any) -> dict[str, Any]:
        """The monitoring result file's document (see monitoring_file)."""
        from tennis_assets.sim import CourtParams

        return {"time": datetime.now(timezone.utc).isoformat(), "model_name": model_name,
                "model_version": model_version, "model_partition": partition,
                "court": CourtParams(**court).to_dict(), "court_overrides": court,
                "court_source": court_source, "seed": seed,
                "baseline_source": self.baseline_source, **links, **self.drift.summary(),
                "scores": [round(float(s), 2) for s in self.evaluation.scores]}

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


def monitor_champion(learner, baseline: Sequence[float] | None, court: dict[str, Any],
                     episodes: int, seed: int, rules,
                     judged_court: dict[str, Any] | None = None) -> MonitoringOutcome:
    """Play ``episodes`` greedy episodes on ``court`` and test them against ``baseline`` (the
    champion's evaluation scores; None: a replay on the court it was judged on,
    ``judged_court``, from a reference seed)."""
    from tennis_assets.sim import CourtParams
    from tennis_assets.training import evaluate, greedy
    from tennis_assets.training.drift import score_drift

    params = CourtParams(**court)
    ev = evaluate(greedy(learner), episodes=episodes, seed=seed, params=params)
    source = "the champion's evaluation run"
    if baseline is None or len(baseline) < 2:
        baseline = evaluate(greedy(learner), episodes=episodes, seed=REFERENCE_SEED,
                            params=CourtParams(**(judged_court or {}))).scores
        source = "replay on the court it was judged on (no evaluation run)"
    return MonitoringOutcome(ev, score_drift(ev.scores, baseline, rules), list(baseline), source)
