"""Training loops, greedy evaluation, checkpoints and learning-curve plots."""

from .checkpoints import CheckpointError, load_checkpoint, load_learner, save_checkpoint
from .config import TrainConfig
from .evaluation import EvalResult, evaluate, final_seed, greedy, selection_seed
from .loop import train
from .memory import MemoryEstimate, MemoryLimitError, check_memory, estimate_memory
from .plots import plot_learning_curve
from .result import TrainResult

__all__ = [
    "CheckpointError", "EvalResult", "MemoryEstimate", "MemoryLimitError", "TrainConfig",
    "TrainResult", "check_memory", "estimate_memory", "evaluate", "final_seed", "greedy",
    "load_checkpoint", "load_learner", "plot_learning_curve", "save_checkpoint",
    "selection_seed", "train",
]
