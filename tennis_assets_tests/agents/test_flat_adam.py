"""FlatAdam must be Adam: the same trajectory as torch.optim.Adam for the same gradients."""

import pytest
import torch

from tennis_assets.agents.networks import FlatAdam


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_flat_adam_matches_torch_adam(weight_decay):
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(300, generator=gen)
    grads = [torch.randn(300, generator=gen) for _ in range(25)]

    reference = start.clone().requires_grad_(True)
    torch_adam = torch.optim.Adam([reference], lr=3e-3, weight_decay=weight_decay)
    flat = start.clone()
    lr = torch.full_like(flat, 3e-3)
    wd = torch.full_like(flat, weight_decay) if weight_decay else None
    ours = FlatAdam(flat, lr, wd)
    for g in grads:
        reference.grad = g.clone()
        torch_adam.step()
        ours.step(g.clone())
    torch.testing.assert_close(flat, reference.detach(), rtol=1e-5, atol=1e-6)


def test_flat_adam_per_element_rates_act_like_param_groups():
    # The actor and critic share one vector with their own rates; that must equal two groups.
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(40, generator=gen)
    grads = [torch.randn(40, generator=gen) for _ in range(10)]
    a, b = start[:15].clone().requires_grad_(True), start[15:].clone().requires_grad_(True)
    torch_adam = torch.optim.Adam([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 5e-3}])
    flat = start.clone()
    lr = torch.cat([torch.full((15,), 1e-3), torch.full((25,), 5e-3)])
    ours = FlatAdam(flat, lr, None)
    for g in grads:
        a.grad, b.grad = g[:15].clone(), g[15:].clone()
        torch_adam.step()
        ours.step(g.clone())
    torch.testing.assert_close(flat, torch.cat([a, b]).detach(), rtol=1e-5, atol=1e-6)
