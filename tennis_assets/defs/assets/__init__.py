"""The asset graph: tuning_study -> trained_agents -> evaluation_report -> production_model
-> production_monitoring."""

from .evaluation import evaluation_report
from .monitoring import production_monitoring
from .production import production_model
from .training import trained_agents
from .tuning import tuning_study

__all__ = ["evaluation_report", "production_model", "production_monitoring", "trained_agents",
           "tuning_study"]
