import pytest

from tennis_assets.training import TrainConfig


def test_defaults_valid_and_round_trip():
    cfg = TrainConfig()
    assert cfg.target_score == 0.5
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("field, value", [
    ("num_courts", 0), ("max_seconds", -5.0), ("max_updates", 0), ("updates_per_transition", 0),
    ("eval_every_updates", 0), ("eval_episodes", 0), ("warmup_steps", -1), ("seed", -1),
    ("court", {"gravty": -9.81}), ("num_courts", 2.5), ("target_score", float("inf")),
])
def test_invalid_values_name_field(field, value):
    with pytest.raises(ValueError) as err:
        TrainConfig(**{field: value})
    assert field in str(err.value)


def test_needs_some_budget_and_checkpoint_path():
    with pytest.raises(ValueError, match="at least one"):
        TrainConfig(max_seconds=None)
    with pytest.raises(ValueError, match="checkpoint_path"):
        TrainConfig(checkpoint_every_updates=100)
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"courts": 8})
    assert TrainConfig(court={"ball_scale": 1.2}).court_params().ball_scale == 1.2


def test_recipes_differ_only_where_the_episodes_recipe_says():
    from tennis_assets.training.defaults import default_configs

    agent, train = default_configs("ddpg")
    ep_agent, ep_train = default_configs("ddpg", "episodes")
    assert ep_agent == agent.replace(noise_solved_scale=0.0)
    assert ep_train == train.replace(updates_per_transition=1.0, explore_with_best=True)
    assert default_configs("maddpg", "episodes")[0].shared_critic
    with pytest.raises(ValueError, match="recipe"):
        default_configs("ddpg", "fastest")
