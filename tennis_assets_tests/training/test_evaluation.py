import numpy as np
import pytest

from tennis_assets.sim import RandomPolicy, ScriptedSwingPolicy
from tennis_assets.training import evaluate, final_seed, selection_seed


def mixed_policy(every: int):
    """Scripted rallies on courts whose index is a multiple of ``every``, random elsewhere:
    the mean lands near a chosen value, which makes the decision at 0.5 a close call."""
    scripted, rand = ScriptedSwingPolicy(), RandomPolicy(seed=0)

    def act(obs):
        out = rand(obs)
        idx = np.arange(obs.shape[0]) % every == 0
        out[idx] = scripted(obs[idx])
        return out

    return act


def test_random_policy_fails_and_reports_fields():
    res = evaluate(RandomPolicy(seed=0), episodes=100, seed=3)
    assert res.scores.shape == (100,) and res.complete
    assert res.mean < 0.2 and not res.solved
    assert res.lengths.min() >= 1 and res.mean_length < 100
    assert res.median <= res.mean + 0.1 and res.std >= 0
    assert res.latency_per_decision_s > 0 and res.decisions == res.lengths.sum()


def test_scripted_policy_solves_and_early_stop_decides_sooner():
    full = evaluate(ScriptedSwingPolicy(), episodes=20, seed=1)
    assert full.solved and full.mean > 2.0 and full.complete
    early = evaluate(ScriptedSwingPolicy(), episodes=20, seed=1, stop_when_decided=True)
    assert early.solved and not early.complete
    assert early.decisions < full.decisions / 4  # about 200 of the 1000 decisions
    assert np.all(early.scores <= full.scores + 1e-9)  # lower bounds, never above the truth


@pytest.mark.parametrize("every", [2, 3, 4, 5, 6, 8])
def test_early_stopping_gives_the_full_evaluation_decision(every):
    full = evaluate(mixed_policy(every), episodes=60, seed=11)
    early = evaluate(mixed_policy(every), episodes=60, seed=11, stop_when_decided=True)
    assert early.solved == full.solved
    assert early.mean <= full.mean + 1e-9
    if not full.solved:
        assert early.complete and early.mean == pytest.approx(full.mean)


def test_same_seed_same_episodes_and_seed_ranges_disjoint():
    a = evaluate(RandomPolicy(seed=0), episodes=30, seed=5)
    b = evaluate(RandomPolicy(seed=0), episodes=30, seed=5)
    assert np.array_equal(a.scores, b.scores)
    sel = {selection_seed(s, k) for s in range(20) for k in range(200)}
    fin = {final_seed(s, k) for s in range(20) for k in range(200)}
    assert not sel & fin
    with pytest.raises(ValueError, match="episodes"):
        evaluate(RandomPolicy(seed=0), episodes=0)
