"""Run profiles: how big one pass of the whole workflow is (training, tuning, evaluation).

``tiny`` is for tests (seconds; its agents do not learn), ``quick`` for the README command and the
UI default (a few minutes on a 2-core laptop), ``full`` for real runs. Values set explicitly in a
run's configuration override the profile's.
"""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "train": {"num_courts": 4, "max_seconds": 30.0, "max_updates": 300,
                  "eval_every_updates": 100, "eval_episodes": 5},
        "agent": {"learning_starts": 256, "buffer_size": 20_000},
        "tuning": {"n_trials": 3, "trial_max_seconds": 10.0, "trial_max_updates": 200,
                   "min_completed_trials": 2},
        "evaluation": {"episodes": 20, "gif_max_frames": 60, "latency_samples": 50},
    },
    "quick": {
        # Stop once a greedy evaluation certifies 2.2 (the game's ceiling is about 2.7): a
        # champion that is clearly good, not one that just passed 0.5. Measured
        # (bench_time_to_solve.py --train target_score=2.2): stopped after 12-45 s, then
        # 2.54-2.58 on 100 fresh episodes over 3 seeds.
        "train": {"max_seconds": 60.0, "stop_when_solved": True, "target_score": 2.2},
        "agent": {},
        "tuning": {"n_trials": 4, "trial_max_seconds": 12.0, "trial_max_updates": None,
                   "min_completed_trials": 2},
        "evaluation": {"episodes": 100, "gif_max_frames": 200, "latency_samples": 200},
    },
    "full": {
        "train": {"max_seconds": 180.0, "stop_when_solved": False},
        "agent": {},
        "tuning": {"n_trials": 20, "trial_max_seconds": 40.0, "trial_max_updates": None,
                   "min_completed_trials": 10},
        "evaluation": {"episodes": 100, "gif_max_frames": 300, "latency_samples": 500},
    },
}
