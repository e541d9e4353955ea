"""Learning-curve figure (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_learning_curve(history: pd.DataFrame, eval_history: pd.DataFrame | None,
                        path: str | os.PathLike, title: str | None = None,
                        target: float | None = 0.5, x: str = "episode") -> Path:
    """Training episode scores, their 100-episode moving average, greedy evaluation points and
    the target line, against training episodes (x="episode") or wall seconds (x="seconds")."""
    if x not in ("episode", "seconds"):
        raise ValueError(f"plot_learning_curve: x={x!r}, expected 'episode' or 'seconds'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    if len(history):
        xs = history[x].to_numpy()
        scores = history["score"].to_numpy(dtype=float)
        ax.plot(xs, scores, ".", ms=2.5, color="tab:blue", alpha=0.35,
                label="training episode score (exploring)")
        ma = pd.Series(scores).rolling(100, min_periods=1).mean().to_numpy()
        ax.plot(xs, ma, "-", lw=2, color="tab:blue", label="100-episode moving average")
    if eval_history is not None and len(eval_history):
        ex = eval_history["episodes" if x == "episode" else "seconds"].to_numpy()
        ey = eval_history["greedy_mean"].to_numpy(dtype=float)
        ax.plot(ex, ey, "o-", ms=4, lw=1, color="tab:orange",
                label="greedy mean, fresh episodes")
        if "complete" in eval_history:
            # An evaluation stopped once ">= target" was certain reports a lower bound.
            early = ~eval_history["complete"].to_numpy(dtype=bool)
            if early.any():
                ax.plot(ex[early], ey[early], "^", ms=8, color="tab:orange", mfc="white",
                        label="greedy, stopped once solved (lower bound)")
    if target is not None:
        ax.axhline(target, color="tab:red", ls="--", lw=1.2, label=f"target {target:g}")
    ax.set_xlabel("training episode" if x == "episode" else "wall seconds")
    ax.set_ylabel("episode score")
    ax.set_title(title or "learning curve")
    ax.set_ylim(bottom=min(-0.05, float(np.nanmin(history["score"])) if len(history) else 0))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_score_drift(monitored, baseline, path: str | os.PathLike,
                     title: str | None = None) -> Path:
    """Empirical score distributions (CDFs) of the monitored episodes and the baseline: a drop
    shows as the monitored curve lying above and left of the baseline's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for scores, label, color in ((baseline, "baseline (champion's evaluation)", "tab:blue"),
                                 (monitored, "monitored (production court)", "tab:orange")):
        xs = np.sort(np.asarray(scores, dtype=float))
        ys = np.arange(1, len(xs) + 1) / max(len(xs), 1)
        ax.step(xs, ys, where="post", color=color,
                label=f"{label}: mean {xs.mean():.2f}, n={len(xs)}")
    ax.axvline(0.5, color="tab:red", ls="--", lw=1)
    ax.set_xlabel("episode score")
    ax.set_ylabel("fraction of episodes <= score")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
