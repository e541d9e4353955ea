"""VecTennis: N Tennis courts stepped together, auto-reset per court, seeded and deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tennis_assets.seeds import check_seed

from . import physics as ph
from .params import CourtParams

_HITTER_CODES = {None: ph.NO_HITTER, "none": ph.NO_HITTER, "right": ph.RIGHT, "left": ph.LEFT}


@dataclass
class StepResult:
    """What ``VecTennis.step`` returns; shapes use N = number of courts.

    obs: float32 [N, 2, 24]; for courts that just ended, the first obs of the new episode.
    rewards: float32 [N, 2].
    terminated: bool [N], the ball touched a floor, a back wall or the net.
    truncated: bool [N], the decision cap was reached without a ball ending.
    final_obs: float32 [N, 2, 24], last obs of the finished episode where done, else == obs.
    episode_score: float32 [N], the episode's score where done (Tennis: the max over agents of
        their reward sums), else NaN.
    episode_length: int32 [N], decisions in the finished episode where done, else 0.
    active: bool [N, A] or None (every agent always plays): which agents acted in this step;
        an environment whose agents leave an episode at different times sets it.
    agent_terminated: bool [N, A] or None: which agents' episodes ended in a terminal state at
        this step (None: ``terminated`` holds for every agent of a court).
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    episode_score: np.ndarray
    episode_length: np.ndarray
    active: np.ndarray | None = None
    agent_terminated: np.ndarray | None = None

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VecTennis:
    """N independent courts of the ML-Agents 0.4 Tennis game.

    Agent 0 is the right-hand player, agent 1 the left-hand player; each sees a mirrored view
    (itself at negative x, +x toward the net). Courts whose episode ends are served again at
    once (auto-reset); ``StepResult.final_obs`` keeps the finished episode's last observation.
    Resets draw from one ``numpy.random.Generator`` owned by the env, in court order, four
    uniforms per court: left racket, right racket, serve side, ball distance.

    With ``auto_reset=False`` finished courts keep their final state (for rendering and the
    single-court PettingZoo view) and ``step`` refuses to run until ``reset()`` is called.
    ``parallel=True`` spreads courts over numba threads (same results). It is off by default:
    on a small shared machine the thread pool's waits made it up to 100x slower whenever
    another process held a core (see bench/bench_simulator.py --parallel).
    """

    num_agents = 2
    obs_size = 24
    action_size = 2
    # Tennis's rules as tennis_assets.envs reads them: an episode scores the better player's
    # sum, and the one reward still to come after any step is at worst the end penalty.
    scoring = "max"
    worst_reward_to_come = ph.REWARD_END

    def __init__(
        self,
        num_courts: int = 1,
        params: CourtParams | None = None,
        seed: int | None = None,
        parallel: bool = False,
        auto_reset: bool = True,
    ) -> None:
        if isinstance(num_courts, bool) or not isinstance(num_courts, (int, np.integer)):
            # ValueError: every bad court setting is reported as ValueError.
            raise ValueError(f"num_courts must be an int, got {num_courts!r}")  # noqa: TRY004
        if num_courts < 1:
            raise ValueError(f"num_courts must be >= 1, got {num_courts}")
        if params is None:
            params = CourtParams()
        if not isinstance(params, CourtParams):
            # ValueError: every bad court setting is reported as ValueError.
            raise ValueError(  # noqa: TRY004
                f"params must be a CourtParams, got {type(params).__name__}")
        self.num_courts = int(num_courts)
        self.params = params
        self._p = ph.params_array(params)
        self._rng = np.random.default_rng(None if seed is None else check_seed(seed))
        n = self.num_courts
        self._fs = np.zeros((n, ph.N_FLOAT), dtype=np.float64)
        self._ist = np.zeros((n, ph.N_INT), dtype=np.int64)
        self._stack = np.zeros((n, 2, 24), dtype=np.float32)
        self._kernel = ph.step_courts_parallel if parallel else ph.step_courts
        self._all = np.arange(n, dtype=np.int64)
        self.auto_reset = bool(auto_reset)
        self._finished = np.zeros(n, dtype=np.bool_)
        self.reset()

    # ------------------------------------------------------------------ core API
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Serve a new point on every court; returns the first observations [N, 2, 24]."""
        if seed is not None:
            self._rng = np.random.default_rng(check_seed(seed))
        self._serve(self._all)
        self._finished[:] = False
        return self._stack.copy()

    def step(self, actions) -> StepResult:
        """Advance every court by one decision (5 physics steps of 0.02 s)."""
        a = self._check_actions(actions)
        if not self.auto_reset and self._finished.any():
            raise RuntimeError(
                f"courts {np.flatnonzero(self._finished).tolist()} have finished their episode; "
                "call reset() first (auto_reset=False)"
            )
        n = self.num_courts
        obs = np.empty((n, 2, 24), dtype=np.float32)
        final_obs = np.empty((n, 2, 24), dtype=np.float32)
        rewards = np.empty((n, 2), dtype=np.float32)
        terminated = np.empty(n, dtype=np.bool_)
        truncated = np.empty(n, dtype=np.bool_)
        score = np.empty(n, dtype=np.float32)
        length = np.empty(n, dtype=np.int32)
        n_done = self._kernel(
            self._fs, self._ist, self._stack, a, self._p,
            obs, rewards, terminated, truncated, final_obs, score, length,
        )
        if n_done:
            idx = np.flatnonzero(terminated | truncated)
            if self.auto_reset:
                self._serve(idx)
                obs[idx] = self._stack[idx]
            else:
                self._finished[idx] = True
        return StepResult(obs, rewards, terminated, truncated, final_obs, score, length)

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copy of the physical state for rendering: ball_x/ball_y/ball_vx/ball_vy [N],
        racket_x/racket_y/racket_vx/racket_vy [N, 2] (by agent: 0 right, 1 left),
        last_hitter [N] (-1 none, 0 right, 1 left), decisions [N], returns [N, 2]."""
        fs, ist = self._fs, self._ist
        return {
            "ball_x": fs[:, ph.BX].copy(),
            "ball_y": fs[:, ph.BY].copy(),
            "ball_vx": fs[:, ph.BVX].copy(),
            "ball_vy": fs[:, ph.BVY].copy(),
            "racket_x": fs[:, ph.RX:ph.RX + 2].copy(),
            "racket_y": fs[:, ph.RY:ph.RY + 2].copy(),
            "racket_vx": fs[:, ph.RVX:ph.RVX + 2].copy(),
            "racket_vy": fs[:, ph.RVY:ph.RVY + 2].copy(),
            "returns": fs[:, ph.RET:ph.RET + 2].copy(),
            "last_hitter": ist[:, ph.LAST].copy(),
            "decisions": ist[:, ph.DECISIONS].copy(),
        }

    def set_state(
        self,
        court: int = 0,
        *,
        ball: Sequence[float] | None = None,
        racket_right: Sequence[float] | None = None,
        racket_left: Sequence[float] | None = None,
        last_hitter: str | None | int = "keep",
        decisions: int | None = None,
        clear_history: bool = True,
    ) -> np.ndarray:
        """Place one court in a chosen situation (for tests, demos and renderers).

        ball / racket_right / racket_left: (x, y) or (x, y, vx, vy) in court coordinates
        (not mirrored); velocities default to 0 when only a position is given.
        last_hitter: "right", "left", None (nobody) or "keep".
        decisions: decisions already taken in this episode (for testing the cap).
        clear_history: zero the two older stacked frames, as at a reset.
        A ball placed inside the over-line band counts as having entered it from the side its x
        is on, so it scores a crossing when it leaves on the other side.
        Returns the court's current observation [2, 24] (the newest frame shows the new state).
        """
        if not 0 <= court < self.num_courts:
            raise ValueError(f"court must be in [0, {self.num_courts}), got {court}")
        s = self._fs[court]

        def parse(values, name):
            if values is None:
                return None
            try:
                v = [float(x) for x in values]
            except (TypeError, ValueError):
                v = []
            if len(v) not in (2, 4) or not np.all(np.isfinite(v)):
                raise ValueError(f"{name} must be 2 or 4 finite floats (x, y[, vx, vy]), "
                                 f"got {values!r}")
            return v + [0.0, 0.0] if len(v) == 2 else v

        # Validate everything before writing anything, so a bad call leaves the court untouched.
        bodies = [
            (parse(ball, "ball"), (ph.BX, ph.BY, ph.BVX, ph.BVY)),
            (parse(racket_right, "racket_right"),
             (ph.RX + ph.RIGHT, ph.RY + ph.RIGHT, ph.RVX + ph.RIGHT, ph.RVY + ph.RIGHT)),
            (parse(racket_left, "racket_left"),
             (ph.RX + ph.LEFT, ph.RY + ph.LEFT, ph.RVX + ph.LEFT, ph.RVY + ph.LEFT)),
        ]
        code = None
        if not (isinstance(last_hitter, str) and last_hitter == "keep"):
            if isinstance(last_hitter, (int, np.integer)) and not isinstance(last_hitter, bool) \
                    and last_hitter in (-1, 0, 1):
                code = int(last_hitter)
            elif ((last_hitter is None or isinstance(last_hitter, str))
                  and last_hitter in _HITTER_CODES):
                code = _HITTER_CODES[last_hitter]
            else:
                raise ValueError("last_hitter must be 'right', 'left', None or 'keep', "
                                 f"got {last_hitter!r}")
        if decisions is not None and not 0 <= int(decisions) < self.params.max_decisions:
            raise ValueError(f"decisions must be in [0, {self.params.max_decisions}), "
                             f"got {decisions}")

        for values, cols in bodies:
            if values is not None:
                s[list(cols)] = values
        if code is not None:
            self._ist[court, ph.LAST] = code
        if decisions is not None:
            self._ist[court, ph.DECISIONS] = int(decisions)
        self._finished[court] = False
        # The band flag belongs to the ball's old position; recompute it for the new one.
        r = self._p[ph.P_BALL_R]
        bx, by = s[ph.BX], s[ph.BY]
        in_band = abs(bx) < r and ph.OVER_BOTTOM <= by <= ph.OVER_TOP
        self._ist[court, ph.BAND] = (1 if bx >= 0 else -1) if in_band else 0
        older = self._stack[court, :, :16].copy()
        ph.write_frame(self._stack[court], s, self._p)  # shifts, then writes the newest frame
        self._stack[court, :, :16] = 0.0 if clear_history else older
        return self._stack[court].copy()

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    # ------------------------------------------------------------------ helpers
    def _serve(self, idx: np.ndarray) -> None:
        u = self._rng.random((idx.shape[0], 4))
        ph.reset_courts(self._fs, self._ist, self._stack, idx.astype(np.int64, copy=False), u,
                        self._p)

    def _check_actions(self, actions) -> np.ndarray:
        expected = (self.num_courts, 2, 2)
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"actions must be a float array of shape {expected} [courts, agents, action_size]; "
                f"could not convert: {exc}"
            ) from None
        if a.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} [courts, agents, action_size], got {a.shape}"
            )
        if not ph.all_finite(a):
            bad = np.argwhere(~np.isfinite(a))[0].tolist()
            raise ValueError(
                f"actions of shape {expected} must be finite; found {a[tuple(bad)]} "
                f"at index {tuple(bad)}"
            )
        return np.ascontiguousarray(a)
