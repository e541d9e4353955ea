"""UnityTennis: a Unity ML-Agents Tennis build (or the Editor) behind VecTennis's interface.

``reset(seed=None) -> obs [N, 2, O]`` and ``step(actions [N, 2, A]) -> StepResult`` with the
same fields and auto-reset semantics as ``tennis_assets.sim.VecTennis``, so the training loop and
evaluation run on either. N (courts), O and A are read from the build: a court is one pair of
players; 0.4-era Tennis reports 24 observations and 2 actions, later releases 27 and 3.

How agents map to the two seats:
- two behaviours (ML-Agents 1.x: "Tennis?team=0" and "Tennis?team=1"): the lower team id is
  agent 0, the other agent 1; courts pair the k-th smallest agent id of each team;
- one behaviour (0.4-era "TennisBrain"): agents sorted by id, consecutive pairs form a court,
  the first of each pair is agent 0.
Anything else (three teams, an odd number of agents, discrete or visual-only specs) is refused
with a ``UnityBuildError`` naming what the build reported.

Every error closes the connection, stops the gRPC server and reaps the build's process before it
is raised.
"""

from __future__ import annotations

import numpy as np

from tennis_assets.sim import StepResult


class UnityError(RuntimeError):
    """Base class of the adapter's errors."""


class UnityBuildError(UnityError):
    """The build cannot be launched, or is not a two-player continuous-action game."""


class UnityTimeoutError(UnityError):
    """The build (or Editor) did not answer within the timeout."""


class UnityConnectionError(UnityError):
    """The build exited or closed the connection, or its port is taken."""


def _team(name: str) -> int:
    head, sep, tail = name.rpartition("?team=")
    return int(tail) if sep and tail.isdigit() else 0


