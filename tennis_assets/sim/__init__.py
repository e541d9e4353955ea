"""Built-in Tennis simulator (ML-Agents 0.4 "Tennis" rules): vectorized courts, the PettingZoo
view, a scripted rallying policy and rally rendering. Knows nothing of learning."""

from __future__ import annotations

import importlib
from typing import Any

from .params import CourtParams

# The compiled court (numba), PettingZoo and Pillow cost a noticeable import time; load them
# only when asked for, so that reading court parameters (the Dagster launchpad) stays cheap.
_LAZY = {
    "RandomPolicy": ".scripted",
    "ScriptedSwingPolicy": ".scripted",
    "StepResult": ".vector_env",
    "VecTennis": ".vector_env",
    "TennisParallelEnv": ".pettingzoo_env",
    "render_frame": ".render",
    "save_rally_gif": ".render",
    "record_episode": ".render",
    "render_episode_gif": ".render",
    "court_state": ".render",
    "RallyConfig": ".rally_config",
}

__all__ = ["CourtParams"]
__all__ += list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
