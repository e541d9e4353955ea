"""Real Unity ML-Agents builds through mlagents-envs (the ``unity`` extra), and a protocol peer
that serves any environment of ``tennis_assets.envs`` to any ML-Agents trainer.

Importing this package first installs ``protobuf_compat``, which mlagents-envs 0.28.0 needs on
protobuf >= 4; import it before anything imports ``mlagents_envs``. The adapter and the peer
load mlagents-envs and gRPC only when used.
"""

from __future__ import annotations

from typing import Any

from . import protobuf_compat  # noqa: F401  (must precede every mlagents_envs import)
from .errors import UnityBuildError, UnityConnectionError, UnityError, UnityTimeoutError
from .options import UnityOptions

__all__ = [
    "ProtocolPeer",
    "UnityBuildError",
    "UnityConnectionError",
    "UnityEnv",
    "UnityError",
    "UnityOptions",
    "UnityTennis",
    "UnityTimeoutError",
]


def __getattr__(name: str) -> Any:
    if name == "ProtocolPeer":
        from .peer import ProtocolPeer

        return ProtocolPeer
    if name in ("UnityEnv", "UnityTennis"):
        from . import adapter

        return getattr(adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
