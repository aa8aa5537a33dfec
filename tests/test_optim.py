"""FlatRprop against torch.optim.Rprop."""
import pytest
import torch

from deepnmf.exceptions import ParameterError
from deepnmf.nn.optim import FlatRprop, _step_torch, rprop_update


def _trajectory(opt_cls, dtype, n_steps=40, **kw):
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(500, generator=gen, dtype=dtype)
    p = torch.nn.Parameter(torch.zeros(500, dtype=dtype))
    q = torch.nn.Parameter(torch.ones(3, 4, dtype=dtype))
    opt = opt_cls([p, q], lr=0.05, **kw)
    out = []
    for _ in range(n_steps):
        opt.zero_grad()
        loss = ((p - target) ** 2).sum() + torch.sin(3 * q).sum()
        loss.backward()
        opt.step()
        out.append(torch.cat([p.detach().clone(), q.detach().clone().ravel()]))
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_rprop_equals_torch_rprop(dtype):
    ours = _trajectory(FlatRprop, dtype)
    ref = _trajectory(torch.optim.Rprop, dtype)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    ours = _trajectory(FlatRprop, dtype, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2))
    ref = _trajectory(torch.optim.Rprop, dtype, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2))
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_torch_kernel_equals_numpy_kernel():
    """The kernel used for CUDA tensors, run on CPU tensors, against the numpy one."""
    gen = torch.Generator().manual_seed(1)
    p = torch.randn(1000, generator=gen)
    opt = FlatRprop([torch.nn.Parameter(p.clone())], lr=0.1)
    prm = opt.param_groups[0]["params"][0]
    prev, size, p2 = torch.zeros(1000), torch.full((1000,), 0.1), p.clone()
    for _ in range(10):
        g = torch.randn(1000, generator=gen)
        prm.grad = g.clone()
        opt.step()
        _step_torch(p2, g, prev, size, 0.5, 1.2, 1e-6, 50.0)
    torch.testing.assert_close(prm.detach(), p2, rtol=0, atol=0)


def test_in_place_torch_step_matches_torch_in_float64():
    """The step CUDA tensors take, in float64: the step-size factors keep float64 precision."""
    gen = torch.Generator().manual_seed(4)
    ref = torch.nn.Parameter(torch.randn(800, generator=gen, dtype=torch.float64))
    opt = torch.optim.Rprop([ref], lr=0.01)
    p2, prev, size = ref.detach().clone(), torch.zeros(800, dtype=torch.float64), torch.full((800,), 0.01, dtype=torch.float64)
    for _ in range(10):
        g = torch.randn(800, generator=gen, dtype=torch.float64)
        ref.grad = g.clone()
        opt.step()
        _step_torch(p2, g, prev, size, 0.5, 1.2, 1e-6, 50.0)
    torch.testing.assert_close(p2, ref.detach(), rtol=0, atol=0)


def test_flat_rprop_rejects_bad_settings():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ParameterError, match="lr"):
        FlatRprop(p, lr=0)
    with pytest.raises(ParameterError, match="etas"):
        FlatRprop(p, etas=(1.2, 0.5))
    with pytest.raises(ParameterError, match="step_sizes"):
        FlatRprop(p, step_sizes=(1.0, 0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_gradients_and_sign_changes_match_torch(dtype):
    """Exact zeros keep their step size and do not move; sign changes shrink it (bit for bit as torch)."""
    gen = torch.Generator().manual_seed(2)
    p0 = torch.randn(2000, generator=gen, dtype=dtype)
    ours, ref = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    opts = FlatRprop([ours], lr=0.01), torch.optim.Rprop([ref], lr=0.01)
    for _ in range(12):
        g = torch.randn(2000, generator=gen, dtype=dtype)
        g[torch.rand(2000, generator=gen) < 0.2] = 0.0
        for param, opt in zip((ours, ref), opts):
            param.grad = g.clone()
            opt.step()
        torch.testing.assert_close(ours.detach(), ref.detach(), rtol=0, atol=0)


def test_nan_gradient_gives_nan_parameter_only_there():
    p = torch.nn.Parameter(torch.ones(4))
    opt = FlatRprop([p], lr=0.1)
    p.grad = torch.tensor([1.0, float("nan"), -1.0, 0.0])
    opt.step()
    assert torch.isnan(p[1]) and not torch.isnan(p[[0, 2, 3]]).any()
    torch.testing.assert_close(p.detach()[[0, 2, 3]], torch.tensor([0.9, 1.1, 1.0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_functional_rprop_update_matches_torch_bit_for_bit(dtype):
    """rprop_update (the pure function compiled grid training uses) against torch.optim.Rprop."""
    gen = torch.Generator().manual_seed(5)
    p0 = torch.randn(3000, generator=gen, dtype=dtype)
    ref = torch.nn.Parameter(p0.clone())
    opt = torch.optim.Rprop([ref], lr=0.01)
    p, prev, size = p0.clone(), torch.zeros_like(p0), torch.full_like(p0, 0.01)
    for _ in range(15):
        g = torch.randn(3000, generator=gen, dtype=dtype)
        g[torch.rand(3000, generator=gen) < 0.2] = 0.0
        ref.grad = g.clone()
        opt.step()
        p, prev, size = rprop_update(p, g, prev, size)
        assert p.dtype == dtype
        torch.testing.assert_close(p, ref.detach(), rtol=0, atol=0)
