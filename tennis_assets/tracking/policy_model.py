"""The MLflow pyfunc model of a Tennis policy (models-from-code: MLflow copies this file into
the model folder instead of pickling an object).

Input: observations float32 [N, 2, 24] (enforced by the model's tensor signature); output:
greedy actions float32 [N, 2, 2].
"""

from __future__ import annotations

import warnings

import mlflow.pyfunc
from mlflow.models import set_model

with warnings.catch_warnings():
    # MLflow asks for type hints on predict (when the class is made and when it is
    # instantiated); the explicit tensor signature is the contract.
    warnings.simplefilter("ignore", UserWarning)

    class TennisPolicy(mlflow.pyfunc.PythonModel):
        def load_context(self, context) -> None:
            from tennis_assets.training import load_learner

            self.learner = load_learner(context.artifacts["checkpoint"], device="cpu")

        def predict(self, context, model_input, params=None):
            import numpy as np

            obs = np.asarray(model_input, dtype=np.float32)
            return self.learner.act(obs, explore=False).astype(np.float32)

    set_model(TennisPolicy())
