"""Configuration declared once: the base model, partial configurations (profiles) and the
options a command line derives from the models. Plain Python (pydantic), no Dagster."""

from tennis_assets.seeds import SEED_MAX

from .model import ConfigError, ConfigModel, Record, Seed
from .partial import Partial, layered

__all__ = ["SEED_MAX", "ConfigError", "ConfigModel", "Partial", "Record", "Seed", "layered"]
