"""Whether a training run's memory fits this machine, decided before anything is allocated.

A run's large allocations are the simulator's per-court arrays (training and evaluation courts)
and the replay buffer; the networks and one update's batch are small next to them. Each is sized
from the real objects: a 1- and a 2-court ``VecTennis`` (and one step of each) give the bytes per
court, a learner built with a one-row buffer gives the buffer's row width and dtype. Measured
against the peak resident memory of real training runs with 200,000 courts (4 updates,
2026-12-03), the estimate per court was 2,165 vs 1,545 bytes (ddpg), 2,773 vs 2,582 (maddpg),
2,845 vs 2,513 (ddpg, n_step 3): on the safe side, within 1.4x.

The check belongs to the run, not to the configs: a config is often written on one machine and
run on another (the Dagster launchpad, a container), and a checkpoint's config must load for
evaluation anywhere. So ``AgentConfig``/``TrainConfig`` do not call it; ``run_experiment`` and the
Dagster training asset do, before they create a folder.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class MemoryLimitError(ValueError):
    """The requested courts and replay buffer need more memory than this machine has free."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by part; ``host_bytes`` in main memory, ``device_bytes`` on the GPU
    (0 when the learner runs on the CPU). The replay buffer is ``buffer_size`` rows of
    ``buffer_row_bytes``, held ``buffer_host_copies`` times in main memory and
    ``buffer_device_copies`` times on the GPU at the peak (a checkpoint save)."""

    device: str
    courts: int  # training plus evaluation courts alive at once
    bytes_per_court: int
    simulator_bytes: int
    buffer_rows: int
    buffer_row_bytes: int
    buffer_host_copies: int
    buffer_device_copies: int
    network_bytes: int
    batch_bytes: int

    @property
    def buffer_bytes(self) -> int:
        return self.buffer_rows * self.buffer_row_bytes

    @property
    def on_device(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def host_bytes(self) -> int:
        small = self.network_bytes + (0 if self.on_device else self.batch_bytes)
        return self.simulator_bytes + self.buffer_host_copies * self.buffer_bytes + small

    @property
    def device_bytes(self) -> int:
        if not self.on_device:
            return 0
        return self.buffer_device_copies * self.buffer_bytes + self.network_bytes \
            + self.batch_bytes


def _array_bytes(obj: Any) -> int:
    return sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray))


@functools.lru_cache(maxsize=1)
def simulator_bytes_per_court() -> int:
    """Bytes one more court adds to a VecTennis (its state) and to one step's result, from the
    real arrays of a 1- and a 2-court simulator. The loop holds the last step's result while the
    next one is made, so a step counts twice."""
    from tennis_assets.sim import VecTennis

    sizes = []
    for n in (1, 2):
        env = VecTennis(num_courts=n, seed=0)
        res = env.step(np.zeros((n, env.num_agents, env.action_size), np.float32))
        sizes.append(_array_bytes(env) + 2 * _array_bytes(res))
    return sizes[1] - sizes[0]


def _learner_shape(agent_config) -> tuple[int, int, int, int]:
    """(buffer members, row width, bytes per element, network parameters) of the learner this
    config builds, from a learner with a one-row buffer on the CPU (same layout, nothing big)."""
    probe = agent_config.replace(buffer_size=1, batch_size=1, learning_starts=0,
                                 device="cpu", compile_update=False, torch_threads=0)
    # Cached on the JSON: the probe depends on the values alone.
    return _probe_shape(json.dumps(probe.to_dict(), sort_keys=True))


@functools.lru_cache(maxsize=16)
def _probe_shape(config_json: str) -> tuple[int, int, int, int]:
    from tennis_assets.agents import AgentConfig, make_learner

    probe = make_learner(AgentConfig.from_dict(json.loads(config_json)))
    buffer = probe.buffer
    return (buffer.members, buffer.width, buffer.data.element_size(),
            int(probe.params.numel()))


def estimate_memory(agent_config, train_config, eval_episodes: int = 0) -> MemoryEstimate:
    """What training ``agent_config`` under ``train_config`` needs, plus a final evaluation on
    ``eval_episodes`` courts (each greedy evaluation plays one fresh court per episode)."""
    from tennis_assets.agents.base import resolve_device

    members, width, item, n_params = _learner_shape(agent_config)
    agents = agent_config.num_agents
    # Per court-decision the learner holds the actor's two hidden activations or the buffer rows
    # being built (with their pieces), whichever is larger, and with n_step > 1 a window of
    # n steps (float32 observations and actions, float64 rewards, an int64 length).
    rows = agents * width * item
    learner = max(2 * rows, 2 * agents * agent_config.actor_hidden * item)
    if agent_config.n_step > 1:
        obs_act = agent_config.obs_size + agent_config.action_size
        learner += agent_config.n_step * agents * (obs_act * 4 + 8) + 8
    per_court = simulator_bytes_per_court() + learner
    courts = train_config.num_courts + max(train_config.selection_episodes,
                                           train_config.final_eval_episodes, eval_episodes)
    # Saving the buffer into a resume checkpoint clones it (ReplayBuffer.state_tensors); on a
    # GPU the clone stays there and a copy comes to main memory.
    saves_buffer = bool(train_config.checkpoint_path) and train_config.checkpoint_include_buffer
    # Parameters, targets, gradients, learning rates, weight decay, two Adam moments, the best
    # weights and a checkpoint's copies of four of them.
    network = 12 * n_params * item
    # One update: the sampled batch, the slices and concatenations made from it, and the hidden
    # activations kept for the backward pass of the actor, critic and their targets.
    hidden = max(agent_config.actor_hidden, agent_config.critic_hidden)
    batch = members * agent_config.batch_size * item * (3 * width + 12 * hidden)
    device = resolve_device(agent_config.device)
    copies = 2 if saves_buffer else 1
    host_copies, device_copies = (copies - 1, copies) if device.type == "cuda" else (copies, 0)
    return MemoryEstimate(str(device), courts, per_court, courts * per_court,
                          agent_config.buffer_size, members * width * item, host_copies,
                          device_copies, network, batch)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """Room left under this process's cgroup v2 memory limit (a container's), None if none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rel = next((line[3:] for line in lines if line.startswith("0::")), None)
    if rel is None:
        return None
    group = Path("/sys/fs/cgroup") / rel.lstrip("/")
    limit, used = _read_int(group / "memory.max"), _read_int(group / "memory.current")
    if limit is None or used is None:  # "max": no limit
        return None
    return max(limit - used, 0)


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable (free plus reclaimable cache), else
    free pages, bounded by a cgroup limit where there is one."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = _cgroup_room()
    return available if room is None else min(available, room)


