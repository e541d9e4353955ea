"""The keyword arguments of a ``unity:<path>`` environment (its ``env_kwargs``): how the build is
launched and how its agents form courts. Checked when a configuration is made, before anything
is launched; importing this module loads neither mlagents-envs nor gRPC."""

from __future__ import annotations

from pydantic import Field

from tennis_assets.config.model import ConfigModel


class UnityOptions(ConfigModel):
    """How a Unity ML-Agents build (or the Editor) is launched and read."""

    agents_per_court: int | None = Field(None, ge=1)
    """How many of the build's agents play one court (one episode, one score). None: each
    multi-agent group is a court where the build reports groups; else, with teams
    (Name?team=0, Name?team=1, ...), one agent of each team per court (Tennis); else all of the
    build's agents play one court. Agents are taken in id order, team by team."""
    base_port: int | None = Field(None, ge=1, le=65535)
    """The first port: a build's is base_port + worker_id (default base_port 5005; when that
    port is taken the next free one is used), the Editor's base_port (default 5004)."""
    worker_id: int = Field(0, ge=0)
    """Port offset from base_port (a build only)."""
    time_scale: float = Field(20.0, gt=0.0)
    """Unity's simulation speed-up (an Editor runs at 1)."""
    no_graphics: bool = True
    """Run the build without rendering (a headless machine needs it)."""
    timeout_s: float = Field(60.0, gt=0.0)
    """How long to wait for any answer from Unity, the launch included."""
    additional_args: list[str] = []  # noqa: RUF012 - a pydantic field: each instance gets a copy
    """Extra command-line arguments for the build."""
    log_folder: str | None = None
    """Absolute folder for the Unity player's log file."""
