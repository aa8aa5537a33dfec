"""deepnmf.distributed: data-parallel NMF and VAE-NMF over two gloo processes equal the one-process runs."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from deepnmf.distributed import data_parallel_mu, row_block, setup
from deepnmf.exceptions import ParameterError
from deepnmf.solvers.mu import multiplicative_updates


def _problem(seed: int = 0, n: int = 61, m: int = 17, k: int = 4):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, k, generator=g, dtype=torch.float64) @ torch.rand(k, m, generator=g, dtype=torch.float64)
    X += 0.01 * torch.rand(n, m, generator=g, dtype=torch.float64)
    W0 = torch.rand(n, k, generator=g, dtype=torch.float64) + 0.1
    H0 = torch.rand(k, m, generator=g, dtype=torch.float64) + 0.1
    return X, W0, H0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, beta: float, out: dict) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    setup("gloo")
    X, W0, H0 = _problem()
    rows = row_block(X.shape[0])
    res = data_parallel_mu(X[rows].clone(), W0[rows].clone(), H0.clone(), beta=beta, max_iter=40, tol=0.0)
    out[rank] = (res.H.numpy(), res.W.numpy(), res.losses)
    dist.destroy_process_group()


def test_row_blocks_tile_the_samples():
    for n, w in [(10, 3), (2, 5), (61, 2)]:
        blocks = [row_block(n, r, w) for r in range(w)]
        assert [i for b in blocks for i in range(n)[b]] == list(range(n))
        sizes = [b.stop - b.start for b in blocks]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5])
def test_one_process_data_parallel_mu_is_the_packages_mu(beta):
    X, W0, H0 = _problem()
    ours = data_parallel_mu(X, W0.clone(), H0.clone(), beta=beta, max_iter=40, tol=0.0)
    ref = multiplicative_updates(X, W0.clone(), H0.clone(), beta=beta, max_iter=40, tol=0.0, backend="torch")
    np.testing.assert_allclose(ours.H, ref.H, rtol=1e-8)
    np.testing.assert_allclose(ours.losses, ref.losses, rtol=1e-9)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(ours.losses, ours.losses[1:]))  # MM: never rises


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_two_gloo_processes_reach_the_one_process_iterates(beta):
    X, W0, H0 = _problem()
    single = data_parallel_mu(X, W0.clone(), H0.clone(), beta=beta, max_iter=40, tol=0.0)
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(2, _free_port(), beta, out), nprocs=2, join=True)
    H_a, W_a, losses_a = out[0]
    H_b, W_b, losses_b = out[1]
    np.testing.assert_array_equal(H_a, H_b)  # one dictionary on every rank
    assert losses_a == losses_b
    np.testing.assert_allclose(H_a, single.H, rtol=1e-9)
    np.testing.assert_allclose(np.concatenate([W_a, W_b]), single.W, rtol=1e-9)
    np.testing.assert_allclose(losses_a, single.losses, rtol=1e-10)


def test_setup_outside_torchrun_says_how_to_launch(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ParameterError, match="torchrun"):
        setup()
    X, W0, H0 = _problem()
    with pytest.raises(ParameterError, match="shapes do not match"):
        data_parallel_mu(X, W0[:5], H0, beta=1.0)


@pytest.mark.parametrize("inner", [1, None])
def test_one_process_data_parallel_hals_is_the_packages_cd(inner):
    from deepnmf.distributed import data_parallel_hals
    from deepnmf.solvers.cd import coordinate_descent

    X, W0, H0 = _problem()
    ours = data_parallel_hals(X, W0.clone(), H0.clone(), n_samples=X.shape[0], max_iter=30, tol=0.0, inner=inner)
    ref = coordinate_descent(X, W0.clone(), H0.clone(), beta=2.0, max_iter=30, tol=0.0, inner=inner)
    np.testing.assert_allclose(ours.H, ref.H, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.losses, ref.losses, rtol=1e-9)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(ours.losses, ours.losses[1:]))


def _hals_worker(rank: int, world: int, port: int, out: dict) -> None:
    import os

    import torch.distributed as dist

    from deepnmf.distributed import data_parallel_hals

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    setup("gloo")
    X, W0, H0 = _problem()
    rows = row_block(X.shape[0])
    res = data_parallel_hals(X[rows].clone(), W0[rows].clone(), H0.clone(), n_samples=X.shape[0], max_iter=30,
                             tol=0.0, inner=None)
    out[rank] = (res.H.numpy(), res.losses)
    dist.destroy_process_group()


def test_two_gloo_processes_run_the_one_process_hals():
    from deepnmf.distributed import data_parallel_hals

    X, W0, H0 = _problem()
    single = data_parallel_hals(X, W0.clone(), H0.clone(), n_samples=X.shape[0], max_iter=30, tol=0.0, inner=None)
    out = mp.Manager().dict()
    mp.spawn(_hals_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_allclose(out[0][0], single.H, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out[0][1], single.losses, rtol=1e-10)


def _vae_problem(n: int):
    g = np.random.default_rng(1)
    return g.random((n, 4)) @ g.random((4, 17)) + 0.01 * g.random((n, 17))


def _vae_fit(n: int, likelihood: str, sampler: str):
    from deepnmf.models.vae import VAENMF

    est = VAENMF(4, likelihood=likelihood, sampler=sampler, hidden=(16,), max_epochs=4, batch_size=32,
                 early_stopping=False, random_state=3, dtype="float64").fit(_vae_problem(n))
    return {k: v.numpy().copy() for k, v in est.module_.state_dict().items()}, est.history_


def _vae_worker(rank: int, world: int, port: int, case: tuple, out: dict) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    setup("gloo")
    out[rank] = _vae_fit(*case)
    dist.destroy_process_group()


# 203 rows: 183 train in batches of 32, the last of 23 (12 + 11 rows); 178: the last batch is 1 row (one rank has none)
@pytest.mark.parametrize("case", [(203, "gaussian", "marsaglia-tsang"), (178, "poisson", "implicit")])
def test_two_gloo_processes_replay_the_one_process_vae_nmf(case):
    single_state, single_history = _vae_fit(*case)
    out = mp.Manager().dict()
    mp.spawn(_vae_worker, args=(2, _free_port(), case, out), nprocs=2, join=True)
    for key, value in single_state.items():
        np.testing.assert_array_equal(out[0][0][key], out[1][0][key])  # one model on every rank
        np.testing.assert_allclose(out[0][0][key], value, rtol=1e-8, atol=1e-12, err_msg=key)  # measured: 4e-13
    assert out[0][1] == out[1][1]
    for key, curve in single_history.items():
        np.testing.assert_allclose(out[0][1][key], curve, rtol=1e-9, err_msg=key)


def _innmf_grid(loss: str, rank: int = 0, world: int = 1, reduce=None):
    """iN-NMF's grid loop in float64 on this rank's block of 37 frames (all of them in one process)."""
    from deepnmf.models._implicit_training import train_grid
    from deepnmf.nn.implicit import ImplicitFactor

    X = torch.as_tensor(_vae_problem(37)) + 0.05  # (frames, bins), positive
    g = torch.Generator().manual_seed(5)
    net = ImplicitFactor(3, n_octaves=4, hidden=8, n_layers=2, generator=g, dtype=torch.float64)
    F = net.features(torch.linspace(0.0, 1.0, X.shape[1], dtype=torch.float64))
    H = torch.rand(X.shape[0], 3, generator=g, dtype=torch.float64) + 0.1
    rows = row_block(X.shape[0], rank, world)
    losses = train_grid(net, F, H[rows], X[rows], loss=loss, eps=1e-10, optimizer="rprop", lr=1e-2, epochs=30,
                        reduce=reduce)
    return net.theta.detach().numpy().copy(), H[rows].numpy().copy(), losses


def _innmf_worker(rank: int, world: int, port: int, loss: str, out: dict) -> None:
    import os

    import torch.distributed as dist

    from deepnmf.distributed import all_reduce_sum

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    setup("gloo")
    out[rank] = _innmf_grid(loss, rank, world, all_reduce_sum)
    dist.destroy_process_group()


@pytest.mark.parametrize("loss", ["kl", "is"])
def test_two_gloo_processes_replay_the_one_process_implicit_nmf(loss):
    theta, H, losses = _innmf_grid(loss)
    out = mp.Manager().dict()
    mp.spawn(_innmf_worker, args=(2, _free_port(), loss, out), nprocs=2, join=True)
    np.testing.assert_array_equal(out[0][0], out[1][0])  # one set of atom networks on every rank
    assert out[0][2] == out[1][2]
    np.testing.assert_allclose(out[0][0], theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([out[0][1], out[1][1]]), H, rtol=1e-9)
    np.testing.assert_allclose(out[0][2], losses, rtol=1e-10)
    assert losses[-1] < losses[0]