def available_device_memory(device: str) -> int:
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_courts(courts: int, what: str = "episodes", available: int | None = None) -> int:
    """A MemoryLimitError naming ``what`` when ``courts`` simulated courts (a greedy evaluation
    plays one per episode) do not fit in the memory available; else the bytes they need."""
    per_court = simulator_bytes_per_court()
    need = int(courts) * per_court
    have = available_memory() if available is None else int(available)
    if need > have:
        raise MemoryLimitError(
            f"{what}={courts:,}: its {courts:,} simulated courts need {_size(need)} "
            f"({per_court:,} bytes each); {_size(have)} of main memory is available; "
            f"{what} <= {max(have // per_court, 0):,} fit")
    return need


def check_memory(agent_config, train_config, eval_episodes: int = 0,
                 available: int | None = None) -> MemoryEstimate:
    """The estimate, or a MemoryLimitError naming num_courts and buffer_size, what they need,
    what is available and what would fit. ``available``: main memory to plan with (default
    ``available_memory()``, read after the estimate so the imports it made are counted)."""
    est = estimate_memory(agent_config, train_config, eval_episodes)
    have = available_memory() if available is None else int(available)
    where, need, courts_part, copies = "main memory", est.host_bytes, est.simulator_bytes, \
        est.buffer_host_copies
    if need <= have and est.on_device:
        have = available_device_memory(est.device)
        where, need, courts_part, copies = f"{est.device} memory", est.device_bytes, 0, \
            est.buffer_device_copies
    if need <= have:
        return est
    buffer_part = copies * est.buffer_bytes
    eval_courts = est.courts - train_config.num_courts
    fixes = []
    if courts_part:
        fit = (have - (need - courts_part)) // est.bytes_per_court - eval_courts
        if fit >= 1:
            fixes.append(f"num_courts <= {fit:,} (with this buffer)")
    if buffer_part:
        rows = (have - (need - buffer_part)) // (copies * est.buffer_row_bytes)
        if rows >= agent_config.batch_size:
            fixes.append(f"buffer_size <= {rows:,} (with these courts)")
    eval_part = eval_courts * est.bytes_per_court if courts_part else 0
    if eval_part > buffer_part and eval_courts > train_config.num_courts:
        fit = (have - (need - eval_part)) // est.bytes_per_court
        fixes.append(f"evaluation episodes <= {max(fit, 1):,} (selection_episodes, "
                     "final_eval_episodes and the final evaluation's episodes: one court each)")
    if not fixes:
        fixes.append("lower num_courts and buffer_size together")
    raise MemoryLimitError(
        f"not enough {where} for this run: num_courts={train_config.num_courts:,} and "
        f"buffer_size={agent_config.buffer_size:,} need about {_size(need)} (simulator "
        f"{_size(courts_part)} for {est.courts:,} training and evaluation courts, replay buffer "
        f"{_size(buffer_part)}, networks and batch {_size(est.network_bytes + est.batch_bytes)})"
        f", but {_size(have)} is available; set " + " or ".join(fixes))
