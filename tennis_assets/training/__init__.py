"""Training loops, greedy evaluation, checkpoints and learning-curve plots."""

from .checkpoints import CheckpointError, load_checkpoint, load_learner, save_checkpoint
from .config import TrainConfig
from .evaluation import EvalResult, evaluate, final_seed, greedy, selection_seed
from .loop import TrainResult, train
from .plots import plot_learning_curve

__all__ = [
    "CheckpointError", "EvalResult", "TrainConfig", "TrainResult", "evaluate", "final_seed",
    "greedy", "load_checkpoint", "load_learner", "plot_learning_curve", "save_checkpoint",
    "selection_seed", "train",
]
