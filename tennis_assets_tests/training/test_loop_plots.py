import numpy as np
import pytest
import torch

from tennis_assets.agents import AgentConfig
from tennis_assets.training import TrainConfig, plot_learning_curve, train
from tennis_assets.training.loop import EPISODE_COLUMNS, EVAL_COLUMNS

SMALL = {"actor_hidden": 32, "critic_hidden": 32, "batch_size": 32, "buffer_size": 5000,
         "learning_starts": 128}


@pytest.mark.parametrize("alg", ["ddpg", "maddpg"])
def test_tiny_run_has_finite_weights_and_well_formed_history(alg, capsys):
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=200, eval_every_updates=100,
                     selection_episodes=5, seed=1, final_eval_episodes=5)
    res = train(AgentConfig(algorithm=alg, **SMALL), tc, progress=False)
    assert capsys.readouterr().out == ""  # progress=False is silent
    assert res.updates == 200 and res.stop_reason == "max_updates"
    assert torch.isfinite(res.learner.params).all() and torch.isfinite(res.learner.target).all()
    h = res.history
    assert list(h.columns) == EPISODE_COLUMNS and len(h) == res.episodes > 0
    assert np.all(np.diff(h["episode"]) == 1) and np.all(np.diff(h["seconds"]) >= 0)
    assert h["score"].between(-0.02, 3.0).all()
    assert list(res.eval_history.columns) == EVAL_COLUMNS and len(res.eval_history) == 2
    assert res.final_eval is not None and res.final_eval.episodes == 5
    assert set(res.timing) >= {"update", "simulate", "evaluate", "total"}


def test_callback_can_stop_and_progress_bar_runs(capsys):
    seen = []

    def cb(kind, info):
        seen.append(kind)
        return kind == "episode" and info["episode"] >= 3

    tc = TrainConfig(num_courts=4, max_seconds=30, max_episodes=50, seed=2)
    res = train(AgentConfig(**SMALL), tc, progress=True, callback=cb)
    assert res.stop_reason == "callback" and res.episodes >= 3 and "episode" in seen


def test_best_weights_are_kept(monkeypatch):
    """The returned weights are those of the best greedy evaluation, not the last ones."""
    from tennis_assets.training import loop

    means = iter([0.3, 0.9, 0.1, 0.2])
    snapshots = []
    real = loop.evaluate

    def fake(act_fn, **kw):
        res = real(act_fn, **{**kw, "episodes": 2})
        res.mean = next(means)
        snapshots.append(act_fn(np.ones((1, 2, 24), np.float32)))
        return res

    monkeypatch.setattr(loop, "evaluate", fake)
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=400, eval_every_updates=100,
                     selection_episodes=2, seed=0)
    res = train(AgentConfig(**SMALL), tc, progress=False)
    assert res.best_greedy_mean == 0.9 and res.best_updates == 200
    assert np.array_equal(res.learner.act(np.ones((1, 2, 24), np.float32)), snapshots[1])


def test_learning_curve_png(tmp_path):
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=100, eval_every_updates=50,
                     selection_episodes=3)
    res = train(AgentConfig(**SMALL), tc, progress=False)
    for x in ("episode", "seconds"):
        out = plot_learning_curve(res.history, res.eval_history, tmp_path / f"c_{x}.png",
                                  title="test", x=x)
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="x="):
        plot_learning_curve(res.history, None, tmp_path / "bad.png", x="updates")


@pytest.mark.slow
def test_default_ddpg_actually_learns():
    """Well above random play (greedy mean about 0.02) within 15,000 updates (about 30 s on
    an idle core; a budget in updates, since at load 14 a 30 s budget gave 1,500 updates)."""
    from tennis_assets.training.defaults import default_configs

    ac, tc = default_configs("ddpg")
    res = train(ac, tc.replace(max_seconds=None, max_updates=15_000, stop_when_solved=True,
                               seed=0), progress=False)
    assert res.best_greedy_mean >= 0.3, res.eval_history.to_string()


@pytest.mark.parametrize("alg", ["ddpg", "maddpg"])
def test_loop_feeds_evaluations_to_evidence_based_noise_and_runs_the_options(alg):
    # Noise decays only on evaluations here (per-step decay off), so a lower sigma at the end
    # can only come from the loop reporting evaluations that improved.
    extra = {"shared_critic": True} if alg == "maddpg" else {}
    ac = AgentConfig(algorithm=alg, noise_decay=1.0, noise_eval_decay=0.5, n_step=3,
                     target_noise=0.2, **extra, **SMALL)
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=300, eval_every_updates=100,
                     selection_episodes=5, seed=3)
    res = train(ac, tc, progress=False)
    improving = np.sum(np.diff(np.maximum.accumulate(
        np.r_[-np.inf, res.eval_history["greedy_mean"].to_numpy()])) > 0)
    assert improving >= 1
    assert res.learner.noise.sigma == pytest.approx(max(ac.noise_sigma_min,
                                                        ac.noise_sigma * 0.5 ** improving))
    assert torch.isfinite(res.learner.params).all()


def test_explore_with_best_hands_the_best_weights_to_exploring_steps_after_a_solve():
    # A target every policy meets: the first evaluation certifies it, so from then on the
    # behaviour is the best evaluated weights, and the solve scales the noise away.
    ac = AgentConfig(noise_solved_scale=0.0, **SMALL)
    tc = TrainConfig(num_courts=4, max_seconds=None, max_updates=300, eval_every_updates=100,
                     selection_episodes=5, seed=3, target_score=-1.0, explore_with_best=True)
    res = train(ac, tc, progress=False)
    assert res.solved_greedy is not None
    assert res.learner._behaviour_actor is not None
    assert res.learner.noise.sigma == 0.0
    off = train(ac, tc.replace(explore_with_best=False), progress=False)
    assert off.learner._behaviour_actor is None
    mixed = train(ac, tc.replace(best_courts=2), progress=False)
    assert mixed.learner._behaviour_actor is not None
    assert mixed.learner._behaviour_courts == 2
    with pytest.raises(ValueError, match="best_courts=5 must not exceed num_courts=4"):
        tc.replace(best_courts=5)
