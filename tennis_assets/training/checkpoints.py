"""Checkpoints: tensors in safetensors, everything else as JSON; nothing is ever unpickled.

One checkpoint is one ``.safetensors`` file holding the learner's tensors (networks, target
networks, Adam moments, counters, optionally the replay buffer and its sampling RNG) with the JSON
document (agent config, train config, progress, noise state) embedded in the file's metadata
header. Keeping both in one file makes a save a single atomic ``os.replace``: a crash or a full
disk during a save leaves the previous checkpoint untouched, and tensors can never be paired with
the wrong config. A human-readable copy of the JSON is written beside it (``<name>.json``) after
the tensors; it is informational and loading does not depend on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from tennis_assets.agents import AgentConfig, Learner, make_learner
from tennis_assets.files import atomic_write

FORMAT = "tennis-assets-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "tennis_assets"


# Hyperparameters a checkpoint may be resumed under with other values (population-based
# training changes them mid-run): they size no tensor, and no restored state overrides them
# (the exploration noise's scale is restored from the checkpoint, so it is not one of them).
RETUNABLE = ("actor_lr", "critic_lr", "tau", "gamma")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt or does not match what the caller expects."""


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | os.PathLike, learner: Learner, *,
                    train_config: Any = None, progress: dict[str, Any] | None = None,
                    include_buffer: bool = True, extra: dict[str, Any] | None = None,
                    extra_tensors: dict[str, Any] | None = None,
                    environment: Any = None) -> Path:
    """Write ``path`` (a .safetensors file) atomically, then its JSON sidecar.

    extra_tensors: additional tensors (names must start with "extra."), e.g. the training loop's
    best-so-far weights. environment: the EnvironmentConfig the weights were trained on (None:
    Tennis), so a reader knows the game they play."""
    path = Path(path)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "agent_config": learner.config.to_dict(),
        "train_config": train_config.to_dict() if hasattr(train_config, "to_dict")
        else train_config,
        "progress": progress or {},
        "environment": environment.to_dict() if environment is not None else None,
        "learner_extra": learner.extra_state(),
        "extra": extra or {},
    }
    text = json.dumps(doc, sort_keys=True)
    tensors = {k: v.contiguous()
               for k, v in learner.state_dict(include_buffer=include_buffer).items()}
    for k, v in (extra_tensors or {}).items():
        if not k.startswith("extra."):
            raise ValueError(f"save_checkpoint: extra tensor name {k!r} must start with 'extra.'")
        tensors[k] = v.detach().cpu().contiguous().clone()
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_META_KEY: text}))
    atomic_write(sidecar_path(path),
                  lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=2, sort_keys=True)))
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON document of a checkpoint, without loading its tensors."""
    path = Path(path)
    _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: unreadable or corrupt safetensors file ({e})") \
            from e
    return _parse_doc(path, meta)


# Fields that moved since format version 1 was first written; a document of either age reads
# the same. (checkpoint field -> where it lives now)
_MOVED = {("agent_config", "seed"): ("train_config", "seed"),
          ("train_config", "eval_episodes"): ("train_config", "selection_episodes")}


def _migrate(doc: dict[str, Any]) -> dict[str, Any]:
    train = doc.get("train_config")
    if isinstance(train, dict) and "court" in train:  # Tennis's court, before environments
        doc.setdefault("environment", {"env": "tennis", "env_kwargs": train.pop("court") or {}})
    for (old_section, old), (new_section, new) in _MOVED.items():
        section = doc.get(old_section)
        if isinstance(section, dict) and old in section:
            value = section.pop(old)
            target = doc.get(new_section)
            if isinstance(target, dict):
                target.setdefault(new, value)
    return doc


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not a regular file")


def _parse_doc(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    if _META_KEY not in meta:
        raise CheckpointError(f"checkpoint {path}: no '{_META_KEY}' metadata; not a tennis-assets "
                              "checkpoint")
    try:
        doc = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {path}: metadata is not valid JSON ({e})") from e
    if doc.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path}: format {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {doc.get('format_version')!r}, "
                              f"this code reads version {FORMAT_VERSION}")
    return _migrate(doc)


def load_checkpoint(path: str | os.PathLike, learner: Learner | None = None, *,
                    expected_config: AgentConfig | None = None,
                    retune: bool = False) -> tuple[Learner, dict[str, Any]]:
    """Load a checkpoint into ``learner`` (or into a new learner built from the stored config).

    Returns (learner, document). A config mismatch (stored agent config vs ``learner.config`` or
    ``expected_config``) raises CheckpointError naming the differing fields; with ``retune``
    the RETUNABLE fields may differ (the learner keeps its own values of them).
    """
    path = Path(path)
    doc = read_metadata(path)
    try:
        stored = AgentConfig.from_dict(doc["agent_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: invalid agent config ({e})") from None
    for expected in (expected_config, learner.config if learner is not None else None):
        if expected is None:
            continue
        # Device and threads do not change what the tensors mean.
        free = ("device", "torch_threads", *(RETUNABLE if retune else ()))
        diff = {k: (v, getattr(expected, k)) for k, v in stored.to_dict().items()
                if k not in free and getattr(expected, k) != v}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs expected {b!r}"
                               for k, (a, b) in sorted(diff.items()))
            raise CheckpointError(f"checkpoint {path}: config mismatch ({detail})")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: unreadable or corrupt safetensors file ({e})") \
            from e
    if learner is None:
        learner = make_learner(stored, stored_seed(doc))
    try:
        learner.load_state_dict(tensors)
        learner.load_extra_state(doc.get("learner_extra") or {})
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: tensors do not fit the learner ({e})") from e
    return learner, doc


def read_tensor(path: str | os.PathLike, name: str) -> Any:
    """The tensor ``name`` of the checkpoint ``path`` (a torch tensor on the CPU), or None if it
    holds none by that name."""
    try:
        with safe_open(str(path), framework="pt") as f:
            # safe_open has no __contains__: keys() it is.
            return f.get_tensor(name) if name in f.keys() else None  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: unreadable or corrupt safetensors file ({e})") \
            from e


def without_buffer(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A copy of the checkpoint ``src`` at ``dst`` without its replay buffer: networks, optimizer
    moments, counters and progress, what another run can continue from at a fraction of the
    size (a run resumed from it refills its buffer)."""
    src, dst = Path(src), Path(dst)
    doc = read_metadata(src)
    try:
        tensors = load_file(str(src))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {src}: unreadable or corrupt safetensors file ({e})") \
            from e
    kept = {k: v for k, v in tensors.items() if not k.startswith("buffer.")}
    text = json.dumps(doc, sort_keys=True)
    atomic_write(dst, lambda tmp: save_file(kept, tmp, metadata={_META_KEY: text}))
    return dst


def load_learner(path: str | os.PathLike, device: str | None = None) -> Learner:
    """Build a learner from a checkpoint alone (e.g. for evaluation or serving)."""
    doc = read_metadata(path)
    cfg = AgentConfig.from_dict(doc["agent_config"])
    if device is not None:
        cfg = cfg.replace(device=device)
    learner, _ = load_checkpoint(path, make_learner(cfg, stored_seed(doc)))
    return learner


def stored_environment(doc: dict[str, Any]) -> Any:
    """The environment a checkpoint document's weights were trained on (Tennis when it names
    none: every checkpoint written before environments was Tennis)."""
    from tennis_assets.envs import EnvironmentConfig

    stored = doc.get("environment")
    return EnvironmentConfig.from_dict(stored) if stored else EnvironmentConfig()


def stored_seed(doc: dict[str, Any]) -> int:
    """The seed of the run that wrote a checkpoint document (0 if it names none)."""
    return int((doc.get("train_config") or {}).get("seed", 0))