class UnityTennis:
    """Two-player Tennis courts served by a Unity build through mlagents-envs.

    file_name: the build (``UnityEnvironment`` also tries ``.x86_64``/``.x86``); None connects to
    an Editor (press Play) or any other ML-Agents client on base_port (default 5004).
    worker_id: the port offset, base_port + worker_id (base_port defaults to 5005 for a build).
    seed: sent at launch; the built-in peer also honours ``reset(seed=...)``, a Unity build only
    the launch seed. time_scale: Unity's simulation speed-up (the Editor's is 1).
    timeout_s: how long to wait for any answer from Unity.
    """

    num_agents = 2

    def __init__(self, file_name: str | None = None, *, worker_id: int = 0,
                 base_port: int | None = None, seed: int = 0, time_scale: float = 20.0,
                 no_graphics: bool = True, timeout_s: float = 60.0,
                 additional_args: list[str] | None = None, log_folder: str | None = None) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale={time_scale}: must be > 0")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s}: must be > 0")
        if file_name is None and worker_id != 0:
            raise ValueError(f"worker_id={worker_id}: an Editor connection (file_name=None) needs "
                             "worker_id=0; choose its port with base_port")
        from mlagents_envs.side_channel.engine_configuration_channel import (
            EngineConfigurationChannel)

        from .connection import Environment, SeedChannel

        self.file_name = file_name
        self._timeout_s = float(timeout_s)
        port_base = base_port if base_port is not None else (5005 if file_name else 5004)
        self.port = port_base + int(worker_id)
        self._where = (f"Unity build {file_name!r} on port {self.port}" if file_name
                       else f"Unity Editor (or ML-Agents client) on port {self.port}")
        self._env = None
        engine = EngineConfigurationChannel()
        engine.set_configuration_parameters(time_scale=float(time_scale))
        self._seed_channel = SeedChannel()
        # The first reset below serves the points VecTennis(seed=seed) serves on construction.
        self._seed_channel.send_seed(seed)
        try:
            self._env = Environment(
                file_name=file_name, worker_id=int(worker_id), base_port=base_port,
                seed=int(seed) % 2**31, no_graphics=no_graphics, timeout_wait=self.timeout_s,
                side_channels=[engine, self._seed_channel], additional_args=additional_args,
                log_folder=log_folder)
        except UnityError:
            raise  # the build was checked, or refused to start: the message names it
        except Exception as exc:
            raise self._translate(exc) from exc
        try:
            self._read_specs()
            self._env.reset()
            self._map_agents()
            self._obs = self._collect(first=True).obs
        except BaseException as exc:
            self.close(grace_s=0)
            if isinstance(exc, UnityError) or not isinstance(exc, Exception):
                raise
            raise self._translate(exc) from exc

    # ------------------------------------------------------------------ specs and agent map
    def _read_specs(self) -> None:
        specs = dict(self._env.behavior_specs)
        described = ", ".join(f"{n!r} ({s.action_spec})" for n, s in sorted(specs.items()))
        for name, spec in specs.items():
            if spec.action_spec.discrete_size > 0:
                raise UnityBuildError(
                    f"{self._where}: behaviour {name!r} has a discrete action space (branches "
                    f"{spec.action_spec.discrete_branches}); Tennis needs continuous actions")
            if any(len(o.shape) != 1 for o in spec.observation_specs):
                raise UnityBuildError(
                    f"{self._where}: behaviour {name!r} has observations of shapes "
                    f"{[o.shape for o in spec.observation_specs]}; only vector observations "
                    "are supported")
        if len(specs) not in (1, 2):
            raise UnityBuildError(
                f"{self._where}: expected a two-player game (one behaviour with both players, or "
                f"two teams), but the build has {len(specs)} behaviours: {described}")
        sizes = {(sum(o.shape[0] for o in s.observation_specs), s.action_spec.continuous_size)
                 for s in specs.values()}
        if len(sizes) != 1:
            raise UnityBuildError(f"{self._where}: the behaviours disagree on observation and "
                                  f"action sizes: {described}")
        (self.obs_size, self.action_size), = sizes
        self.behaviours = sorted(specs, key=lambda n: (_team(n), n))

    def _map_agents(self) -> None:
        """(behaviour, agent id) -> (court, seat), from the first decision requests."""
        ids = {name: sorted(int(a) for a in self._env.get_steps(name)[0].agent_id)
               for name in self.behaviours}
        counts = {name: len(v) for name, v in ids.items()}
        self._seat: dict[str, dict[int, tuple[int, int]]] = {}
        if len(self.behaviours) == 2:
            a, b = self.behaviours
            if counts[a] != counts[b] or counts[a] == 0:
                raise UnityBuildError(f"{self._where}: the two teams have {counts} agents; "
                                      "a court needs one player of each")
            self.num_courts = counts[a]
            for seat, name in enumerate(self.behaviours):
                self._seat[name] = {aid: (c, seat) for c, aid in enumerate(ids[name])}
        else:
            (name,) = self.behaviours
            if counts[name] == 0 or counts[name] % 2:
                raise UnityBuildError(f"{self._where}: behaviour {name!r} has {counts[name]} "
                                      "agents; a two-player build has two per court")
            self.num_courts = counts[name] // 2
            self._seat[name] = {aid: (i // 2, i % 2) for i, aid in enumerate(ids[name])}
        n = self.num_courts
        self._returns = np.zeros((n, 2), dtype=np.float64)
        self._lengths = np.zeros(n, dtype=np.int32)

    def _rows(self, name: str, agent_ids) -> tuple[np.ndarray, np.ndarray]:
        seat = self._seat[name]
        try:
            pairs = [seat[int(a)] for a in agent_ids]
        except KeyError as exc:
            raise UnityBuildError(f"{self._where}: agent {exc.args[0]} of {name!r} appeared "
                                  "after the start; the adapter needs a fixed set of agents")
        if not pairs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        courts, seats = zip(*pairs)
        return np.asarray(courts), np.asarray(seats)

    # ------------------------------------------------------------------ VecTennis interface
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every court; returns the first observations [N, 2, O]."""
        self._check_open()
        if seed is not None:
            self._seed_channel.send_seed(seed)
        self._call(self._env.reset)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._obs = self._collect(first=True).obs
        return self._obs.copy()

    def step(self, actions) -> StepResult:
        """One decision of every court; courts that end are served again by Unity."""
        from mlagents_envs.base_env import ActionTuple

        self._check_open()
        a = np.asarray(actions, dtype=np.float32)
        shape = (self.num_courts, 2, self.action_size)
        if a.shape != shape:
            raise ValueError(f"actions must have shape {shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("actions contain NaN or inf")
        a = np.clip(a, -1.0, 1.0)
        for name in self.behaviours:
            courts, seats = self._decision_rows[name]
            self._env.set_actions(name, ActionTuple(continuous=a[courts, seats]))
        self._call(self._env.step)
        return self._collect(first=False)

    def _collect(self, first: bool) -> StepResult:
        n, o = self.num_courts, self.obs_size
        obs = np.zeros((n, 2, o), dtype=np.float32)
        final_obs = np.zeros((n, 2, o), dtype=np.float32)
        rewards = np.zeros((n, 2), dtype=np.float32)
        asked = np.zeros((n, 2), dtype=bool)
        ended = np.zeros((n, 2), dtype=bool)
        interrupted = np.zeros((n, 2), dtype=bool)
        self._decision_rows = {}
        for name in self.behaviours:
            decisions, terminals = self._env.get_steps(name)
            c, s = self._rows(name, decisions.agent_id)
            obs[c, s] = np.concatenate(decisions.obs, axis=1) if len(c) else 0.0
            rewards[c, s] = decisions.reward
            asked[c, s] = True
            self._decision_rows[name] = (c, s)
            if len(terminals) and not first:
                c, s = self._rows(name, terminals.agent_id)
                final_obs[c, s] = np.concatenate(terminals.obs, axis=1)
                rewards[c, s] = terminals.reward  # the new episode's first request pays nothing
                ended[c, s] = True
                interrupted[c, s] = terminals.interrupted
        if not asked.all():
            missing = [(int(c), int(s)) for c, s in np.argwhere(~asked)]
            raise UnityBuildError(
                f"{self._where}: no decision request from (court, seat) {missing[:6]}; the "
                "adapter needs every agent to decide on every step (same Decision Period)")
        done = ended.any(axis=1)
        split = done & ~ended.all(axis=1)
        if split.any():
            raise UnityBuildError(f"{self._where}: the players of courts "
                                  f"{np.flatnonzero(split).tolist()} ended their episodes apart")
        truncated = done & interrupted.any(axis=1)
        terminated = done & ~truncated
        final_obs[~done] = obs[~done]
        score = np.full(n, np.nan, dtype=np.float32)
        length = np.zeros(n, dtype=np.int32)
        if not first:
            self._returns += rewards
            self._lengths += 1
            if done.any():
                score[done] = self._returns[done].max(axis=1)
                length[done] = self._lengths[done]
                self._returns[done] = 0.0
                self._lengths[done] = 0
        return StepResult(obs, rewards, terminated, truncated, final_obs, score, length)

    # ------------------------------------------------------------------ errors and shutdown
    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, seconds: float) -> None:
        """Change how long each later exchange waits (a slow launch needs more than a step)."""
        if not seconds > 0:
            raise ValueError(f"timeout_s={seconds}: must be > 0")
        self._timeout_s = float(seconds)
        if self._env is not None:
            self._env.set_timeout(self._timeout_s)

    def _check_open(self) -> None:
        if self._env is None:
            raise UnityError(f"{self._where}: the environment is closed")

    def _call(self, fn) -> None:
        try:
            fn()
        except Exception as exc:
            self.close(grace_s=0)
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> UnityError:
        from mlagents_envs.exception import (UnityCommunicatorStoppedException,
                                             UnityEnvironmentException, UnityTimeOutException,
                                             UnityWorkerInUseException)

        text = str(exc)
        if isinstance(exc, UnityWorkerInUseException):
            return UnityConnectionError(
                f"port {self.port} is already in use (another trainer or an earlier run); pick "
                "another worker_id or base_port")
        if isinstance(exc, UnityTimeOutException):
            return UnityTimeoutError(
                f"{self._where}: no answer within {self.timeout_s:g} s (never connected, or "
                "stopped answering). A build must not wait "
                "for user input and must use Behavior Type 'Default'; an Editor must be in Play "
                "mode; on a headless machine use no_graphics")
        if isinstance(exc, UnityCommunicatorStoppedException):
            return UnityConnectionError(f"{self._where}: Unity closed the connection")
        if isinstance(exc, UnityEnvironmentException):
            if "does not match any environments" in text:
                return UnityBuildError(f"no Unity build at {self.file_name!r} (also tried "
                                       "the .x86_64 and .x86 extensions)")
            if "permissions" in text:
                return UnityBuildError(f"Unity build {self.file_name!r} is not executable; "
                                       f"run: chmod +x {self.file_name}")
            if "shut down with return code" in text:
                return UnityConnectionError(f"{self._where}: the Unity process exited "
                                            f"({text.rstrip('.').lower()})")
        return UnityError(f"{self._where}: {type(exc).__name__}: {text}")

    def close(self, grace_s: float | None = None) -> None:
        """Tell Unity to quit, stop the server and reap the process (killed after grace_s)."""
        env, self._env = self._env, None
        if env is not None:
            env.shutdown(grace_s)

    def __enter__(self) -> "UnityTennis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
