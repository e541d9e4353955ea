"""Adam (Kingma & Ba) over one flat parameter vector.

A learner keeps all its networks in one flat vector (see ``networks``), so Adam is a handful of
element-wise ops over it, with a per-element learning rate so that the actor and the critic keep
their own rates inside the same ops. Weight decay is the coupled L2 form of torch.optim.Adam,
per element too. ``tennis_assets_tests/agents/test_update.py`` holds it to torch.optim.Adam.
"""

from __future__ import annotations

import math

import torch


class FlatAdam:
    def __init__(self, params: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor | None,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.step_count = 0
        # The step count as a device tensor, for a CUDA graph (which can read no host value);
        # made by count_on_device, kept equal to step_count by whoever replays the graph.
        self.device_count: torch.Tensor | None = None

    def step(self, grad: torch.Tensor, on_device: bool = False) -> None:
        """One Adam step with the gradient ``grad`` (a flat vector like ``params``).

        on_device: count the step in ``device_count`` and compute the bias corrections there,
        reading no host value, which is what a CUDA graph can replay; ``step_count`` is then the
        caller's to advance."""
        if self.weight_decay is not None:
            grad = grad.addcmul(self.params, self.weight_decay)
        self.exp_avg.lerp_(grad, 1.0 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        # p -= lr * (m / bc1) / (sqrt(v / bc2) + eps), rearranged to avoid a full-size division:
        # p -= (bc2_sqrt / bc1) * lr * m / (sqrt(v) + eps * bc2_sqrt)
        if on_device:
            count = self.count_on_device()
            count.add_(1.0)
            bc1 = 1.0 - torch.pow(self.beta1, count)
            bc2_sqrt = (1.0 - torch.pow(self.beta2, count)).sqrt_()
            denom = self.exp_avg_sq.sqrt().add_(bc2_sqrt * self.eps)
            self.params.sub_(torch.div(self.exp_avg, denom).mul_(self.lr).mul_(bc2_sqrt / bc1))
            return
        self.step_count += 1
        bc1_host = 1.0 - self.beta1 ** self.step_count
        bc2_sqrt_host = math.sqrt(1.0 - self.beta2 ** self.step_count)
        denom = self.exp_avg_sq.sqrt().add_(self.eps * bc2_sqrt_host)
        # One fused multiply-add with a host scalar (the device branch has no scalar to fuse).
        self.params.add_(torch.div(self.exp_avg, denom).mul_(self.lr),
                         alpha=-bc2_sqrt_host / bc1_host)

    def count_on_device(self) -> torch.Tensor:
        if self.device_count is None:
            self.device_count = torch.full((), float(self.step_count), dtype=torch.float32,
                                           device=self.params.device)
        return self.device_count

    def set_step_count(self, count: int) -> None:
        """A restored step count, on the host and (once there is one) on the device."""
        self.step_count = int(count)
        if self.device_count is not None:
            self.device_count.fill_(float(count))
