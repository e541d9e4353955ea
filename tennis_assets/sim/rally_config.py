"""Which rally a replay renders, and where (``tennis-assets replay``); kept apart from the
renderer so that reading it loads neither the compiled court nor Pillow."""

from __future__ import annotations

from pydantic import Field

from tennis_assets.config.model import ConfigModel, Seed


class RallyConfig(ConfigModel):
    """Which rally a replay renders, and where."""

    gif_path: str = Field("rally.gif", min_length=1, json_schema_extra={"cli_aliases": ["--out"]})
    """The animated GIF to write."""
    rally_seed: Seed = Field(0, json_schema_extra={"cli_aliases": ["--seed"]})
    """Seed of the episode that is played."""
