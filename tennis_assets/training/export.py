"""The greedy actor exported to ONNX: the file the registry stores with each model version and
the policy server (and any ONNX Runtime) runs. Its input is ``obs`` float32 [batch, agents,
obs_size] and its output ``actions`` float32 [batch, agents, action_size], sized from the
learner's AgentConfig (the environment's shapes), the batch dimension free.

The exporter is torch's TorchScript-based one (``dynamo=False``): for this three-layer network it
writes the same graph as the ``torch.export``-based exporter (MatMul, Add, Relu, Tanh, with a
free batch dimension) in 0.04 s instead of 1.5 s (7.5 s for the first export in a process), and
a model is exported at every registration. ``ActorModule`` stays ``torch.export``-able, which
tennis_assets_tests/training/test_export.py checks.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ONNX_OPSET = 17
INPUT, OUTPUT = "obs", "actions"


def export_actor_onnx(learner: Any, path: str | os.PathLike, atol: float = 1e-5) -> Path:
    """Write the learner's greedy actor to ``path`` and check that ONNX Runtime reproduces
    ``learner.act(explore=False)`` on a probe batch (ValueError if not)."""
    import torch

    from tennis_assets.agents.actor_module import ActorModule

    cfg = learner.config
    module = ActorModule.from_learner(learner).to("cpu")
    example = torch.zeros(1, cfg.num_agents, cfg.obs_size)
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (example,), str(path), input_names=[INPUT],
                          output_names=[OUTPUT], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    probe = np.random.default_rng(0).standard_normal(
        (7, cfg.num_agents, cfg.obs_size)).astype(np.float32) * 3
    got = onnx_session(path).run(None, {INPUT: probe})[0]
    want = learner.act(probe, explore=False)
    if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=0):
        raise ValueError(f"ONNX export of {type(learner).__name__} disagrees with its act() "
                         f"(max difference {np.abs(got - want).max():.2e})")
    return path


def onnx_input_shape(session: Any) -> tuple[int, ...]:
    """The observation shape an exported actor takes per step, (agents, obs_size), read from
    its graph's input (the batch dimension, free, left out): what a request must hold."""
    return tuple(d if isinstance(d, int) else -1 for d in session.get_inputs()[0].shape[1:])


def onnx_session(path: str | os.PathLike):
    """An ONNX Runtime session on one thread: the network is a few microseconds of work, and
    an idle thread pool spinning for more would take a core from the server's event loop."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
