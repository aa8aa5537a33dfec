"""Implicit factor networks: batched evaluation against naive per-component networks."""
from __future__ import annotations

import math

import pytest
import torch

from deepnmf.divergences import beta_divergence
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.nn import implicit
from deepnmf.nn.implicit import (
    ImplicitFactor,
    Workspace,
    fourier_features,
    paired_model,
    pointwise_loss,
    unique_coordinates,
)


def test_per_component_phases_give_per_component_features():
    x = torch.linspace(0, 1, 5, dtype=torch.float64)
    phase = torch.tensor([[0.0, 0.5], [1.0, -2.0], [0.3, 0.3]], dtype=torch.float64)
    F = fourier_features(x, 2, phase=phase)
    assert F.shape == (3, 5, 4)
    for k in range(3):
        torch.testing.assert_close(F[k], fourier_features(x, 2, phase=phase[k]))


def test_fourier_features_match_the_formula():
    x = torch.tensor([0.0, 0.1, 0.37, 1.0], dtype=torch.float64)
    phase = torch.tensor([0.0, 0.3, -1.0], dtype=torch.float64)
    F = fourier_features(x, 3, phase=phase)
    for i, xi in enumerate(x.tolist()):
        for j in range(3):
            arg = 2**j * math.pi * xi + phase[j].item()
            assert F[i, j].item() == pytest.approx(math.cos(arg), abs=1e-12)
            assert F[i, 3 + j].item() == pytest.approx(math.sin(arg), abs=1e-12)


def naive_component(net: ImplicitFactor, k: int, F: torch.Tensor) -> torch.Tensor:
    """Component ``k`` as an ordinary stack of torch.nn.Linear layers with sine activations."""
    w = net.weights()
    layers = []
    lin = torch.nn.Linear(F.shape[1], net.hidden).double()
    lin.weight.data, lin.bias.data = w["w_in"][k].double(), w["b_in"][k, :, 0].double()
    layers += [lin]
    for layer in range(net.n_layers - 1):
        lin = torch.nn.Linear(net.hidden, net.hidden).double()
        lin.weight.data, lin.bias.data = w["w_hidden"][layer, k].double(), w["b_hidden"][layer, k, :, 0].double()
        layers += [lin]
    out = torch.nn.Linear(net.hidden, 1).double()
    out.weight.data, out.bias.data = w["w_out"][k].double(), w["b_out"][k, 0].double()
    z = F[k].T.double()  # (n, 2J) features of component k
    for lin in layers:
        z = torch.sin(lin(z))
    return torch.nn.functional.softplus(out(z)[:, 0])


def test_batched_factor_equals_per_component_networks(torch_gen):
    net = ImplicitFactor(5, n_octaves=4, hidden=16, n_layers=3, generator=torch_gen, dtype=torch.float64)
    x = torch.rand(50, generator=torch_gen, dtype=torch.float64)
    G = net.at(x)
    assert G.shape == (5, 50)
    F = net.features(x)
    for k in range(5):
        torch.testing.assert_close(G[k], naive_component(net, k, F), rtol=1e-10, atol=1e-12)
    assert bool((G > 0).all())


def test_gather_at_unique_coordinates_equals_direct_evaluation(torch_gen):
    net = ImplicitFactor(3, n_octaves=5, hidden=8, generator=torch_gen)
    base = torch.linspace(0, 1, 17)
    x = base[torch.randint(0, 17, (400,), generator=torch_gen)]
    values, inverse = unique_coordinates(x)
    assert values.numel() <= 17
    torch.testing.assert_close(net.at_unique(x), net.at(x))
    torch.testing.assert_close(values[inverse], x)


def test_gradients_match_finite_differences(torch_gen):
    net = ImplicitFactor(2, n_octaves=2, hidden=4, n_layers=2, generator=torch_gen, dtype=torch.float64)
    F = net.features(torch.linspace(0, 1, 7, dtype=torch.float64))
    theta = net.theta.detach().clone().requires_grad_(True)
    evaluate = lambda th: torch.func.functional_call(net, {"theta": th}, (F,))  # noqa: E731
    assert torch.autograd.gradcheck(evaluate, (theta,))


@pytest.mark.parametrize("n_layers", [1, 3])
def test_gradients_for_weights_and_features_match_finite_differences(n_layers, torch_gen):
    net = ImplicitFactor(3, n_octaves=2, hidden=5, n_layers=n_layers, generator=torch_gen, dtype=torch.float64)
    F = net.features(torch.rand(6, generator=torch_gen, dtype=torch.float64)).requires_grad_(True)
    theta = net.theta.detach().clone().requires_grad_(True)
    evaluate = lambda th, feats: torch.func.functional_call(net, {"theta": th}, (feats,))  # noqa: E731
    assert torch.autograd.gradcheck(evaluate, (theta, F))


def test_float32_gradient_matches_autograd_through_naive_networks(torch_gen):
    """The hand-written reverse mode against torch autograd through ordinary layers, at a realistic size."""
    net = ImplicitFactor(4, n_octaves=10, hidden=64, generator=torch_gen)
    F = net.features(torch.linspace(0, 1, 300))
    G = torch.randn(4, 300, generator=torch_gen)
    (net(F) * G).sum().backward()
    theta = net.theta.detach().double().requires_grad_(True)
    w = net.weights(theta)  # differentiable views of a float64 copy
    out = []
    for k in range(4):  # one component at a time, point-major, through torch.nn.functional
        z = F[k].T.double()
        layers = [(w["w_in"][k], w["b_in"][k, :, 0])]
        layers += [(w["w_hidden"][i, k], w["b_hidden"][i, k, :, 0]) for i in range(net.n_layers - 1)]
        for weight, bias in layers:
            z = torch.sin(torch.nn.functional.linear(z, weight, bias))
        out.append(torch.nn.functional.softplus(torch.nn.functional.linear(z, w["w_out"][k], w["b_out"][k, 0])[:, 0]))
    (torch.stack(out) * G.double()).sum().backward()
    torch.testing.assert_close(net.theta.grad.double(), theta.grad, rtol=1e-4, atol=1e-5)


