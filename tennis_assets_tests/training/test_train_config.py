import pytest

from tennis_assets.agents import AgentConfig
from tennis_assets.training import TrainConfig


def test_defaults_valid_and_round_trip():
    cfg = TrainConfig()
    assert cfg.target_score is None and cfg.max_seconds == 60.0  # None: the environment's
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("field, value", [
    ("num_courts", 0), ("max_seconds", -5.0), ("max_updates", 0), ("updates_per_transition", 0),
    ("eval_every_updates", 0), ("selection_episodes", 0), ("warmup_steps", -1), ("seed", -1),
    ("num_courts", 2.5), ("target_score", float("inf")),
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
    with pytest.raises(ValueError, match="courts: unknown field"):
        TrainConfig.from_dict({"courts": 8})



def test_recipes_differ_from_the_base_values_only_where_they_say():
    from tennis_assets.training.defaults import default_configs

    base_agent, base_train = AgentConfig(algorithm="ddpg"), TrainConfig()
    assert default_configs("ddpg") == (base_agent, base_train)
    ep_agent, ep_train = default_configs("ddpg", "episodes")
    assert ep_agent == base_agent.replace(actor_lr=2e-3, critic_lr=2e-3, noise_solved_scale=0.0)
    assert ep_train == base_train.replace(updates_per_transition=0.5, explore_with_best=True)
    # MADDPG's default is the base values with one shared critic.
    assert default_configs("maddpg") == (AgentConfig(algorithm="maddpg", shared_critic=True),
                                         base_train)
    assert default_configs("maddpg", "episodes")[0].shared_critic
    with pytest.raises(ValueError, match="recipe"):
        default_configs("ddpg", "fastest")
