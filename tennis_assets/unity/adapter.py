"""UnityEnv: any Unity ML-Agents build (or the Editor) with continuous actions behind VecTennis's
interface; UnityTennis: the two-player Tennis builds, its special case.

``reset(seed=None) -> obs [N, A, O]`` and ``step(actions [N, A, act]) -> StepResult`` with the
same fields and auto-reset semantics as ``tennis_assets.sim.VecTennis`` and
``tennis_assets.envs.PettingZooVecEnv``, so training and evaluation run on any of them. The
build is read at connection: one behaviour (or the teams of one, "Name?team=k") with continuous
actions and vector observations; O is the sum of its vector observation sizes, act its
continuous actions. Its agents form N courts of A agents by ``agents_per_court`` or the build's
multi-agent groups (``tennis_assets.unity.courts``).

What the protocol says, as the learner sees it:
- rewards: an agent's reward plus its group's reward (what ML-Agents' trainers add up);
- an agent whose episode ends (a terminal step) and that asks for a decision at the same time
  (the usual ML-Agents case) ended its episode and started the next one: every agent of its
  court must do the same, or the court's agents did not end together (refused);
- an agent that ends and stops asking has left the episode: from then on ``active`` is False,
  its observation zeros and its reward 0; its last observation is its ``obs`` and ``final_obs``
  of the step it left (as PettingZooVecEnv does);
- a court's episode ends when all its agents have ended; it is ``truncated`` when one of those
  ending at the last step was interrupted (Max Step), else ``terminated``; ``agent_terminated``
  says it per agent. Its score is the environment's rule (max, mean or sum) of the agents'
  reward sums.

Every error closes the connection, stops the gRPC server and reaps the build's process before it
is raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np

from tennis_assets.envs.scoring import score_episode
from tennis_assets.sim import StepResult

from .courts import Agents, Courts, map_courts, order_behaviours
from .errors import UnityBuildError, UnityConnectionError, UnityError, UnityTimeoutError
from .options import UnityOptions

if TYPE_CHECKING:  # imports mlagents-envs, which only a Unity environment needs
    from .connection import Environment

__all__ = [
    "UnityBuildError",
    "UnityConnectionError",
    "UnityEnv",
    "UnityError",
    "UnityTennis",
    "UnityTimeoutError",
]

# A build whose port is taken moves on to the next worker id, at most this many times: a run's
# training and evaluation environments, and runs side by side, each find a port.
PORT_TRIES = 32


class UnityEnv:
    """Courts of any ML-Agents build with continuous actions, through mlagents-envs.

    file_name: the build (``UnityEnvironment`` also tries ``.x86_64``/``.x86``); None connects to
    an Editor (press Play) or any other ML-Agents client on base_port (default 5004).
    seed: sent at launch; the built-in peer also honours ``reset(seed=...)``, a Unity build only
    the launch seed. scoring: how an episode is scored from its agents' reward sums.
    options: ``UnityOptions`` (agents_per_court, base_port, worker_id, time_scale, no_graphics,
    timeout_s, additional_args, log_folder).
    """

    game = "the adapter"  # who needs what the build lacks, in error messages
    worst_reward_to_come = None  # unknown: evaluations play every episode to its end

    def __init__(self, file_name: str | None = None, *, seed: int = 0, scoring: str = "mean",
                 **options: Any) -> None:
        opts = UnityOptions(**options)
        if file_name is None and opts.worker_id != 0:
            raise ValueError(f"worker_id={opts.worker_id}: an Editor connection (file_name=None) "
                             "needs worker_id=0; choose its port with base_port")
        if scoring not in ("max", "mean", "sum"):
            raise ValueError(f"scoring={scoring!r}: expected max, mean or sum")
        self.file_name, self.scoring, self.options = file_name, scoring, opts
        self._timeout_s = opts.timeout_s
        self._env: Environment | None = None
        self._connect(file_name, opts, int(seed))
        try:
            self._read_specs()
            self._open_env().reset()
            self._map_agents()
            self._obs = self._collect(first=True).obs
        except BaseException as exc:
            self.close(grace_s=0)
            if isinstance(exc, UnityError) or not isinstance(exc, Exception):
                raise
            raise self._translate(exc) from exc

    # ------------------------------------------------------------------ connection
    def _connect(self, file_name: str | None, opts: UnityOptions, seed: int) -> None:
        from mlagents_envs.exception import UnityWorkerInUseException
        from mlagents_envs.side_channel.engine_configuration_channel import (
            EngineConfigurationChannel,
        )

        from .connection import Environment, SeedChannel

        engine = EngineConfigurationChannel()
        engine.set_configuration_parameters(time_scale=float(opts.time_scale))
        self._seed_channel = SeedChannel()
        # The first reset serves what a VecTennis(seed=seed) serves on construction.
        self._seed_channel.send_seed(seed)
        base = opts.base_port if opts.base_port is not None else (5005 if file_name else 5004)
        tries = PORT_TRIES if file_name else 1
        for attempt in range(tries):
            worker = opts.worker_id + attempt
            self._set_port(base + worker, first=base + opts.worker_id)
            try:
                self._env = Environment(
                    file_name=file_name, worker_id=worker, base_port=opts.base_port,
                    seed=seed % 2**31, no_graphics=opts.no_graphics,
                    timeout_wait=self.timeout_s, side_channels=[engine, self._seed_channel],
                    additional_args=list(opts.additional_args), log_folder=opts.log_folder)
                return
            except UnityError:
                raise  # the build was checked, or refused to start: the message names it
            except UnityWorkerInUseException as exc:
                if attempt + 1 == tries:
                    raise self._translate(exc) from exc
            except Exception as exc:
                raise self._translate(exc) from exc

    def _set_port(self, port: int, first: int) -> None:
        self.port, self._first_port = port, first
        self._where = (f"Unity build {self.file_name!r} on port {port}" if self.file_name
                       else f"Unity Editor (or ML-Agents client) on port {port}")

    # ------------------------------------------------------------------ specs and agent map
    def _read_specs(self) -> None:
        specs = dict(self._open_env().behavior_specs)
        self._check_behaviours(specs)
        described = ", ".join(f"{n!r} ({s.action_spec})" for n, s in sorted(specs.items()))
        for name, spec in specs.items():
            if spec.action_spec.discrete_size > 0:
                raise UnityBuildError(
                    f"{self._where}: behaviour {name!r} has a discrete action space (branches "
                    f"{spec.action_spec.discrete_branches}); {self.game} needs continuous "
                    "actions")
            if any(len(o.shape) != 1 for o in spec.observation_specs):
                raise UnityBuildError(
                    f"{self._where}: behaviour {name!r} has observations of shapes "
                    f"{[o.shape for o in spec.observation_specs]}; only vector observations "
                    "are supported")
        sizes = {(sum(o.shape[0] for o in s.observation_specs), s.action_spec.continuous_size)
                 for s in specs.values()}
        if len(sizes) != 1:
            raise UnityBuildError(f"{self._where}: the behaviours disagree on observation and "
                                  f"action sizes: {described}")
        (self.obs_size, self.action_size), = sizes
        self.behaviours = order_behaviours(list(specs), self._where)

    def _check_behaviours(self, specs: dict[str, Any]) -> None:
        """A game's own demands on the build's behaviours (none in general)."""

    def _map_agents(self) -> None:
        """(behaviour, agent id) -> (court, seat), from the first decision requests."""
        first = {}
        for name in self.behaviours:
            decisions = self._open_env().get_steps(name)[0]
            first[name] = Agents(np.asarray(decisions.agent_id, dtype=np.int64),
                                 np.asarray(decisions.group_id, dtype=np.int64))
        courts = self._courts(first)
        self.num_courts, self.num_agents = courts.num_courts, courts.num_agents
        self.agents = courts.names
        self._seat = courts.seats
        n, m = self.num_courts, self.num_agents
        self._returns = np.zeros((n, m), dtype=np.float64)
        self._lengths = np.zeros(n, dtype=np.int32)
        self._left = np.zeros((n, m), dtype=bool)  # ended this episode, no longer asking
        self._acting = np.ones((n, m), dtype=bool)  # asked for a decision: acts next step

    def _courts(self, first: dict[str, Agents]) -> Courts:
        return map_courts(first, self.options.agents_per_court, self._where)

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
        """Reset every court; returns the first observations [N, A, O]."""
        env = self._open_env()
        if seed is not None:
            self._seed_channel.send_seed(seed)
        self._call(env.reset)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._left[:] = False
        self._obs = self._collect(first=True).obs
        return self._obs.copy()

    def step(self, actions) -> StepResult:
        """One decision of every acting agent; courts that end are served again by Unity."""
        from mlagents_envs.base_env import ActionTuple

        env = self._open_env()
        a = np.asarray(actions, dtype=np.float32)
        shape = (self.num_courts, self.num_agents, self.action_size)
        if a.shape != shape:
            raise ValueError(f"actions must have shape {shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("actions contain NaN or inf")
        a = np.clip(a, -1.0, 1.0)
        for name in self.behaviours:
            courts, seats = self._decision_rows[name]
            env.set_actions(name, ActionTuple(continuous=a[courts, seats]))
        self._call(env.step)
        return self._collect(first=False)

    # ------------------------------------------------------------------ one exchange's outcome
    def _gather(self, first: bool) -> dict[str, np.ndarray]:
        """What every agent reported in the last exchange, by (court, seat)."""
        n, m, o = self.num_courts, self.num_agents, self.obs_size
        got = {"obs": np.zeros((n, m, o), np.float32), "final": np.zeros((n, m, o), np.float32),
               "asked_reward": np.zeros((n, m), np.float32),
               "ended_reward": np.zeros((n, m), np.float32),
               "asked": np.zeros((n, m), bool), "ended": np.zeros((n, m), bool),
               "interrupted": np.zeros((n, m), bool)}
        self._decision_rows = {}
        for name in self.behaviours:
            decisions, terminals = self._open_env().get_steps(name)
            c, s = self._rows(name, decisions.agent_id)
            got["obs"][c, s] = np.concatenate(decisions.obs, axis=1) if len(c) else 0.0
            got["asked_reward"][c, s] = decisions.reward + decisions.group_reward
            got["asked"][c, s] = True
            self._decision_rows[name] = (c, s)
            if len(terminals) and not first:  # a reset's terminals close nothing of ours
                c, s = self._rows(name, terminals.agent_id)
                got["final"][c, s] = np.concatenate(terminals.obs, axis=1)
                got["ended_reward"][c, s] = terminals.reward + terminals.group_reward
                got["ended"][c, s] = True
                got["interrupted"][c, s] = terminals.interrupted
        return got

    def _collect(self, first: bool) -> StepResult:
        got = self._gather(first)
        asked, ended = got["asked"], got["ended"]
        if first:
            self._refuse(~asked, "no decision request at the start from (court, seat)")
            self._acting = asked
            n = self.num_courts
            return StepResult(got["obs"], np.zeros_like(got["asked_reward"]), np.zeros(n, bool),
                              np.zeros(n, bool), got["obs"].copy(), np.full(n, np.nan, np.float32),
                              np.zeros(n, np.int32))
        over = self._left | ended
        done = over.all(axis=1)
        split = ended & asked & ~done[:, None]
        if split.any():
            courts = np.unique(np.argwhere(split)[:, 0]).tolist()
            raise UnityBuildError(
                f"{self._where}: the agents of courts {courts}"
                " ended their episodes apart (an agent started its next episode while others of "
                "its court played on); a court is a set of agents that end together: check "
                "agents_per_court")
        self._refuse(~asked & (done[:, None] | ~over),
                     "no decision request (the adapter needs every agent to decide on every step "
                     "until it leaves, same Decision Period, and every agent of a court to start "
                     "its next episode together) from (court, seat)")
        return self._settle(got, done)

    def _settle(self, got: dict[str, np.ndarray], done: np.ndarray) -> StepResult:
        """The StepResult of one exchange, and the episodes' running sums."""
        asked, ended, active = got["asked"], got["ended"], self._acting
        left_now = ended & ~asked  # left the episode while its court plays on
        obs = got["obs"]
        obs[left_now] = got["final"][left_now]
        rewards = np.where(ended, got["ended_reward"],
                           np.where(active, got["asked_reward"], 0.0)).astype(np.float32)
        final_obs = np.where(done[:, None, None], got["final"], obs)
        agent_terminated = ended & ~got["interrupted"]
        truncated = done & (ended & got["interrupted"]).any(axis=1)
        terminated = done & ~truncated
        self._left = (self._left | left_now) & ~done[:, None]
        self._acting = asked
        score = np.full(self.num_courts, np.nan, dtype=np.float32)
        length = np.zeros(self.num_courts, dtype=np.int32)
        self._returns += rewards
        self._lengths += 1
        for c in np.flatnonzero(done):
            score[c] = score_episode(self._returns[c], self.scoring)
            length[c] = self._lengths[c]
        self._returns[done] = 0.0
        self._lengths[done] = 0
        return StepResult(obs, rewards, terminated, truncated, final_obs, score, length,
                          active=active.copy(), agent_terminated=agent_terminated)

    def _refuse(self, missing: np.ndarray, what: str) -> None:
        if missing.any():
            rows = [(int(c), int(s)) for c, s in np.argwhere(missing)]
            raise UnityBuildError(f"{self._where}: {what} {rows[:6]}")

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

    def _open_env(self) -> Environment:
        if self._env is None:
            raise UnityError(f"{self._where}: the environment is closed")
        return self._env

    def _call(self, fn) -> None:
        try:
            fn()
        except Exception as exc:
            self.close(grace_s=0)
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> UnityError:
        from mlagents_envs.exception import (
            UnityCommunicatorStoppedException,
            UnityEnvironmentException,
            UnityTimeOutException,
            UnityWorkerInUseException,
        )

        text = str(exc)
        if isinstance(exc, UnityWorkerInUseException):
            return UnityConnectionError(self._port_taken())
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

    def _port_taken(self) -> str:
        if self.file_name is None:
            return (f"port {self.port} is already in use (another trainer, an earlier run, or "
                    "this run's own connection: an Editor serves one at a time, so a run that "
                    "opens several environments needs a build); choose another base_port")
        return (f"ports {self._first_port}-{self.port} are all already in use (other trainers "
                "or earlier runs); pick another worker_id or base_port")

    def close(self, grace_s: float | None = None) -> None:
        """Tell Unity to quit, stop the server and reap the process (killed after grace_s)."""
        env, self._env = self._env, None
        if env is not None:
            env.shutdown(grace_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class UnityTennis(UnityEnv):
    """Two-player Tennis courts served by a Unity build: 0.4-era Tennis reports 24 observations
    and 2 actions, later releases 27 and 3; an episode scores the better player's sum.

    How agents map to the two seats:
    - two behaviours (ML-Agents 1.x: "Tennis?team=0" and "Tennis?team=1"): the lower team id is
      agent 0, the other agent 1; courts pair the k-th smallest agent id of each team;
    - one behaviour (0.4-era "TennisBrain"): agents sorted by id, consecutive pairs form a court,
      the first of each pair is agent 0.
    Anything else (three teams, an odd number of agents) is refused with a UnityBuildError
    naming what the build reported. Options as UnityEnv's, less agents_per_court (2).
    """

    game = "Tennis"

    def __init__(self, file_name: str | None = None, *, seed: int = 0, **options: Any) -> None:
        if options.get("agents_per_court", 2) != 2:
            raise ValueError("UnityTennis: a Tennis court has two players (agents_per_court=2)")
        options["agents_per_court"] = 2
        super().__init__(file_name, seed=seed, scoring="max", **options)

    def _check_behaviours(self, specs: dict[str, Any]) -> None:
        if len(specs) not in (1, 2):
            described = ", ".join(f"{n!r} ({s.action_spec})" for n, s in sorted(specs.items()))
            raise UnityBuildError(
                f"{self._where}: expected a two-player game (one behaviour with both players, or "
                f"two teams), but the build has {len(specs)} behaviours: {described}")

    def _courts(self, first: dict[str, Agents]) -> Courts:
        counts = {name: len(a.ids) for name, a in first.items()}
        if len(first) == 2 and (len(set(counts.values())) != 1 or 0 in counts.values()):
            raise UnityBuildError(f"{self._where}: the two teams have {counts} agents; "
                                  "a court needs one player of each")
        if len(first) == 1:
            ((name, count),) = counts.items()
            if count == 0 or count % 2:
                raise UnityBuildError(f"{self._where}: behaviour {name!r} has {count} "
                                      "agents; a two-player build has two per court")
        return super()._courts(first)
