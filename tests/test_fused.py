"""The numba kernels of deepnmf.nn.fused against torch and float64 references."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch

from deepnmf.nn import fused
from deepnmf.nn.implicit import ImplicitFactor, Workspace
from deepnmf.nn.optim import _step_numpy

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba kernels disabled (DEEPNMF_FUSED=0)")


def states(K=3, h=8, n=257, scale=30.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(K, h, n, generator=gen) * scale
    b = torch.randn(K, h, 1, generator=gen)
    return a, b


def test_sine_activation_is_accurate_against_float64():
    a, b = states()
    # arguments right at and around multiples of pi/2 (quadrant boundaries), and up to the kernel's limit
    a[0, 0, :200] = torch.arange(-100, 100) * (math.pi / 4) - b[0, 0]
    a[1, 1, :64] = torch.linspace(-4000.0, 4000.0, 64) - b[1, 1]
    z, c = torch.empty_like(a), torch.empty_like(a)
    fused.sine_activation(a, b, z, c, bound=4096.0)
    x = (a + b).double()  # the float32 argument the kernel sees, then exact sine and cosine
    assert (z.double() - x.sin()).abs().max() < 1.2e-7  # two float32 ulps of 1 (measured: 6e-8)
    assert (c.double() - x.cos()).abs().max() < 1.2e-7
    torch_err = (torch.sin(a + b).double() - x.sin()).abs().max()
    assert torch_err < 1.2e-7  # the same accuracy class as torch's own float32 sine


def test_sine_activation_leaves_input_and_bumps_versions():
    a, b = states()
    a0 = a.clone()
    z, c = torch.empty_like(a), torch.empty_like(a)
    vz, vc = z._version, c._version
    fused.sine_activation(a, b, z, c, bound=None)
    assert torch.equal(a, a0)
    assert z._version > vz and c._version > vc


@pytest.mark.parametrize("case", ["beyond-bound", "measured-beyond", "nan", "float64", "disabled"])
def test_sine_activation_falls_back_to_torch(case, monkeypatch):
    a, b = states()
    bound = 10_000.0 if case == "beyond-bound" else None
    if case == "measured-beyond":
        a[2, 3, 4] = 5000.0
    if case == "nan":
        a[0, 0, 0] = float("nan")
    if case == "float64":
        a, b = a.double(), b.double()
    if case == "disabled":
        monkeypatch.setattr(fused, "ENABLED", False)
    z, c = torch.empty_like(a), torch.empty_like(a)
    fused.sine_activation(a, b, z, c, bound=bound)
    # bit for bit what torch computes
    torch.testing.assert_close(z, torch.sin(a + b), rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(c, torch.cos(a + b), rtol=0, atol=0, equal_nan=True)


def test_scale_rowsum_matches_torch():
    a, b = states(scale=1.0)
    g, c = a.clone(), torch.cos(a)
    gb = torch.empty_like(b)
    fused.scale_rowsum(g, c, gb)
    torch.testing.assert_close(g, a * c, rtol=0, atol=0)  # one rounding, as torch
    ref = (a.double() * c.double()).sum(2, keepdim=True)
    torch.testing.assert_close(gb.double(), ref, rtol=1e-5, atol=1e-5)


def test_outer_scale_rowsum_matches_torch():
    a, b = states(scale=1.0)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(a.shape[0], a.shape[1], 1, generator=gen)
    go = torch.randn(a.shape[0], 1, a.shape[2], generator=gen)
    c = torch.cos(a)
    g, gb = torch.empty_like(a), torch.empty_like(b)
    fused.outer_scale_rowsum(w, go, c, g, gb)
    torch.testing.assert_close(g, w * go * c, rtol=0, atol=0)
    torch.testing.assert_close(gb.double(), (w.double() * go.double() * c.double()).sum(2, keepdim=True),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rprop_kernel_equals_numpy_passes(dtype):
    rng = np.random.default_rng(0)
    n = 1000
    p1 = rng.standard_normal(n).astype(dtype)
    p2 = p1.copy()
    s1, s2 = (np.zeros(n, dtype) for _ in range(2))
    z1, z2 = (np.full(n, 1e-3, dtype) for _ in range(2))
    for step in range(6):
        g = rng.standard_normal(n).astype(dtype)
        g[rng.random(n) < 0.1] = 0.0  # zero gradients keep their step size
        assert fused.rprop_step(p1, g.copy(), s1, z1, 0.5, 1.2, 1e-6, 50.0)
        _step_numpy(p2, g.copy(), s2, z2, 0.5, 1.2, 1e-6, 50.0)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(z1, z2)
        np.testing.assert_array_equal(s1, s2)


def test_rprop_kernel_nan_gradient_gives_nan_parameter():
    p, prev, size = np.ones(3, np.float32), np.zeros(3, np.float32), np.full(3, 0.1, np.float32)
    assert fused.rprop_step(p, np.array([1.0, np.nan, -1.0], np.float32), prev, size, 0.5, 1.2, 1e-6, 50.0)
    assert p[0] == np.float32(0.9) and np.isnan(p[1]) and p[2] == np.float32(1.1)


def test_kernels_follow_torch_thread_count():
    n_threads = torch.get_num_threads()
    a, b = states()
    z, c = torch.empty_like(a), torch.empty_like(a)
    try:
        torch.set_num_threads(1)
        fused.sine_activation(a, b, z, c, bound=100.0)
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(n_threads)


def test_network_gradients_agree_with_and_without_kernels(monkeypatch):
    """The stacked networks' values and gradients: fused kernels vs torch elementwise passes."""
    net = ImplicitFactor(4, n_octaves=6, hidden=32, generator=torch.Generator().manual_seed(3))
    F = net.features(torch.linspace(0, 1, 301))
    target = torch.rand(4, 301, generator=torch.Generator().manual_seed(4))
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(fused, "ENABLED", enabled)
        net.zero_grad()
        out = net(F, workspace=Workspace())
        ((out - target) ** 2).sum().backward()
        results.append((out.detach().clone(), net.theta.grad.clone()))
    (o1, g1), (o2, g2) = results
    torch.testing.assert_close(o1, o2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


def test_workspace_bound_follows_the_features():
    ws = Workspace()
    F = torch.rand(2, 4, 50)
    assert ws.abs_max(F) == pytest.approx(float(F.abs().max()))
    F.mul_(-3.0)  # written in place: the version counter moves, the bound is measured again
    assert ws.abs_max(F) == pytest.approx(float(F.abs().max()))
    G = torch.full((2, 4, 50), 7.0)
    assert ws.abs_max(G) == 7.0
    assert math.isnan(fused.abs_max(torch.tensor([1.0, float("nan"), -2.0])))
    assert fused.abs_max(torch.tensor([1.0, -2.0])) == 2.0
