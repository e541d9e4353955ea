"""Environments made and closed from several threads of one process (a Unity protocol peer beside
an evaluation, a policy server's drift check beside a request): MPE's close() quits pygame for
the whole process, which used to break another thread's constructor mid-way."""

from __future__ import annotations

import threading

from tennis_assets.envs import EnvironmentConfig, make_env

SPREAD = EnvironmentConfig(env="pettingzoo:mpe2.simple_spread_v3:parallel_env",
                           env_kwargs={"continuous_actions": True})


def test_mpe_envs_made_and_closed_in_four_threads_at_once():
    errors: list[str] = []

    def churn() -> None:
        try:
            for _ in range(30):
                env = make_env(SPREAD, 2, seed=1)
                env.step(env.reset()[:, :, :5] * 0)
                env.close()
        except Exception as exc:  # noqa: BLE001 - every thread's failure is reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
