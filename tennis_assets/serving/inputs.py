"""Request bodies -> observation arrays, or a ``BadRequest`` naming what is wrong.

Two wire formats carry the same tensor: the server's own ``{"observations": ...}`` (``/act``) and
MLflow's scoring protocol ``{"inputs": ...}`` or ``{"instances": ...}`` (``/invocations``, what
``mlflow models serve``, SageMaker and KServe's MLflow runtime accept). One validation serves
both, so both reject the same bad values in the same words.

The shape a request must have is the served model's, ``[agents, obs_size]`` (Tennis: [2, 24];
simple_spread with 3 agents: [3, 18]), passed in by the caller with each request: a model swap
to another environment changes it for the requests after the swap.
"""

from __future__ import annotations

import json

import numpy as np

# MLflow's scoring protocol: the keys a JSON body may use for a tensor input.
MLFLOW_TENSOR_KEYS = ("inputs", "instances")


class BadRequest(Exception):
    def __init__(self, status: int, outcome: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message, self.close = status, outcome, message, close


def _load_json(body: bytes):
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(400, "bad_request", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "bad_request", "body nests JSON too deeply") from None


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in shape)


def observations_array(value, max_batch: int, obs_shape: tuple[int, int],
                       field: str = "observations") -> tuple[np.ndarray, bool]:
    """A JSON value -> (obs float32 [N, agents, obs_size], single) where single means it was
    one observation [agents, obs_size]; ``obs_shape`` is the served model's (agents,
    obs_size)."""
    one, many = f"[{_dims(obs_shape)}]", f"[N, {_dims(obs_shape)}]"
    try:
        # Without a dtype first: numpy would quietly parse "1.5" strings into numbers.
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype.kind not in "fiu":
        raise BadRequest(400, "bad_request", f"{field} must be a rectangular array of "
                         f"numbers, shape {one} or {many}")
    with np.errstate(over="ignore"):  # beyond float32 range becomes inf, rejected below
        obs = arr.astype(np.float32)
    single = obs.ndim == 2
    if single:
        obs = obs[None]
    if obs.ndim != 3 or obs.shape[1:] != tuple(obs_shape):
        shape = list(obs.shape[1:] if single else obs.shape)
        raise BadRequest(400, "bad_request", f"{field} of shape {shape}; the served model "
                         f"expects {one} (one observation per agent, {obs_shape[0]} agents) "
                         f"or {many}")
    if not 1 <= obs.shape[0] <= max_batch:
        raise BadRequest(400, "bad_request",
                         f"batch of {obs.shape[0]} observations; allowed 1 to {max_batch}")
    # JSON parsing accepts NaN and Infinity, and 1e39 overflows float32 to inf.
    if not np.isfinite(obs).all():
        raise BadRequest(400, "bad_request", f"{field} contain NaN or infinite values "
                         "(or values beyond float32 range)")
    return obs, single


def parse_observations(body: bytes, max_batch: int, obs_shape: tuple[int, int]
                       ) -> tuple[np.ndarray, bool]:
    """``/act`` body -> (obs float32 [N, agents, obs_size], single)."""
    doc = _load_json(body)
    if not isinstance(doc, dict) or "observations" not in doc:
        raise BadRequest(400, "bad_request", 'expected a JSON object {"observations": ...}: '
                         f"one observation per agent, shape [{_dims(obs_shape)}], or a batch "
                         f"[N, {_dims(obs_shape)}]")
    return observations_array(doc["observations"], max_batch, obs_shape)


def parse_invocations(body: bytes, max_batch: int, obs_shape: tuple[int, int]) -> np.ndarray:
    """``/invocations`` body (MLflow's scoring protocol) -> obs float32 [N, agents, obs_size].

    The model's signature is one tensor [-1, agents, obs_size], so the batch dimension is
    always there, as ``mlflow models serve`` requires it."""
    doc = _load_json(body)
    keys = [k for k in MLFLOW_TENSOR_KEYS if isinstance(doc, dict) and k in doc]
    many = f"[N, {_dims(obs_shape)}]"
    if len(keys) != 1:
        raise BadRequest(400, "bad_request", 'expected a JSON object with one of "inputs" or '
                         f'"instances": a batch of observations, shape {many}')
    obs, single = observations_array(doc[keys[0]], max_batch, obs_shape, field=keys[0])
    if single:
        raise BadRequest(400, "bad_request", f"{keys[0]} of shape [{_dims(obs_shape)}]; the "
                         f"model's signature takes a batch, shape {many}")
    return obs
