"""Which tuner finds the best learner in the same time? Each engine and strategy gets the same
wall budget, the same two CPUs and the same search space (all of tuning.SEARCH_SPACE), with the
quick profile's trials (12 s of training each).

    python bench/bench_tuners.py [--budget 60] [--seeds 0 1 2] [--strategies tpe cmaes ...]

Strategies: ``tpe``, ``cmaes``, ``random`` (the Optuna engine: two worker processes sharing a
journal-file study, the median pruner, as ``tuning_study`` runs with ``n_workers: 2``),
``ray-optuna`` (Ray Tune, OptunaSearch with TPE and ASHA) and ``ray-pbt`` (Ray Tune,
population-based training: one trial per CPU, each training for half the budget (its four
segments restart the simulator and reload the resume state, and PBT's exploits restart a trial),
exploiting and perturbing the other at every quarter). No baseline trial is enqueued: each
strategy picks every point itself.

For each run it prints the best greedy score (the best greedy mean a trial reached on its
evaluation episodes, ``tuning.summarize``'s best_score), the trials completed, the wall time
actually used and the machine's load average before the run; then the median of each over the
seeds. The Optuna engine starts no new trial after the budget but lets a running one finish (up
to one trial over); Ray gets the same slack (budget + one trial) and stops its trials then,
its own start-up included.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STRATEGIES = ("tpe", "cmaes", "random", "ray-optuna", "ray-pbt")
CPUS = 2
TRIAL_SECONDS = 12.0


def _configs(seed: int):
    from tennis_assets import tuning

    agent, train = tuning.trial_configs(tuning.study_config("quick", sampler_seed=seed), "quick")
    # One training thread per trial: two trials share the two CPUs.
    return agent.replace(torch_threads=1), train.replace(max_seconds=TRIAL_SECONDS)


def _optuna_worker(url: str, name: str, sampler: str, seed: int, worker: int,
                   budget: float) -> None:
    from tennis_assets import tuning

    agent, train = _configs(seed)
    study = tuning.open_study(name, url, sampler=sampler, pruner="median", seed=seed + worker,
                              create=False, warmup_updates=tuning.prune_warmup(None))
    tuning.optimize(study, 100_000, agent, train, timeout=budget)


def run_optuna(sampler: str, seed: int, budget: float, folder: Path):
    from tennis_assets import tuning

    url = f"journal:{folder / 'study.log'}"
    name = f"bench-{sampler}-{seed}"
    tuning.open_study(name, url, sampler=sampler, pruner="median", seed=seed)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_optuna_worker, args=(url, name, sampler, seed, w, budget))
               for w in range(CPUS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return tuning.open_study(name, url, sampler=sampler, create=False)


def run_ray(strategy: str, seed: int, budget: float, folder: Path):
    import ray

    from tennis_assets import ray_tuning, tuning

    agent, train = _configs(seed)
    study = tuning.open_study(f"bench-{strategy}-{seed}", "memory")
    ray.init(num_cpus=CPUS, object_store_memory=100 * 2**20, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    try:
        if strategy == "ray-pbt":
            # PBT's population trains side by side: as many members as CPUs, each as long as
            # the budget allows, rather than many short trials one after another.
            ray_tuning.run_ray_study(study, CPUS, agent, train.replace(max_seconds=0.5 * budget),
                                     searcher="random", scheduler="pbt", seed=seed,
                                     storage_path=folder, time_budget_s=budget + TRIAL_SECONDS,
                                     baseline_first=False)
        else:
            ray_tuning.run_ray_study(study, 100_000, agent, train, searcher="optuna",
                                     scheduler="asha", sampler="tpe", seed=seed,
                                     storage_path=folder, time_budget_s=budget + TRIAL_SECONDS,
                                     baseline_first=False)
    finally:
        ray.shutdown()
    return study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="wall seconds per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    args = ap.parse_args()

    from tennis_assets import tuning

    print(f"budget {args.budget:.0f} s per run, {CPUS} CPUs, trials of {TRIAL_SECONDS:.0f} s, "
          f"{os.cpu_count()} cores on this machine", flush=True)
    rows: dict[str, list[dict]] = {s: [] for s in args.strategies}
    for seed in args.seeds:
        for strategy in args.strategies:
            load = os.getloadavg()
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench-tuners-") as tmp:
                study = (run_optuna(strategy, seed, args.budget, Path(tmp))
                         if not strategy.startswith("ray") else
                         run_ray(strategy, seed, args.budget, Path(tmp)))
                summary = tuning.summarize(study)
            row = {"best": summary["best_score"] or 0.0, "complete": summary["n_complete"],
                   "trials": summary["n_trials"], "wall": time.perf_counter() - t0}
            rows[strategy].append(row)
            print(f"seed {seed} {strategy:10s}: best greedy {row['best']:.3f}, "
                  f"{row['complete']} trials completed of {row['trials']}, "
                  f"{row['wall']:.0f} s wall, load average before "
                  f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}", flush=True)

    print("\nmedian over seeds " + " ".join(map(str, args.seeds)))
    for strategy, runs in rows.items():
        if runs:
            print(f"{strategy:10s}: best greedy "
                  f"{statistics.median(r['best'] for r in runs):.3f}, trials completed "
                  f"{statistics.median(r['complete'] for r in runs):g}, wall "
                  f"{statistics.median(r['wall'] for r in runs):.0f} s ({len(runs)} seed(s))")


if __name__ == "__main__":
    main()