def test_same_generator_state_gives_same_weights():
    a = ImplicitFactor(4, generator=torch.Generator().manual_seed(3))
    b = ImplicitFactor(4, generator=torch.Generator().manual_seed(3))
    c = ImplicitFactor(4, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a.theta, b.theta)
    torch.testing.assert_close(a.phase, b.phase)
    assert not torch.equal(a.theta, c.theta)


@pytest.mark.parametrize("loss, beta", [("kl", 1.0), ("frobenius", 2.0), ("is", 0.0)])
def test_pointwise_loss_matches_beta_divergence(loss, beta, torch_gen):
    X = torch.rand(6, 9, generator=torch_gen, dtype=torch.float64) + 0.05
    Y = torch.rand(6, 9, generator=torch_gen, dtype=torch.float64) + 0.05
    ours = pointwise_loss(X, Y, loss)
    ref = beta_divergence(X, Y, beta, reduction="mean")
    torch.testing.assert_close(ours, ref.to(ours.dtype))
    assert float(pointwise_loss(X, X, loss)) == pytest.approx(0.0, abs=1e-12)


def test_errors():
    with pytest.raises(ParameterError, match="n_layers"):
        ImplicitFactor(2, n_layers=0)
    with pytest.raises(DataError, match="1-D"):
        fourier_features(torch.zeros(3, 2), 4)
    with pytest.raises(ParameterError, match="loss must be one of"):
        pointwise_loss(torch.ones(2), torch.ones(2), "l1")


def test_workspace_gives_identical_values_and_gradients(torch_gen):
    net = ImplicitFactor(3, n_octaves=4, hidden=16, generator=torch_gen)
    F = net.features(torch.linspace(0, 1, 40))
    G = torch.randn(3, 40, generator=torch_gen)
    out = net(F)
    (out * G).sum().backward()
    expected = net.theta.grad.clone()
    workspace = Workspace()
    for _ in range(2):  # the second pass reuses the buffers of the first
        net.theta.grad = None
        out_ws = net(F, workspace=workspace)
        (out_ws * G).sum().backward()
        assert torch.equal(out_ws, out)
        assert torch.equal(net.theta.grad, expected)


def test_workspace_overwritten_state_raises_instead_of_wrong_gradient(torch_gen):
    net = ImplicitFactor(2, n_octaves=3, hidden=8, generator=torch_gen)
    F = net.features(torch.linspace(0, 1, 20))
    workspace = Workspace()
    first = net(F, workspace=workspace).sum()
    net(F * 0.5, workspace=workspace)  # overwrites the states the first evaluation saved
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()


@pytest.mark.parametrize("ratio", [0, 1000])  # 0: always the gathered rows, 1000: always the dense product
def test_paired_model_matches_naive_sum_with_gradients(ratio, torch_gen, monkeypatch):
    monkeypatch.setattr(implicit, "DENSE_PAIR_RATIO", ratio)
    n_points = 40
    W = torch.rand(3, 9, generator=torch_gen, dtype=torch.float64, requires_grad=True)
    H = torch.rand(3, 7, generator=torch_gen, dtype=torch.float64, requires_grad=True)
    f_idx = torch.randint(0, 9, (n_points,), generator=torch_gen)
    t_idx = torch.randint(0, 7, (n_points,), generator=torch_gen)  # with repeated (f, t) pairs
    g = torch.randn(n_points, generator=torch_gen, dtype=torch.float64)
    (paired_model(W, H, f_idx, t_idx) * g).sum().backward()
    naive = torch.stack([sum(W[k, f] * H[k, t] for k in range(3)) for f, t in zip(f_idx.tolist(), t_idx.tolist())])
    torch.testing.assert_close(paired_model(W, H, f_idx, t_idx), naive)
    gW, gH = torch.autograd.grad((naive * g).sum(), (W, H))
    torch.testing.assert_close(W.grad, gW)
    torch.testing.assert_close(H.grad, gH)


def test_paired_model_caps_the_dense_product(torch_gen, monkeypatch):
    calls = []
    dense = implicit._DensePairs.apply
    monkeypatch.setattr(implicit._DensePairs, "apply", lambda *a: calls.append(1) or dense(*a))
    W = torch.rand(2, 9, generator=torch_gen)
    H = torch.rand(2, 7, generator=torch_gen)
    f_idx, t_idx = torch.randint(0, 9, (40,), generator=torch_gen), torch.randint(0, 7, (40,), generator=torch_gen)
    expected = (W[:, f_idx] * H[:, t_idx]).sum(0)
    torch.testing.assert_close(paired_model(W, H, f_idx, t_idx), expected)
    assert calls == [1]  # 63 pairs for 40 points: dense
    monkeypatch.setattr(implicit, "MAX_DENSE_PAIRS", 50)
    torch.testing.assert_close(paired_model(W, H, f_idx, t_idx), expected)
    assert calls == [1]  # above the cap: gathered rows
