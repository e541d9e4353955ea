import json

import pytest

from tennis_assets.agents import AgentConfig, DDPGLearner, MADDPGLearner, make_learner


def test_defaults_are_valid_and_json_round_trip():
    cfg = AgentConfig()
    assert cfg.algorithm == "ddpg"
    data = json.loads(json.dumps(cfg.to_dict()))
    assert AgentConfig.from_dict(data) == cfg


@pytest.mark.parametrize("field, value", [
    ("actor_lr", -1e-3), ("critic_lr", 0.0), ("algorithm", "ppo"), ("batch_size", 0),
    ("tau", 0.0), ("tau", 1.5), ("gamma", 1.2), ("noise", "pink"), ("noise_decay", 0.0),
    ("buffer_size", 0), ("actor_hidden", 0), ("weight_decay", -0.1), ("noise_sigma", -0.1),
    ("batch_size", True), ("actor_lr", float("nan")), ("device", "tpu"), ("learning_starts", -1),
    ("preact_penalty", -1e-3), ("n_step", 0), ("noise_eval_decay", 0.0),
    ("noise_eval_decay", 1.5), ("target_noise", -0.1), ("target_noise_clip", -1.0),
    ("shared_critic", 1), ("compile_update", "yes"), ("noise_solved_scale", -0.1),
    ("noise_solved_scale", 1.5), ("cuda_graph_update", 1),
])
def test_invalid_values_name_field_and_value(field, value):
    with pytest.raises(ValueError) as err:
        AgentConfig(**{field: value})
    assert field in str(err.value)
    assert repr(value) in str(err.value)


def test_cross_field_checks():
    with pytest.raises(ValueError, match="batch_size"):
        AgentConfig(batch_size=512, buffer_size=256)
    with pytest.raises(ValueError, match="noise_sigma_min"):
        AgentConfig(noise_sigma=0.1, noise_sigma_min=0.2)


def test_from_dict_rejects_unknown_keys():
    data = AgentConfig().to_dict()
    data["lerning_rate"] = 1e-3
    with pytest.raises(ValueError, match="lerning_rate"):
        AgentConfig.from_dict(data)


def test_make_learner_dispatches_on_algorithm():
    assert isinstance(make_learner(AgentConfig(algorithm="ddpg")), DDPGLearner)
    assert isinstance(make_learner(AgentConfig(algorithm="maddpg")), MADDPGLearner)
    with pytest.raises(TypeError):
        make_learner({"algorithm": "ddpg"})
