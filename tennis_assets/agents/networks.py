"""Ensembles of small three-layer MLPs in one flat parameter vector: where each network's
layers sit (``FlatLayout``), the one forward pass, and its hand-written backward pass.

Every network of a learner (actor, critic, and for MADDPG both agents' copies as ensemble
members with weights [members, in, out], one ``torch.baddbmm`` per layer) lives in ONE flat
tensor, so Adam (``adam``) is a handful of element-wise ops over one vector and the soft target
update a single ``lerp_``. The backward pass is written out (ReLU, ReLU, linear output) and
writes gradients straight into views of a flat gradient vector, so nothing needs zeroing and no
graph is built. Why by hand, and what holds it to autograd: ``update``.
"""

from __future__ import annotations

import math

import torch

LAYER_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


class FlatLayout:
    """Offsets of named 3-layer ensemble MLPs inside one flat float32 vector."""

    def __init__(self, nets: dict[str, tuple[int, int, int, int]]) -> None:
        # nets: name -> (members, in_size, hidden, out_size)
        self.nets = dict(nets)
        self.entries: list[tuple[str, str, tuple[int, ...], int]] = []
        self.net_slices: dict[str, slice] = {}
        off = 0
        for name, (m, i, h, o) in self.nets.items():
            start = off
            for pname, shape in zip(LAYER_NAMES, [(m, i, h), (m, 1, h), (m, h, h), (m, 1, h),
                                                  (m, h, o), (m, 1, o)]):
                self.entries.append((name, pname, shape, off))
                off += math.prod(shape)
            self.net_slices[name] = slice(start, off)
        self.size = off

    def views(self, flat: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {name: [] for name in self.nets}
        for name, _pname, shape, off in self.entries:
            out[name].append(flat[off: off + math.prod(shape)].view(shape))
        return out

    def named(self, flat: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
        return {f"{prefix}{name}.{pname}": flat[off: off + math.prod(shape)].view(shape)
                for name, pname, shape, off in self.entries}

    def init(self, flat: torch.Tensor, generator: torch.Generator,
             final_init: float = 3e-3) -> None:
        """Hidden layers: nn.Linear's default U(+-1/sqrt(fan_in)). Output layer: U(+-3e-3) as in
        the DDPG paper, so initial actions sit near 0 and initial Q values near 0."""
        for name, pname, shape, off in self.entries:
            fan_in = self.nets[name][1] if pname in ("w1", "b1") else self.nets[name][2]
            bound = final_init if pname in ("w3", "b3") else 1.0 / math.sqrt(fan_in)
            n = math.prod(shape)
            vals = (torch.rand(n, generator=generator) * 2 - 1) * bound
            flat[off: off + n] = vals.to(flat.device)


Layers = list[torch.Tensor]  # one ensemble's w1, b1, w2, b2, w3, b3 (views into a flat vector)


def _linear(b: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # An ensemble's members as a batch dimension (the learners), or one network's 2-D weights
    # (the exported self-play actor: ONNX writes addmm as one Gemm, which ONNX Runtime ran about
    # 30% faster than the batched MatMul for one observation).
    return torch.baddbmm(b, x, w) if x.dim() == 3 else torch.addmm(b, x, w)


def forward(p: Layers, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one forward pass: x [members, batch, in] -> (out [members, batch, out], h1, h2), or
    the same without the members dimension for 2-D weights.

    Linear output (an actor's caller applies tanh); h1 and h2 are the hidden activations that
    ``backward`` needs (no extra work: they are computed anyway)."""
    w1, b1, w2, b2, w3, b3 = p
    h1 = _linear(b1, x, w1).relu_()
    h2 = _linear(b2, h1, w2).relu_()
    return _linear(b3, h2, w3), h1, h2


def actor_actions(p: Layers, obs: torch.Tensor, seats: int, obs_size: int) -> torch.Tensor:
    """Greedy actions: obs [N, seats, obs_size] -> [N, seats, action_size] in [-1, 1].

    ``p``: a learner's actor layers [members, in, out], where one member plays every seat
    (DDPG self-play: the seats' observations are one batch) or member i plays seat i (MADDPG);
    or one network's 2-D layers [in, out] for every seat (``ActorModule``'s self-play actor).
    The learners act, and ``ActorModule`` (the ONNX export) runs, through this function."""
    action_size = p[4].shape[-1]
    if p[0].dim() == 2:
        x = obs.reshape(-1, obs_size)
    elif p[0].shape[0] == 1:
        x = obs.reshape(1, -1, obs_size)
    else:
        return forward(p, obs.transpose(0, 1))[0].tanh_().transpose(0, 1)
    return forward(p, x)[0].tanh_().reshape(-1, seats, action_size)


def _relu_back(grad: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    # Gradient of ReLU given its output: zero where the unit was off.
    return torch.ops.aten.threshold_backward(grad, act, 0.0)


def backward(p: Layers, x: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor, dy: torch.Tensor,
             grads: Layers | None, input_cols: slice | None = None) -> torch.Tensor | None:
    """Backward of ``forward`` for output gradient ``dy`` [members, batch, out].

    Writes parameter gradients into ``grads`` (views, overwritten, not accumulated) unless it is
    None (weights held fixed, as the critic is inside the actor's loss). Returns the gradient with
    respect to the input columns ``input_cols`` of ``x`` when given, else None.
    """
    w1, _b1, w2, _b2, w3, _b3 = p
    if grads is not None:
        g_w1, g_b1, g_w2, g_b2, g_w3, g_b3 = grads
        torch.bmm(h2.transpose(1, 2), dy, out=g_w3)
        torch.sum(dy, 1, keepdim=True, out=g_b3)
    dz2 = _relu_back(torch.bmm(dy, w3.transpose(1, 2)), h2)
    if grads is not None:
        torch.bmm(h1.transpose(1, 2), dz2, out=g_w2)
        torch.sum(dz2, 1, keepdim=True, out=g_b2)
    dz1 = _relu_back(torch.bmm(dz2, w2.transpose(1, 2)), h1)
    if grads is not None:
        torch.bmm(x.transpose(1, 2), dz1, out=g_w1)
        torch.sum(dz1, 1, keepdim=True, out=g_b1)
    if input_cols is None:
        return None
    return torch.bmm(dz1, w1[:, input_cols, :].transpose(1, 2))
