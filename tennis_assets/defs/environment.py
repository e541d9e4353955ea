"""The Unity environment resource: where ``environment: unity`` runs train.

A thin ConfigurableResource over ``tennis_assets.unity.UnityTennis``; mlagents-envs and gRPC
load only when a run opens the environment, so loading the Definitions stays fast.
"""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg
from pydantic import Field, field_validator


class UnityEnvironmentResource(dg.ConfigurableResource):
    """A Unity ML-Agents Tennis build, or an Editor in Play mode, for ``environment: unity``.

    file_name empty connects to an Editor (or any ML-Agents client, e.g. the built-in peer
    ``python -m tennis_assets.unity.peer --port 5004``) on base_port, default 5004; with a build
    the port is base_port (default 5005) + worker_id. Each run launches its own copy of the build
    and closes it at the end; give concurrent runs different worker ids.
    """

    file_name: str = Field(default="", description="path of the Unity build; empty: connect to "
                                                   "a Unity Editor in Play mode on base_port")
    base_port: Optional[int] = Field(default=None, description="default 5005 for a build, "
                                                               "5004 for the Editor")
    worker_id: int = Field(default=0, ge=0, description="port offset from base_port")
    time_scale: float = Field(default=20.0, gt=0, description="Unity's simulation speed-up")
    no_graphics: bool = Field(default=True, description="run the build without rendering")
    timeout_s: float = Field(default=60.0, gt=0, description="how long to wait for Unity")

    @field_validator("base_port")
    @classmethod
    def _valid_port(cls, v):
        if v is not None and not 1 <= v <= 65535:
            raise ValueError(f"base_port={v}: must be a TCP port (1-65535)")
        return v

    def describe(self) -> dict[str, Any]:
        return {"file_name": self.file_name or None, "base_port": self.base_port,
                "worker_id": self.worker_id, "time_scale": self.time_scale,
                "no_graphics": self.no_graphics}

    def open(self, seed: int = 0):
        """A connected ``UnityTennis`` (the caller closes it). Raises ``UnityError`` subclasses
        naming the problem: missing or non-executable build, wrong game, timeout, port in use."""
        from tennis_assets.unity import UnityTennis

        return UnityTennis(self.file_name or None, worker_id=self.worker_id,
                           base_port=self.base_port, seed=seed, time_scale=self.time_scale,
                           no_graphics=self.no_graphics, timeout_s=self.timeout_s)
