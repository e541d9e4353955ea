"""The MLflow pyfunc model of a Tennis policy (models-from-code: MLflow copies this file into
the model folder instead of pickling an object).

Input: observations float32 [N, 2, 24] (enforced by the model's tensor signature); output:
greedy actions float32 [N, 2, 2].
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
from mlflow.models import set_model


class TennisPolicy(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from tennis_assets.training import load_learner

        self.learner = load_learner(context.artifacts["checkpoint"], device="cpu")

    # np.ndarray is a hint MLflow accepts without inferring a schema from it: the explicit
    # tensor signature stays the contract, and MLflow stops warning that predict has no hints.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        obs = np.asarray(model_input, dtype=np.float32)
        return self.learner.act(obs, explore=False).astype(np.float32)


set_model(TennisPolicy())
