"""Ensembles of small MLPs in one flat parameter vector, with a hand-written backward pass.

Why not nn.Module + autograd + torch.optim: at 128-unit layers and batch 128 one DDPG update is
~10 matrix products of ~50 us each, but autograd, AccumulateGrad and torch.optim.Adam's per-tensor
bookkeeping added more than twice that again on this 2-core CPU (2.1 ms per update measured with
autograd and fused Adam). Here:

- every network of a learner (actor, critic, and for MADDPG both agents' copies as ensemble
  members with weights [members, in, out], one ``torch.baddbmm`` per layer) lives in ONE flat
  tensor, so Adam is a handful of element-wise ops over one vector and the soft target update is
  a single ``lerp_``;
- the backward pass is written out (three layers, ReLU, linear output) and writes gradients
  straight into views of a flat gradient vector, so nothing needs zeroing and no graph is built.

``tennis_assets_tests/agents`` checks these gradients against autograd.
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


def mlp_forward(p: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x: [members, batch, in] -> [members, batch, out] (linear output)."""
    w1, b1, w2, b2, w3, b3 = p
    h = torch.baddbmm(b1, x, w1).relu_()
    h = torch.baddbmm(b2, h, w2).relu_()
    return torch.baddbmm(b3, h, w3)


def mlp_forward_saved(p: list[torch.Tensor], x: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward keeping the hidden activations the backward pass needs: (out, h1, h2)."""
    w1, b1, w2, b2, w3, b3 = p
    h1 = torch.baddbmm(b1, x, w1).relu_()
    h2 = torch.baddbmm(b2, h1, w2).relu_()
    return torch.baddbmm(b3, h2, w3), h1, h2


def _relu_back(grad: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    # Gradient of ReLU given its output: zero where the unit was off.
    return torch.ops.aten.threshold_backward(grad, act, 0.0)


def mlp_backward(p: list[torch.Tensor], x: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor,
                 dy: torch.Tensor, grads: list[torch.Tensor] | None,
                 input_cols: slice | None = None) -> torch.Tensor | None:
    """Backward of ``mlp_forward`` for output gradient ``dy`` [members, batch, out].

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


class FlatAdam:
    """Adam (Kingma & Ba) over one flat vector with a per-element learning rate, so the actor and
    the critic keep their own rates inside the same few element-wise ops. Weight decay is the
    coupled L2 form of torch.optim.Adam, per element too."""

    def __init__(self, params: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor | None,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.step_count = 0

    def step(self, grad: torch.Tensor) -> None:
        self.step_count += 1
        if self.weight_decay is not None:
            grad = grad.addcmul(self.params, self.weight_decay)
        self.exp_avg.lerp_(grad, 1.0 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        bc1 = 1.0 - self.beta1 ** self.step_count
        bc2_sqrt = math.sqrt(1.0 - self.beta2 ** self.step_count)
        # p -= lr * (m / bc1) / (sqrt(v / bc2) + eps), rearranged to avoid a full-size division
        denom = self.exp_avg_sq.sqrt().add_(self.eps * bc2_sqrt)
        upd = torch.div(self.exp_avg, denom).mul_(self.lr)
        self.params.add_(upd, alpha=-bc2_sqrt / bc1)

    def step_on_device(self, grad: torch.Tensor, step: torch.Tensor) -> None:
        """``step`` with the step count as a device tensor (already incremented), so the bias
        corrections need no host value: what a CUDA graph can replay. The caller keeps
        step_count in step."""
        if self.weight_decay is not None:
            grad = grad.addcmul(self.params, self.weight_decay)
        self.exp_avg.lerp_(grad, 1.0 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        bc1 = 1.0 - torch.pow(self.beta1, step)
        bc2_sqrt = (1.0 - torch.pow(self.beta2, step)).sqrt_()
        denom = self.exp_avg_sq.sqrt().add_(bc2_sqrt * self.eps)
        upd = torch.div(self.exp_avg, denom).mul_(self.lr)
        self.params.sub_(upd.mul_(bc2_sqrt / bc1))
