"""The MLflow pyfunc model of a multi-agent policy (models-from-code: MLflow copies this file
into the model folder instead of pickling an object).

Self-contained: it runs the model version's ONNX file with ONNX Runtime and imports nothing of
tennis_assets or torch, so the model serves from the public package index alone
(``mlflow models serve --env-manager uv``, SageMaker, KServe's MLflow runtime).

Input: observations float32 [N, agents, obs_size] (the model's tensor signature, the shapes of
the environment it was trained on: Tennis [N, 2, 24], MPE simple_spread with 3 agents
[N, 3, 18]); output: greedy actions float32 [N, agents, action_size] in [-1, 1]. Observations of
another shape, or non-finite ones, are refused naming the problem (HTTP 400 from a scoring
server).
"""

from __future__ import annotations

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel


class TennisPolicy(PythonModel):
    def load_context(self, context) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a few microseconds of work: no thread pool
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(context.artifacts["onnx"], options,
                                            providers=["CPUExecutionProvider"])
        # (agents, obs_size): the ONNX input's shape past its free batch dimension.
        self.obs_shape = tuple(self.session.get_inputs()[0].shape[1:])

    # np.ndarray is a hint MLflow accepts without inferring a schema from it: the explicit
    # tensor signature stays the contract, and MLflow stops warning that predict has no hints.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        obs = np.asarray(model_input, dtype=np.float32)
        # The signature's schema enforcement checks this too, but not for a caller that
        # skips it (a model loaded without its signature): ONNX Runtime's own error would
        # name graph internals instead of the shape a client must send.
        if obs.ndim != 3 or obs.shape[1:] != self.obs_shape:
            expected = ", ".join(str(d) for d in self.obs_shape)
            raise MlflowException(f"observations of shape {list(obs.shape)}; this model takes "
                                  f"[N, {expected}] (one observation per agent)",
                                  error_code=INVALID_PARAMETER_VALUE)
        if not np.isfinite(obs).all():
            raise MlflowException("observations contain NaN or infinite values (or values "
                                  "beyond float32 range)", error_code=INVALID_PARAMETER_VALUE)
        return self.session.run(None, {"obs": obs})[0]


set_model(TennisPolicy())
