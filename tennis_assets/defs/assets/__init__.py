"""The asset graph: tuning_study -> trained_agents -> evaluation_report -> challenger_model
-> production_model -> production_monitoring."""

from .evaluation import evaluation_report
from .monitoring import production_monitoring
from .promotion import challenger_checks, challenger_model, production_model
from .training import trained_agents
from .tuning import tuning_study

__all__ = ["challenger_checks", "challenger_model", "evaluation_report", "production_model",
           "production_monitoring", "trained_agents", "tuning_study"]
