"""Does tuning help? The quick profile's study over several seeds, then both candidates judged.

    python bench/bench_tuning.py [--seeds 0 1 2] [--final]

For each seed: a new study (in memory) with the quick profile's trials, exactly as the
``tuning_study`` asset runs it (TPE, the patient median pruner, the baseline configuration as the
first trial), then prints the baseline trial's score and the study's best (``tuned``) on the
study's own measure. With ``--final`` it also trains the ``baseline`` and ``tuned`` candidates with
the quick profile's training (as ``trained_agents`` does) and judges both on the same 100 fresh
episodes, which is what the promotion rule compares.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def study_for_seed(seed: int):
    from tennis_assets import tuning
    config = tuning.study_config("quick", sampler_seed=seed)
    agent, train = tuning.trial_configs(config, "quick")
    study = tuning.open_study(f"bench-{seed}", None, seed=seed, sampler="tpe", pruner="median",
                              warmup_updates=tuning.prune_warmup(train.max_updates))
    tuning.enqueue_baseline(study, agent)
    tuning.optimize(study, config.n_trials, agent, train)
    return study


def judged(seed: int, tuned_params: dict | None) -> float:
    from tennis_assets.training import evaluate, final_seed, greedy, train
    from tennis_assets.workflow.candidate import candidate_configs

    agent, cfg = candidate_configs("quick", train_overrides={"seed": seed}, tuned=tuned_params)
    result = train(agent, cfg, progress=False)
    return evaluate(greedy(result.learner), episodes=100, seed=final_seed(seed, 1)).mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--final", action="store_true",
                    help="also train both candidates and judge them on 100 fresh episodes")
    args = ap.parse_args()

    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        study = study_for_seed(seed)
        trials = study.trials
        baseline = trials[0]
        best = max((t for t in trials if t.values), key=lambda t: t.values[0])
        row = {"seed": seed, "baseline_trial": baseline.values[0] if baseline.values else None,
               "tuned_trial": best.values[0], "best_trial": best.number,
               "states": "".join(t.state.name[0] for t in trials),
               "study_s": time.perf_counter() - t0}
        if args.final:
            row["baseline_final"] = judged(seed, None)
            row["tuned_final"] = judged(seed, dict(best.params))
        rows.append(row)
        print(f"seed {seed}: baseline trial {row['baseline_trial']:.3f}, tuned (trial "
              f"{row['best_trial']}) {row['tuned_trial']:.3f}, trial states {row['states']} "
              f"(C complete, P pruned), study {row['study_s']:.0f} s"
              + (f"; 100 fresh episodes: baseline {row['baseline_final']:.3f}, tuned "
                 f"{row['tuned_final']:.3f}" if args.final else ""), flush=True)

    held = sum(r["tuned_trial"] >= r["baseline_trial"] for r in rows)
    gain = statistics.median(r["tuned_trial"] - r["baseline_trial"] for r in rows)
    print(f"\ntuned >= baseline on the study's measure: {held}/{len(rows)} seeds; median "
          f"tuned - baseline {gain:.3f}")
    if args.final:
        wins = sum(r["tuned_final"] >= r["baseline_final"] for r in rows)
        print(f"tuned >= baseline on 100 fresh episodes: {wins}/{len(rows)} seeds; median "
              f"tuned - baseline "
              f"{statistics.median(r['tuned_final'] - r['baseline_final'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
