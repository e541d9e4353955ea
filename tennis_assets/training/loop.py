"""The training loop: vectorized rollouts on VecTennis, updates, greedy evaluation, model
selection, first-solve records, checkpoints and a rich progress bar."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from tennis_assets.agents import AgentConfig, Learner, make_learner
from tennis_assets.files import DiskFullError
from tennis_assets.seeds import SEED_MAX
from tennis_assets.sim import VecTennis

from .config import TrainConfig
from .evaluation import EvalResult, evaluate, final_seed, greedy, selection_seed
from .signals import StopSignals

log = logging.getLogger(__name__)

EPISODE_COLUMNS = ["episode", "court", "score", "length", "seconds", "updates", "env_steps",
                   "avg100"]
EVAL_COLUMNS = ["eval", "updates", "seconds", "env_steps", "episodes", "greedy_mean", "complete",
                "solved", "eval_seconds", "mean_length"]


@dataclass
class TrainResult:
    learner: Learner
    agent_config: AgentConfig
    train_config: TrainConfig
    history: pd.DataFrame  # one row per finished training episode (EPISODE_COLUMNS)
    eval_history: pd.DataFrame  # one row per greedy evaluation (EVAL_COLUMNS)
    # First greedy mean >= target over eval_episodes fresh episodes: seconds (wall, from the
    # start of the run to the end of that evaluation), updates, env_steps (court-decisions),
    # episodes (training episodes finished). None if never reached.
    solved_greedy: dict[str, float] | None
    # Udacity criterion: first time the last 100 training episodes (exploration on) average
    # >= target: episodes (the index of the 100th episode of that window) and seconds.
    solved_udacity: dict[str, float] | None
    best_greedy_mean: float
    best_updates: int
    seconds: float
    updates: int
    env_steps: int
    episodes: int
    stop_reason: str
    timing: dict[str, float] = field(default_factory=dict)  # wall seconds per activity
    final_eval: EvalResult | None = None
    # The last resume state written to train_config.checkpoint_path ({"updates", "seconds"}),
    # None if none was; and each save that found the disk full (training went on without it).
    last_saved: dict[str, float] | None = None
    checkpoint_failures: list[str] = field(default_factory=list)
    resumes: int = 0  # how many times this run was continued from a resume state

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C or SIGTERM (the resume state was saved, when it has a path)."""
        return self.stop_reason.startswith("interrupted")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seconds": self.seconds, "updates": self.updates, "env_steps": self.env_steps,
            "episodes": self.episodes, "best_greedy_mean": self.best_greedy_mean,
            "best_updates": self.best_updates, "stop_reason": self.stop_reason,
            "solved_greedy": self.solved_greedy, "solved_udacity": self.solved_udacity,
            "timing": self.timing, "last_saved": self.last_saved,
            "checkpoint_failures": self.checkpoint_failures, "resumes": self.resumes,
        }
        if self.final_eval is not None:
            out["final_eval"] = self.final_eval.summary()
        return out


