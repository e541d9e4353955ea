"""The training loop, top to bottom: stop?, collect, update, evaluate, checkpoint.

``train`` builds the learner and the environment, restores a resume state when given one, and
hands them to a ``Trainer``, one session of the run, whose loop repeats:

1. stop?       a stop signal (Ctrl-C, SIGTERM) or a spent budget (seconds, updates, episodes)
               ends the run;
2. collect     one step on every court: the exploring policy acts (uniform random actions
               during warm-up), the simulator steps, the learner stores the transitions, and
               finished episodes are recorded (with the Udacity criterion: last 100 >= target);
3. update      ``updates_per_transition`` gradient updates per stored player transition, the
               fraction carried over from step to step;
4. evaluate    every ``eval_every_updates`` updates a greedy evaluation on fresh episodes:
               model selection, the first greedy solve, evidence for the noise; a solve (with
               ``stop_when_solved``) or the callback may end the run here;
5. checkpoint  every ``checkpoint_every_updates`` updates or ``checkpoint_every_seconds``, the
               resume state.

Then ``finish``: the final resume checkpoint, the best weights restored (``keep_best``), an
optional final evaluation on seeds disjoint from model selection, and the ``TrainResult``.

What the run carries across sessions is one ``RunState`` (run_state.py: one writer, one reader
of the resume checkpoint). What a ``Trainer`` holds beside it belongs to the session: the clock,
timings, the carried-over update credit, the last observations.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from tennis_assets.agents import AgentConfig, Learner, make_learner
from tennis_assets.envs import EnvironmentConfig, make_env
from tennis_assets.files import DiskFullError
from tennis_assets.seeds import SEED_MAX

from .config import TrainConfig
from .evaluation import (
    EvalResult,
    evaluate,
    final_seed,
    greedy,
    reaches,
    selection_seed,
)
from .progress_bar import ProgressBar
from .result import EPISODE_COLUMNS, EVAL_COLUMNS, TrainResult
from .run_state import RunState, load_resume, save_resume, warm_start_checkpoint
from .signals import StopSignals

__all__ = ["EPISODE_COLUMNS", "EVAL_COLUMNS", "TrainResult", "Trainer", "train",
           "warm_start_checkpoint"]

log = logging.getLogger(__name__)

Callback = Callable[[str, dict[str, Any]], bool | None]
# A resumed session's simulator starts from another seed: its in-flight points are not saved.
RESUME_SEED_STRIDE = 7919


def train(agent_config: AgentConfig, train_config: TrainConfig, progress: bool = True,
          callback: Callback | None = None, resume_from: str | None = None, env: Any = None,
          eval_env: Any = None, retune: bool = False,
          environment: EnvironmentConfig | None = None) -> TrainResult:
    """Train a learner on ``environment`` (default: Tennis) and return it with its history.

    callback(kind, info) is called with kind "episode" (info: one history row) and "eval"
    (info: one eval-history row); returning True stops the run (reason "callback").
    resume_from: a checkpoint written by this loop; the learner (networks, optimizer, buffer,
    noise), counters, history and best weights continue from it. Budgets count the whole run,
    including the part before the checkpoint. The simulator's in-flight episodes are not part
    of a checkpoint: the resumed run serves fresh points from a new seed.
    env: train on this already open environment (the vectorized interface, e.g. a Unity build)
    instead of a new one of ``environment``; its court count replaces ``num_courts`` and it is
    re-seeded with the run's seed. eval_env: where greedy evaluations play (see ``evaluate``);
    by default a new environment each time, or ``env`` itself when only ``env`` is given, in
    which case training starts fresh points after each evaluation (the interrupted episodes are
    not scored). The caller owns both and closes them.
    The learner's sizes must be the environment's (``fit_to(agent_config, env)``); the run's
    target is ``train_config.target_score``, else the environment's solve score.
    retune: ``resume_from`` may hold other values of the checkpoint's RETUNABLE hyperparameters
    (another trial's state, in population-based training); this run uses ``agent_config``'s.
    """
    environment = environment or EnvironmentConfig()
    cfg = train_config
    if cfg.target_score is None and environment.fixed_target() is not None:
        cfg = cfg.replace(target_score=environment.fixed_target())
    own_env = env is None
    if env is None:
        env = make_env(environment, cfg.num_courts, seed=cfg.seed)
    check_shapes(agent_config, env)
    learner = make_learner(agent_config, cfg.seed)
    state = RunState()
    if resume_from is not None:
        state = load_resume(resume_from, learner, agent_config, retune=retune)
        state.resumes += 1  # this session continues the run
    if cfg.explore_with_best and state.solved_greedy is not None \
            and state.best_params is not None:
        learner.set_behaviour(state.best_params, cfg.best_courts)
    # Kept within the seed range (tennis_assets.seeds) for a run seeded near its top.
    env_seed = (cfg.seed + RESUME_SEED_STRIDE * state.resumes) % (SEED_MAX + 1)
    if not own_env:
        eval_env = env if eval_env is None else eval_env
    env.reset(seed=env_seed)  # the starts a new environment of this seed serves
    trainer = Trainer(learner, cfg, state, env, eval_env, callback,
                      warmup_steps=0 if resume_from is not None else cfg.warmup_steps,
                      environment=environment)
    try:
        with ProgressBar(progress) as bar, StopSignals() as signals:
            reason = trainer.run(signals, bar)
        return trainer.finish(reason, agent_config)
    finally:
        if own_env and callable(getattr(env, "close", None)):
            env.close()


def check_shapes(agent_config: AgentConfig, env: Any) -> None:
    """The learner's sizes are the environment's, or a ValueError naming both."""
    mine = (agent_config.num_agents, agent_config.obs_size, agent_config.action_size)
    theirs = (env.num_agents, env.obs_size, env.action_size)
    if mine != theirs:
        raise ValueError(f"the environment has {theirs[0]} agents, {theirs[1]} observations and "
                         f"{theirs[2]} actions per agent, the learner {mine[0]}, {mine[1]} and "
                         f"{mine[2]}: give AgentConfig the environment's sizes "
                         "(tennis_assets.envs.fit_agent)")


class Trainer:
    """One session of a training run: the loop's steps, in the order they run."""

    def __init__(self, learner: Learner, cfg: TrainConfig, state: RunState, env: Any,
                 eval_env: Any, callback: Callback | None, warmup_steps: int,
                 environment: EnvironmentConfig) -> None:
        self.learner, self.cfg, self.state = learner, cfg, state
        self.env, self.eval_env, self.callback = env, eval_env, callback
        self.environment = environment
        self.obs = env.reset()
        self.rng = np.random.default_rng(cfg.seed + 12345)  # the warm-up's random actions
        self.warmup_left = warmup_steps
        self.updates_per_step = cfg.updates_per_transition * env.num_courts * env.num_agents
        self.credit = 0.0  # updates owed, carried over from step to step
        self.window: deque[float] = deque((r["score"] for r in state.history[-100:]),
                                          maxlen=100)
        self.last_greedy = (state.eval_history[-1]["greedy_mean"] if state.eval_history
                            else float("nan"))
        self.timing = dict.fromkeys(("act", "simulate", "store", "update", "evaluate"), 0.0)
        self.stop_request = ""  # set by a step that ends the run (a solve, the callback)
        self.last_saved: dict[str, float] | None = None
        self.checkpoint_failures: list[str] = []
        self.started = time.perf_counter()
        self.last_checkpoint = (learner.updates, self.elapsed())

    def elapsed(self) -> float:
        """Wall seconds of training in the whole run, sessions before this one included."""
        return self.state.seconds + time.perf_counter() - self.started

    def avg100(self) -> float:
        return float(np.mean(self.window)) if self.window else 0.0

    def run(self, signals: StopSignals, bar: ProgressBar) -> str:
        """The loop; returns why it stopped."""
        while True:
            reason = self.stop_reason(signals)
            if reason:
                break
            self.collect()
            self.update()
            if self.evaluation_due():
                self.evaluate()
            if self.stop_request:
                reason = self.stop_request
                break
            if self.checkpoint_due():
                self.checkpoint()
                self.last_checkpoint = (self.learner.updates, self.elapsed())
            self.show(bar)
        self.show(bar, force=True)
        return reason

    # ---- 1. stop? ---------------------------------------------------------------------------
    def stop_reason(self, signals: StopSignals) -> str:
        """Why the run must stop before the next step ("" while it goes on)."""
        cfg = self.cfg
        if signals.received is not None:
            return f"interrupted ({signals.received})"
        if cfg.max_seconds is not None and self.elapsed() >= cfg.max_seconds:
            return "max_seconds"
        if cfg.max_updates is not None and self.learner.updates >= cfg.max_updates:
            return "max_updates"
        if cfg.max_episodes is not None and self.state.episodes >= cfg.max_episodes:
            return "max_episodes"
        return ""

    # ---- 2. collect -------------------------------------------------------------------------
    def collect(self) -> None:
        """One step on every court, its transitions stored, its finished episodes recorded."""
        env, learner = self.env, self.learner
        t0 = time.perf_counter()
        if self.warmup_left > 0:
            self.warmup_left -= 1
            actions = self.rng.uniform(-1.0, 1.0, size=(env.num_courts, env.num_agents,
                                                        env.action_size)).astype(np.float32)
        else:
            actions = learner.act(self.obs, explore=True)
        t1 = time.perf_counter()
        res = env.step(actions)
        t2 = time.perf_counter()
        terminated = res.terminated if res.agent_terminated is None else res.agent_terminated
        learner.observe(self.obs, actions, res.rewards, res.final_obs, terminated,
                        res.truncated, active=res.active)
        self.obs = res.obs
        t3 = time.perf_counter()
        self.timing["act"] += t1 - t0
        self.timing["simulate"] += t2 - t1
        self.timing["store"] += t3 - t2
        self.state.env_steps += env.num_courts
        done = res.terminated | res.truncated
        if done.any():
            learner.reset_noise(done)
            self.record_episodes(res, np.flatnonzero(done))

    def record_episodes(self, res: Any, courts: np.ndarray) -> None:
        st, now = self.state, self.elapsed()
        for c in courts:
            st.episodes += 1
            score = round(float(res.episode_score[c]), 2)
            self.window.append(score)
            avg = float(np.mean(self.window))
            row = {"episode": st.episodes, "court": int(c), "score": score,
                   "length": int(res.episode_length[c]), "seconds": now,
                   "updates": self.learner.updates, "env_steps": st.env_steps, "avg100": avg}
            st.history.append(row)
            if (st.solved_udacity is None and len(self.window) == 100
                    and reaches(avg, self.cfg.target_score)):
                st.solved_udacity = {"episodes": st.episodes, "seconds": now,
                                     "updates": self.learner.updates,
                                     "env_steps": st.env_steps}
            self.notify("episode", row)

    def notify(self, kind: str, row: dict[str, Any]) -> None:
        if self.callback is not None and self.callback(kind, row):
            self.stop_request = self.stop_request or "callback"

    # ---- 3. update --------------------------------------------------------------------------
    def update(self) -> None:
        """Updates at a fractional number per step, so the data-to-update ratio is exact."""
        learner, max_updates = self.learner, self.cfg.max_updates
        t0 = time.perf_counter()
        if learner.ready():
            self.credit += self.updates_per_step
            while self.credit >= 1.0:
                learner.update(report=False)
                self.credit -= 1.0
                if max_updates is not None and learner.updates >= max_updates:
                    break
        self.timing["update"] += time.perf_counter() - t0

    # ---- 4. evaluate ------------------------------------------------------------------------
    def evaluation_due(self) -> bool:
        cfg, st = self.cfg, self.state
        every = cfg.eval_every_updates if st.solved_greedy is None \
            else cfg.eval_every_updates_solved
        return (self.learner.updates - st.last_eval_updates >= every
                and (cfg.eval_gate <= 0 or self.avg100() >= cfg.eval_gate))

    def evaluate(self) -> None:
        """A greedy evaluation on fresh selection episodes (stopped early, until the first
        solve, once ``mean >= target`` is certain), and what follows from it."""
        cfg, st, learner = self.cfg, self.state, self.learner
        st.last_eval_updates = learner.updates
        ev = evaluate(greedy(learner), episodes=cfg.selection_episodes,
                      seed=selection_seed(cfg.seed, st.evals), environment=self.environment,
                      threshold=cfg.target_score,
                      stop_when_decided=cfg.eval_early_stop and st.solved_greedy is None,
                      env=self.eval_env)
        if self.eval_env is self.env:
            self.obs = self.env.reset()  # the evaluation played on the training courts
        st.evals += 1
        self.timing["evaluate"] += ev.seconds
        now = self.elapsed()
        self.last_greedy = ev.mean
        learner.record_evaluation(ev.mean, ev.solved)
        row = {"eval": st.evals, "updates": learner.updates, "seconds": now,
               "env_steps": st.env_steps, "episodes": st.episodes, "greedy_mean": ev.mean,
               "complete": ev.complete, "solved": ev.solved, "eval_seconds": ev.seconds,
               "mean_length": ev.mean_length}
        st.eval_history.append(row)
        self.select(ev, now)
        self.notify("eval", row)
        if ev.solved and cfg.stop_when_solved:
            self.stop_request = "solved"

    def select(self, ev: EvalResult, now: float) -> None:
        """Model selection: keep the best weights, record the first solve, and (with
        ``explore_with_best``, once solved) let the best weights play the exploring steps."""
        st, learner = self.state, self.learner
        if ev.mean > st.best_greedy_mean:
            st.best_greedy_mean, st.best_updates = ev.mean, learner.updates
            st.best_params = learner.params.detach().clone()
        if ev.solved and st.solved_greedy is None:
            st.solved_greedy = {"seconds": now, "updates": learner.updates,
                                "env_steps": st.env_steps, "episodes": st.episodes}
        if (self.cfg.explore_with_best and st.solved_greedy is not None
                and ev.mean >= st.best_greedy_mean):
            learner.set_behaviour(st.best_params, self.cfg.best_courts)

    # ---- 5. checkpoint ----------------------------------------------------------------------
    def checkpoint_due(self) -> bool:
        cfg = self.cfg
        updates, seconds = self.last_checkpoint
        return bool(cfg.checkpoint_path) and (
            (cfg.checkpoint_every_updates > 0
             and self.learner.updates - updates >= cfg.checkpoint_every_updates)
            or (cfg.checkpoint_every_seconds > 0
                and self.elapsed() - seconds >= cfg.checkpoint_every_seconds))

    def checkpoint(self) -> None:
        """Save the resume state. A full disk does not stop training: the weights in memory
        are worth more than one resume state, the earlier state is intact, and the next
        interval tries again."""
        assert self.cfg.checkpoint_path
        try:
            save_resume(self.cfg.checkpoint_path, self.learner, self.cfg, self.state,
                        seconds=self.elapsed(), include_buffer=self.cfg.checkpoint_include_buffer,
                        environment=self.environment)
        except DiskFullError as exc:
            self.checkpoint_failures.append(f"{self.elapsed():.1f} s: {exc}")
            if len(self.checkpoint_failures) == 1:
                log.warning("resume state not saved, training goes on: %s", exc)
            return
        self.last_saved = {"updates": self.learner.updates, "seconds": round(self.elapsed(), 3)}

    # ---- the end ----------------------------------------------------------------------------
    def show(self, bar: ProgressBar, force: bool = False) -> None:
        cfg, fraction = self.cfg, 0.0
        if cfg.max_seconds is not None:
            fraction = max(fraction, self.elapsed() / cfg.max_seconds)
        if cfg.max_updates is not None:
            fraction = max(fraction, self.learner.updates / cfg.max_updates)
        if cfg.max_episodes is not None:
            fraction = max(fraction, self.state.episodes / cfg.max_episodes)
        bar.show(fraction, self.learner.updates, self.state.episodes, self.avg100(),
                 self.last_greedy, force=force)

    def finish(self, reason: str, agent_config: AgentConfig) -> TrainResult:
        """The final resume checkpoint, the best weights (keep_best), the final evaluation."""
        cfg, st, learner = self.cfg, self.state, self.learner
        if cfg.checkpoint_path:
            self.checkpoint()  # the latest weights, so a run can be resumed where it stopped
        if cfg.keep_best and st.best_params is not None:
            with torch.no_grad():
                learner.params.copy_(st.best_params)
        total = self.elapsed()
        final = None
        if cfg.final_eval_episodes > 0 and not reason.startswith("interrupted"):
            final = evaluate(greedy(learner), episodes=cfg.final_eval_episodes,
                             seed=final_seed(cfg.seed), environment=self.environment,
                             threshold=cfg.target_score, env=self.eval_env)
        best = st.best_greedy_mean
        return TrainResult(
            learner=learner, agent_config=agent_config, train_config=cfg,
            history=pd.DataFrame(st.history, columns=EPISODE_COLUMNS),
            eval_history=pd.DataFrame(st.eval_history, columns=EVAL_COLUMNS),
            solved_greedy=st.solved_greedy, solved_udacity=st.solved_udacity,
            best_greedy_mean=float(best) if np.isfinite(best) else float("nan"),
            best_updates=st.best_updates, seconds=total, updates=learner.updates,
            env_steps=st.env_steps, episodes=st.episodes, stop_reason=reason,
            timing={**self.timing, "total": total}, final_eval=final,
            last_saved=self.last_saved, checkpoint_failures=self.checkpoint_failures,
            resumes=st.resumes)
