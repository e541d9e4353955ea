"""Build the vectorized environment an EnvironmentConfig names."""

from __future__ import annotations

from typing import Any

from .config import EnvironmentConfig


def make_env(config: EnvironmentConfig, num_courts: int, seed: int | None = None) -> Any:
    """``num_courts`` copies of the environment side by side (VecTennis's interface), seeded.

    tennis: the built-in VecTennis on ``env_kwargs``'s court. pettingzoo: that many instances
    of the user's ParallelEnv. unity: the build's own courts (``num_courts`` is the build's)."""
    kind, target = config.kind, config.target
    if kind == "tennis":
        from tennis_assets.sim import VecTennis

        return VecTennis(num_courts=num_courts, params=config.court(), seed=seed)
    if kind == "pettingzoo":
        from .pettingzoo_vec import PettingZooVecEnv, load_factory

        return PettingZooVecEnv(load_factory(target), dict(config.env_kwargs), num_courts, seed,
                                scoring=config.rule(), name=config.env)
    from tennis_assets.unity import UnityEnv

    return UnityEnv(target or None, seed=seed or 0, scoring=config.rule(), **config.env_kwargs)


def fit_agent(agent_config: Any, shapes: Any) -> Any:
    """``agent_config`` with the sizes of ``shapes`` (an open environment, or ``describe``'s
    dict): agents, observation and action sizes are the environment's, never a user's."""
    def get(name: str) -> Any:
        return shapes.get(name) if isinstance(shapes, dict) else getattr(shapes, name)

    return agent_config.replace(num_agents=get("num_agents"), obs_size=get("obs_size"),
                                action_size=get("action_size"))


def describe(config: EnvironmentConfig) -> dict[str, Any]:
    """The environment's shapes (agents, observation and action sizes) from one court."""
    env = make_env(config, 1, seed=0)
    try:
        return {"num_agents": env.num_agents, "obs_size": env.obs_size,
                "action_size": env.action_size,
                "agents": list(getattr(env, "agents", range(env.num_agents)))}
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()
