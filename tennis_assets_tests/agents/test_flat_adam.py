"""FlatAdam must be Adam: the same trajectory as torch.optim.Adam for the same gradients."""

import pytest
import torch

from tennis_assets.agents.adam import FlatAdam


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_flat_adam_matches_torch_adam(weight_decay, on_device):
    """Both ways of counting steps: on the host, and as a device tensor (the CUDA graph's
    way, run here on the CPU)."""
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
        ours.step(g.clone(), on_device=on_device)
    torch.testing.assert_close(flat, reference.detach(), rtol=1e-5, atol=1e-6)
    if on_device:  # counted on the device; the host count is the graph replayer's to keep
        assert ours.step_count == 0 and float(ours.device_count) == 25.0
    else:
        assert ours.step_count == 25 and ours.device_count is None
    ours.set_step_count(3)  # a restored state reaches both counts
    assert ours.step_count == 3 and float(ours.count_on_device()) == 3.0


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