class _Progress:
    """A rich live bar, or nothing at all when disabled."""

    def __init__(self, enabled: bool, cfg: TrainConfig) -> None:
        self.enabled, self.cfg, self._last = enabled, cfg, 0.0
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self.task = self.progress.add_task("train", total=1.0, info="")
        self.progress.start()

    def update(self, frac: float, updates: int, episodes: int, avg100: float, greedy: float,
               force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.25:  # redrawing every step would cost real time
            return
        self._last = now
        g = "-" if not np.isfinite(greedy) else f"{greedy:.3f}"
        info = (f"updates {updates}  episodes {episodes}  avg100 {avg100:.3f}  "
                f"greedy {g}")
        self.progress.update(self.task, completed=min(frac, 1.0), info=info)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()


def train(agent_config: AgentConfig, train_config: TrainConfig, progress: bool = True,
          callback: Callable[[str, dict[str, Any]], bool | None] | None = None,
          resume_from: str | None = None, env=None, eval_env=None,
          retune: bool = False) -> TrainResult:
    """Train a learner on VecTennis and return it with its history.

    callback(kind, info) is called with kind "episode" (info: one history row) and "eval"
    (info: one eval-history row); returning True stops the run (reason "callback").
    resume_from: a checkpoint written by this loop; the learner (networks, optimizer, buffer,
    noise), counters, history and best weights continue from it. Budgets count the whole run,
    including the part before the checkpoint. The simulator's in-flight episodes are not part
    of a checkpoint: the resumed run serves fresh points from a new seed.
    env: train on this environment (VecTennis's interface, e.g. tennis_assets.unity.UnityTennis)
    instead of a new VecTennis; its court count replaces ``num_courts`` and it is re-seeded with
    the run's seed. eval_env: where greedy evaluations play (see ``evaluate``); by default a new
    VecTennis each time, or ``env`` itself when only ``env`` is given, in which case training
    starts fresh points after each evaluation (the interrupted episodes are not scored).
    The caller owns both and closes them.
    retune: ``resume_from`` may hold other values of the checkpoint's RETUNABLE hyperparameters
    (another trial's state, in population-based training); this run uses ``agent_config``'s.
    """
    from .checkpoints import load_checkpoint, save_checkpoint

    cfg = train_config
    court_params = cfg.court_params()
    learner = make_learner(agent_config)
    env_seed = cfg.seed
    episodes_rows: list[dict[str, Any]] = []
    eval_rows: list[dict[str, Any]] = []
    env_steps = episodes = n_evals = 0
    seconds_before = 0.0
    solved_greedy: dict[str, float] | None = None
    solved_udacity: dict[str, float] | None = None
    best_mean, best_updates = -np.inf, -1
    best_params: torch.Tensor | None = None
    last_eval_updates = 0
    if resume_from is not None:
        learner, doc = load_checkpoint(resume_from, learner, expected_config=agent_config,
                                       retune=retune)
        prog = doc.get("progress") or {}
        env_steps, episodes = int(prog.get("env_steps", 0)), int(prog.get("episodes", 0))
        n_evals, seconds_before = int(prog.get("evals", 0)), float(prog.get("seconds", 0.0))
        solved_greedy, solved_udacity = prog.get("solved_greedy"), prog.get("solved_udacity")
        stored_best = prog.get("best_greedy_mean")
        best_mean = -np.inf if stored_best is None else float(stored_best)
        best_updates = int(prog.get("best_updates", -1))
        last_eval_updates = int(prog.get("last_eval_updates", learner.updates))
        episodes_rows = list(prog.get("history", []))
        eval_rows = list(prog.get("eval_history", []))
        # Kept within the seed range (tennis_assets.seeds) for a run seeded near its top.
        env_seed = (cfg.seed + 7919 * (int(prog.get("resumes", 0)) + 1)) % (SEED_MAX + 1)
        from safetensors import safe_open

        with safe_open(str(resume_from), framework="pt") as f:
            if "extra.best_params" in f.keys():
                best_params = f.get_tensor("extra.best_params").to(learner.params.device)
    resumes = 0 if resume_from is None else int(prog.get("resumes", 0)) + 1

    if cfg.explore_with_best and solved_greedy is not None and best_params is not None:
        learner.set_behaviour(best_params)
    if env is None:
        env = VecTennis(num_courts=cfg.num_courts, params=court_params, seed=env_seed)
    else:
        if (env.obs_size, env.action_size) != (agent_config.obs_size, agent_config.action_size):
            raise ValueError(f"env has {env.obs_size} observations and {env.action_size} actions "
                             f"per agent, the learner {agent_config.obs_size} and "
                             f"{agent_config.action_size}; set AgentConfig.obs_size/action_size")
        eval_env = env if eval_env is None else eval_env
        env.reset(seed=env_seed)  # the starts VecTennis(seed=env_seed) serves on construction
    obs = env.reset()
    n = env.num_courts
    rng = np.random.default_rng(cfg.seed + 12345)
    window: deque[float] = deque([r["score"] for r in episodes_rows[-100:]], maxlen=100)
    last_greedy = eval_rows[-1]["greedy_mean"] if eval_rows else float("nan")
    credit = 0.0
    per_step = cfg.updates_per_transition * n * env.num_agents
    t_act = t_sim = t_obs = t_upd = t_eval = 0.0
    steps_this_run = 0
    bar = _Progress(progress, cfg)
    t_start = time.perf_counter()
    stop_reason = ""

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - t_start

    def budget_fraction() -> float:
        fr = 0.0
        if cfg.max_seconds is not None:
            fr = max(fr, elapsed() / cfg.max_seconds)
        if cfg.max_updates is not None:
            fr = max(fr, learner.updates / cfg.max_updates)
        if cfg.max_episodes is not None:
            fr = max(fr, episodes / cfg.max_episodes)
        return fr

    def progress_doc() -> dict[str, Any]:
        return {"env_steps": env_steps, "episodes": episodes, "evals": n_evals,
                "seconds": elapsed(), "updates": learner.updates,
                "solved_greedy": solved_greedy, "solved_udacity": solved_udacity,
                "best_greedy_mean": best_mean if np.isfinite(best_mean) else None,
                "best_updates": best_updates, "last_eval_updates": last_eval_updates,
                "history": episodes_rows, "eval_history": eval_rows, "resumes": resumes}

    last_saved: dict[str, float] | None = None
    checkpoint_failures: list[str] = []

    def checkpoint() -> None:
        nonlocal last_saved
        extra_tensors = {}
        if best_params is not None:
            extra_tensors["extra.best_params"] = best_params
        try:
            save_checkpoint(cfg.checkpoint_path, learner, train_config=cfg,
                            progress=progress_doc(), include_buffer=cfg.checkpoint_include_buffer,
                            extra_tensors=extra_tensors)
        except DiskFullError as exc:
            # The weights in memory are worth more than one resume state: keep training (the
            # earlier state is intact) and try again at the next interval.
            checkpoint_failures.append(f"{elapsed():.1f} s: {exc}")
            if len(checkpoint_failures) == 1:
                log.warning("resume state not saved, training goes on: %s", exc)
            return
        last_saved = {"updates": learner.updates, "seconds": round(elapsed(), 3)}

    last_ckpt_updates, last_ckpt_seconds = learner.updates, elapsed()
    stop_signal = StopSignals()
    try:
        stop_signal.install()
        while True:
            if stop_signal.received is not None:
                stop_reason = f"interrupted ({stop_signal.received})"
                break
            if cfg.max_seconds is not None and elapsed() >= cfg.max_seconds:
                stop_reason = "max_seconds"
                break
            if cfg.max_updates is not None and learner.updates >= cfg.max_updates:
                stop_reason = "max_updates"
                break
            if cfg.max_episodes is not None and episodes >= cfg.max_episodes:
                stop_reason = "max_episodes"
                break

            t0 = time.perf_counter()
            if steps_this_run < cfg.warmup_steps and resume_from is None:
                actions = rng.uniform(-1.0, 1.0,
                                      size=(n, 2, env.action_size)).astype(np.float32)
            else:
                actions = learner.act(obs, explore=True)
            t1 = time.perf_counter()
            res = env.step(actions)
            t2 = time.perf_counter()
            learner.observe(obs, actions, res.rewards, res.final_obs, res.terminated, res.truncated)
            obs = res.obs
            t3 = time.perf_counter()
            t_act += t1 - t0
            t_sim += t2 - t1
            t_obs += t3 - t2
            steps_this_run += 1
            env_steps += n
            stop_cb = False
            done = res.terminated | res.truncated
            if done.any():
                learner.reset_noise(done)
                now = elapsed()
                for c in np.flatnonzero(done):
                    episodes += 1
                    score = round(float(res.episode_score[c]), 2)
                    window.append(score)
                    avg = float(np.mean(window))
                    row = {"episode": episodes, "court": int(c), "score": score,
                           "length": int(res.episode_length[c]), "seconds": now,
                           "updates": learner.updates, "env_steps": env_steps, "avg100": avg}
                    episodes_rows.append(row)
                    if (solved_udacity is None and len(window) == 100
                            and avg >= cfg.target_score - 1e-6):
                        solved_udacity = {"episodes": episodes, "seconds": now,
                                          "updates": learner.updates, "env_steps": env_steps}
                    if callback is not None and callback("episode", row):
                        stop_cb = True

            # Updates: a fractional number per step, so the data-to-update ratio is exact.
            t4 = time.perf_counter()
            if learner.ready():
                credit += per_step
                while credit >= 1.0:
                    learner.update(report=False)
                    credit -= 1.0
                    if cfg.max_updates is not None and learner.updates >= cfg.max_updates:
                        break
            t5 = time.perf_counter()
            t_upd += t5 - t4

            avg100 = float(np.mean(window)) if window else 0.0
            every = (cfg.eval_every_updates if solved_greedy is None
                     else cfg.eval_every_updates_solved)
            if (learner.updates - last_eval_updates >= every
                    and (cfg.eval_gate <= 0 or avg100 >= cfg.eval_gate)):
                last_eval_updates = learner.updates
                decide = cfg.eval_early_stop and solved_greedy is None
                ev = evaluate(greedy(learner), episodes=cfg.eval_episodes,
                              seed=selection_seed(cfg.seed, n_evals), params=court_params,
                              threshold=cfg.target_score, stop_when_decided=decide,
                              env=eval_env)
                if eval_env is env:
                    obs = env.reset()
                n_evals += 1
                t_eval += ev.seconds
                now = elapsed()
                last_greedy = ev.mean
                learner.record_evaluation(ev.mean, ev.solved)
                row = {"eval": n_evals, "updates": learner.updates, "seconds": now,
                       "env_steps": env_steps, "episodes": episodes, "greedy_mean": ev.mean,
                       "complete": ev.complete, "solved": ev.solved,
                       "eval_seconds": ev.seconds, "mean_length": ev.mean_length}
                eval_rows.append(row)
                if ev.mean > best_mean:
                    best_mean, best_updates = ev.mean, learner.updates
                    best_params = learner.params.detach().clone()
                if ev.solved and solved_greedy is None:
                    solved_greedy = {"seconds": now, "updates": learner.updates,
                                     "env_steps": env_steps, "episodes": episodes}
                if cfg.explore_with_best and solved_greedy is not None and ev.mean >= best_mean:
                    learner.set_behaviour(best_params)
                if callback is not None and callback("eval", row):
                    stop_cb = True
                if ev.solved and cfg.stop_when_solved:
                    stop_reason = "solved"
                    break
            if stop_cb:
                stop_reason = "callback"
                break
            if cfg.checkpoint_path and (
                    (cfg.checkpoint_every_updates > 0
                     and learner.updates - last_ckpt_updates >= cfg.checkpoint_every_updates)
                    or (cfg.checkpoint_every_seconds > 0
                        and elapsed() - last_ckpt_seconds >= cfg.checkpoint_every_seconds)):
                checkpoint()
                last_ckpt_updates, last_ckpt_seconds = learner.updates, elapsed()
            bar.update(budget_fraction(), learner.updates, episodes, avg100, last_greedy)
        bar.update(budget_fraction(), learner.updates, episodes,
                   float(np.mean(window)) if window else 0.0, last_greedy, force=True)
    finally:
        stop_signal.restore()
        bar.close()

    if cfg.checkpoint_path:
        checkpoint()  # the latest weights, so a run can be resumed where it stopped
    if cfg.keep_best and best_params is not None:
        with torch.no_grad():
            learner.params.copy_(best_params)
    total = elapsed()
    final = None
    if cfg.final_eval_episodes > 0 and not stop_reason.startswith("interrupted"):
        final = evaluate(greedy(learner), episodes=cfg.final_eval_episodes,
                         seed=final_seed(cfg.seed), params=court_params,
                         threshold=cfg.target_score, env=eval_env)
    timing = {"act": t_act, "simulate": t_sim, "store": t_obs, "update": t_upd,
              "evaluate": t_eval, "total": total}
    return TrainResult(
        learner=learner, agent_config=agent_config, train_config=cfg,
        history=pd.DataFrame(episodes_rows, columns=EPISODE_COLUMNS),
        eval_history=pd.DataFrame(eval_rows, columns=EVAL_COLUMNS),
        solved_greedy=solved_greedy, solved_udacity=solved_udacity,
        best_greedy_mean=float(best_mean) if np.isfinite(best_mean) else float("nan"),
        best_updates=best_updates, seconds=total, updates=learner.updates,
        env_steps=env_steps, episodes=episodes, stop_reason=stop_reason, timing=timing,
        final_eval=final, last_saved=last_saved, checkpoint_failures=checkpoint_failures,
        resumes=resumes)



def warm_start_checkpoint(path: str | os.PathLike, learner, train_config: TrainConfig,
                          start_mean: float) -> Path:
    """A resume checkpoint that makes ``train(resume_from=path)`` continue from ``learner``'s
    weights as a new run: counters and histories start empty, and the starting weights count
    as the best so far with greedy mean ``start_mean``, so model selection replaces them only
    with weights that evaluate better. The buffer starts empty (it is not in ``learner``'s
    policy checkpoint)."""
    from .checkpoints import save_checkpoint

    progress = {"env_steps": 0, "episodes": 0, "evals": 0, "seconds": 0.0,
                "updates": learner.updates, "solved_greedy": None, "solved_udacity": None,
                "best_greedy_mean": float(start_mean), "best_updates": learner.updates,
                "last_eval_updates": learner.updates, "history": [], "eval_history": [],
                "resumes": 0}
    return save_checkpoint(path, learner, train_config=train_config, progress=progress,
                           include_buffer=False, extra_tensors={"extra.best_params": learner.params})
