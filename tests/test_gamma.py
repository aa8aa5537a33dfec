"""Gamma reparameterised samplers and KL: moments, gradients, exactness, references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from deepnmf.exceptions import ParameterError
from deepnmf.nn import gamma as G

METHODS = ["marsaglia-tsang", "implicit"]
SHAPES = [0.3, 1.0, 3.0]
RATE = 2.0
N_DRAWS = 200_000


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES)
def test_moments_and_mean_gradient(method, shape):
    gen = torch.Generator().manual_seed(12345)
    a = torch.tensor(shape, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(RATE, dtype=torch.float64, requires_grad=True)
    z = G.rsample(a, b, method=method, generator=gen, sample_shape=(N_DRAWS,))
    assert z.shape == (N_DRAWS,)
    assert bool((z > 0).all())
    mean, var = z.mean(), z.var()
    assert mean.item() == pytest.approx(shape / RATE, rel=0.03)
    assert var.item() == pytest.approx(shape / RATE**2, rel=0.03)
    mean.backward()
    # d E[z] / d shape = 1 / rate, d E[z] / d rate = -shape / rate^2
    assert a.grad.item() == pytest.approx(1.0 / RATE, rel=0.05)
    assert b.grad.item() == pytest.approx(-shape / RATE**2, rel=0.05)


@pytest.mark.parametrize("method", METHODS)
def test_draws_follow_the_gamma_distribution(method):
    """Kolmogorov-Smirnov against scipy's Gamma for a shape below and above 1."""
    gen = torch.Generator().manual_seed(7)
    for shape in (0.3, 2.5):
        z = G.rsample(torch.tensor(shape, dtype=torch.float64), torch.tensor(RATE, dtype=torch.float64),
                      method=method, generator=gen, sample_shape=(20_000,))
        res = stats.kstest(z.numpy(), stats.gamma(shape, scale=1.0 / RATE).cdf)
        assert res.pvalue > 1e-3, (shape, res)


def test_implicit_gradient_matches_cdf_derivative():
    """dz/da = -(dF/da) / f(z) with dF/da by central differences of scipy's gammainc."""
    gen = torch.Generator().manual_seed(3)
    a = torch.full((400,), 0.7, dtype=torch.float64, requires_grad=True)
    z = G.rsample(a, torch.ones((), dtype=torch.float64), method="implicit", generator=gen)
    z.sum().backward()
    zz, h = z.detach().numpy(), 1e-6
    dF = (special.gammainc(0.7 + h, zz) - special.gammainc(0.7 - h, zz)) / (2 * h)
    expected = -dF / stats.gamma(0.7).pdf(zz)
    np.testing.assert_allclose(a.grad.numpy(), expected, rtol=1e-3, atol=1e-8)


def test_marsaglia_tsang_eps_reproduces_exact_draws():
    """Accepted eps pushed through h give Gamma(a, 1) draws (a >= 1, no augmentation)."""
    gen = torch.Generator().manual_seed(11)
    a = torch.full((50_000,), 1.7, dtype=torch.float64)
    eps = G.marsaglia_tsang_eps(a, gen)
    z = (a - 1 / 3) * (1 + eps / torch.sqrt(9 * a - 3)) ** 3
    assert stats.kstest(z.numpy(), stats.gamma(1.7).cdf).pvalue > 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_generator_makes_draws_reproducible(method):
    a, b = torch.tensor([0.2, 1.0, 4.0]), torch.tensor([1.0, 0.5, 3.0])
    z1 = G.rsample(a, b, method=method, generator=torch.Generator().manual_seed(5))
    z2 = G.rsample(a, b, method=method, generator=torch.Generator().manual_seed(5))
    z3 = G.rsample(a, b, method=method, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    assert not torch.equal(z1, z3)


@pytest.mark.parametrize("method", METHODS)
def test_broadcasting_and_float32_small_shapes(method):
    gen = torch.Generator().manual_seed(0)
    a = torch.tensor([[0.05], [0.5], [5.0]], requires_grad=True)  # (3, 1), float32
    b = torch.tensor([[0.1, 1.0, 10.0, 100.0]])  # (1, 4)
    z = G.rsample(a, b, method=method, generator=gen, sample_shape=(2,))
    assert z.shape == (2, 3, 4) and z.dtype == torch.float32
    assert bool(torch.isfinite(z).all()) and bool((z > 0).all())
    z.sum().backward()
    assert bool(torch.isfinite(a.grad).all())


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="concentration must be finite and > 0"):
        G.rsample(torch.tensor([-1.0]), torch.tensor([1.0]))
    with pytest.raises(ParameterError, match="rate must be finite and > 0"):
        G.rsample(torch.tensor([1.0]), torch.tensor([float("nan")]))
    with pytest.raises(ParameterError, match="method must be one of"):
        G.rsample(torch.tensor([1.0]), torch.tensor([1.0]), method="inverse-cdf")


def test_kl_matches_torch_distributions():
    rng = np.random.default_rng(0)
    params = [torch.tensor(rng.uniform(0.05, 20, size=500)) for _ in range(4)]
    ours = G.kl(*params)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Gamma(params[0], params[1]), torch.distributions.Gamma(params[2], params[3])
    )
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert bool((ours >= -1e-12).all())
    same = G.kl(params[0], params[1], params[0], params[1])
    torch.testing.assert_close(same, torch.zeros_like(same), rtol=0, atol=1e-10)


@pytest.mark.parametrize("q,p", [((0.3, 2.0), (1.0, 1.0)), ((3.0, 2.0), (1.0, 1.0)), ((5.0, 0.5), (2.0, 3.0))])
def test_kl_matches_monte_carlo(q, p):
    """E_q[log q(z) - log p(z)] with scipy densities, 200k draws, within 3%."""
    z = stats.gamma(q[0], scale=1 / q[1]).rvs(size=N_DRAWS, random_state=np.random.default_rng(1))
    mc = np.mean(stats.gamma(q[0], scale=1 / q[1]).logpdf(z) - stats.gamma(p[0], scale=1 / p[1]).logpdf(z))
    exact = G.kl(torch.tensor(q[0]), torch.tensor(q[1]), torch.tensor(p[0]), torch.tensor(p[1])).item()
    assert exact == pytest.approx(mc, rel=0.03)


def test_mean_and_mode():
    a, b = torch.tensor([0.5, 3.0]), torch.tensor([2.0, 2.0])
    torch.testing.assert_close(G.mean(a, b), torch.tensor([0.25, 1.5]))
    torch.testing.assert_close(G.mode(a, b), torch.tensor([0.0, 1.0]))
