"""tennis_assets.tuning on real Optuna storages: journal file, SQLite, in-memory; median pruning
of a weak trial; multi-objective studies; resuming a study."""

import optuna
import pytest

from tennis_assets import tuning
from tennis_assets.defs.config import TuningConfig
from tennis_assets.tuning import study_config, trial_configs


@pytest.fixture(scope="module")
def configs():
    return trial_configs(study_config("tiny"), "tiny")


def test_storage_from_url(tmp_path):
    assert isinstance(tuning.make_storage(""), optuna.storages.InMemoryStorage)
    assert isinstance(tuning.make_storage(f"sqlite:///{tmp_path / 'a' / 'o.db'}"),
                      optuna.storages.RDBStorage)
    assert isinstance(tuning.make_storage(f"journal:{tmp_path / 'j' / 'o.log'}"),
                      optuna.storages.JournalStorage)
    assert isinstance(tuning.make_storage(str(tmp_path / "plain.log")),
                      optuna.storages.JournalStorage)
    with pytest.raises(ValueError, match="search space"):
        tuning.check_params(["learning_rate"])


def test_weak_trial_is_pruned_after_its_warmup_not_at_its_first_report(tmp_path, configs):
    agent, train = configs
    url = f"journal:{tmp_path / 'prune.log'}"
    study = optuna.create_study(study_name="prune", storage=tuning.make_storage(url),
                                direction="maximize")
    space = {"actor_lr": optuna.distributions.FloatDistribution(2e-4, 3e-3, log=True)}
    for lr in (1e-3, 2e-3):  # two strong finished trials with a greedy mean of 1.0 throughout
        study.add_trial(optuna.trial.create_trial(
            params={"actor_lr": lr}, distributions=space, value=1.0,
            intermediate_values={step: 1.0 for step in range(0, 2000, 2)}))
    study = tuning.run_study("prune", url, 1, agent, train.replace(max_updates=1000),
                             params=["actor_lr"])
    weak = study.trials[-1]
    assert weak.state == optuna.trial.TrialState.PRUNED
    # Below the median at every evaluation (every 100 updates): judged only after its warm-up
    # (half the 1000-update budget), then stopped at once.
    assert weak.last_step == 500 and len(weak.intermediate_values) == 5
    assert weak.user_attrs["stop_reason"] == "callback"


def test_new_study_starts_with_the_baseline_and_names_its_objective(tmp_path, configs):
    agent, train = configs
    url = f"journal:{tmp_path / 'base.log'}"
    study = tuning.open_study("base", url)
    assert tuning.enqueue_baseline(study, agent)
    assert not tuning.enqueue_baseline(study, agent)  # only a study with no trials
    tuning.optimize(study, 2, agent, train, params=["actor_lr", "tau"])
    first = study.trials[0]
    assert first.user_attrs["baseline"] is True
    assert first.params == {"actor_lr": agent.actor_lr, "tau": agent.tau}
    # The study's best can never be worse than the baseline on its own measure.
    assert tuning.best_trial(study).values[0] >= first.values[0]
    assert study.metric_names == ["greedy_mean"]
    assert tuning.storage_for_cli(url) == str(tmp_path / "base.log")


def test_single_objective_study_resumes_and_plots(tmp_path, configs):
    agent, train = configs
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    tuning.run_study("s", url, 2, agent, train, params=["tau", "noise_sigma"], pruner="none")
    study = tuning.run_study("s", url, 1, agent, train, params=["tau", "noise_sigma"],
                             pruner="none")
    assert len(study.trials) == 3 and len(tuning.complete_trials(study)) == 3
    best = tuning.best_trial(study)
    assert set(best.params) == {"tau", "noise_sigma"}
    frame = tuning.trials_frame(study)
    assert list(frame["trial"]) == [0, 1, 2] and {"score", "tau", "duration_s"} <= set(frame)
    assert tuning.plot_history(study, tmp_path / "h.png").stat().st_size > 1000
    assert tuning.plot_importances(study, tmp_path / "i.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="objective"):
        tuning.run_study("s", url, 1, agent, train, params=["tau"], multi_objective=True)


def test_multi_objective_score_and_training_time(tmp_path, configs):
    agent, train = configs
    study = tuning.run_study("mo", "memory", 2, agent, train, params=["actor_lr"],
                             multi_objective=True, sampler="random")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert tuning.best_trial(study) in study.best_trials
    frame = tuning.trials_frame(study)
    assert (frame["train_seconds"] > 0).all()
    assert tuning.plot_history(study, tmp_path / "pareto.png").exists()


@pytest.mark.parametrize("sampler, multi_objective, marker", [
    ("cmaes", False, "cma:"),            # CMA-ES's own state, once past its one random trial
    ("nsga2", True, "NSGAIISampler:generation"),
    ("qmc", False, "qmc:"),              # the Sobol sequence's position, kept on the study
])
def test_evolutionary_and_quasi_random_samplers_drive_real_trials(tmp_path, configs, sampler,
                                                                  multi_objective, marker):
    agent, train = configs
    study = tuning.run_study(sampler, f"journal:{tmp_path / 's.log'}", 3, agent,
                             train.replace(max_updates=20), params=["actor_lr", "tau"],
                             sampler=sampler, pruner="successive_halving",
                             multi_objective=multi_objective)
    assert len(tuning.complete_trials(study)) == 3
    # The sampler's own bookkeeping, written into the storage as it sampled.
    keys = [*study._storage.get_study_system_attrs(study._study_id),
            *(key for t in study.trials for key in t.system_attrs)]
    assert any(key.startswith(marker) for key in keys), keys


def test_sampler_and_pruner_choices_are_checked_before_a_study(configs):
    import dagster as dg

    from tennis_assets.defs.config import build_config

    assert type(tuning.make_pruner("successive_halving")).__name__ == "SuccessiveHalvingPruner"
    assert type(tuning.make_sampler("gp", 0)).__name__ == "GPSampler"
    with pytest.raises(dg.DagsterInvalidConfigError, match="cmaes.*single objective"):
        build_config(TuningConfig, {"profile": "tiny", "sampler": "cmaes",
                                    "multi_objective": True}, "ops.tuning_study.config")
    with pytest.raises(ValueError, match="annealing"):
        tuning.make_sampler("annealing", 0)
    with pytest.raises(Exception, match="annealing"):
        TuningConfig(profile="tiny", sampler="annealing")


def test_ray_engine_choices_are_checked_at_launch():
    import dagster as dg

    from tennis_assets.defs.config import build_config

    path = "ops.tuning_study.config"
    for values, message in [
        ({"engine": "ray", "multi_objective": True}, "multi_objective needs engine=optuna"),
        ({"engine": "ray", "n_trials": 3, "n_workers": 2}, "n_workers"),
        ({"engine": "ray", "ray_scheduler": "pbt"}, "use ray_searcher=random"),
        ({"engine": "ray", "ray_scheduler": "pbt", "ray_searcher": "random",
          "params": ["batch_size"]}, "tunes none of them"),
    ]:
        with pytest.raises(dg.DagsterInvalidConfigError, match=message) as info:
            build_config(TuningConfig, {"profile": "tiny", **values}, path)
        assert path in str(info.value)
    assert build_config(TuningConfig, {"profile": "tiny", "engine": "ray",
                                       "ray_scheduler": "pbt", "ray_searcher": "random"},
                        path).core().engine == "ray"
