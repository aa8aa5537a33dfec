"""The shared fit loop (deepnmf.training): splits, epochs, early stopping, best weights, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnmf.exceptions import DataError, ParameterError
from deepnmf.training import evaluate, fit_module, split_validation


class Quadratic(torch.nn.Module):
    """Loss = mean over the batch of (theta - x)^2: its minimiser is the mean of the data."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(()))
        self.steps = 0

    def forward(self, x, generator):
        loss = (self.theta - x[:, 0]).square().mean()
        return {"loss": loss, "abs_theta": self.theta.detach().abs()}

    def after_step(self):
        self.steps += 1


def test_split_is_a_partition_and_reproducible():
    gen = torch.Generator().manual_seed(0)
    train, val = split_validation(103, 0.2, gen)
    assert val.numel() == 20 and train.numel() == 83
    assert sorted(torch.cat([train, val]).tolist()) == list(range(103))
    train2, val2 = split_validation(103, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(val, val2)
    assert split_validation(5, 0.0, gen)[1].numel() == 0
    assert split_validation(5, 0.01, gen)[1].numel() == 1  # a requested split keeps at least one sample


def test_split_errors():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ParameterError, match=r"validation_fraction must be in \[0, 1\)"):
        split_validation(10, 1.5, gen)
    with pytest.raises(DataError, match="too few to hold out"):
        split_validation(1, 0.5, gen)


def test_exact_epochs_steps_and_convergence():
    X = torch.full((50, 1), 2.0) + torch.linspace(-1, 1, 50)[:, None]
    module = Quadratic()
    result = fit_module(module, X, generator=torch.Generator().manual_seed(0), max_epochs=40, batch_size=16,
                        lr=0.1, weight_decay=0.0, validation_fraction=0.0, early_stopping=False)
    assert result.n_epochs == 40 and not result.stopped_early
    assert module.steps == 40 * 4  # ceil(50 / 16) steps per epoch, after_step called each time
    assert len(result.history["train_loss"]) == 40 and "val_loss" not in result.history
    assert float(module.theta.detach()) == pytest.approx(2.0, abs=0.1)
    # sample-weighted epoch means: abs_theta history is the parameter's size during each epoch
    assert result.history["train_abs_theta"][-1] == pytest.approx(2.0, abs=0.15)


def test_early_stopping_stops_and_restores_the_best_weights():
    X = torch.full((64, 1), 1.0)
    module = Quadratic()
    seen = []
    result = fit_module(module, X, generator=torch.Generator().manual_seed(0), max_epochs=500, batch_size=64,
                        lr=0.5, weight_decay=0.0, validation_fraction=0.25, early_stopping=True, patience=3,
                        tol=1e-3, callback=lambda info: seen.append(info.val["loss"]))
    assert result.stopped_early and result.n_epochs < 500
    assert result.n_epochs - result.best_epoch == 3
    best = min(result.history["val_loss"])
    assert result.history["val_loss"][result.best_epoch - 1] == best
    X_val = X[:16]
    restored = evaluate(module, X_val, lambda m, b, g: m(b, g), batch_size=8, seed=0, device=torch.device("cpu"))
    assert restored["loss"] == pytest.approx(best, rel=1e-6, abs=1e-12)
    assert seen == result.history["val_loss"]


def test_divergence_is_reported():
    class Exploding(Quadratic):
        def forward(self, x, generator):
            return {"loss": self.theta * float("nan")}

    with pytest.raises(DataError, match="training diverged at epoch 1"):
        fit_module(Exploding(), torch.ones(8, 1), generator=torch.Generator().manual_seed(0), max_epochs=3,
                   validation_fraction=0.0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(max_epochs=0), "max_epochs must be an integer >= 1"),
        (dict(batch_size=2.5), "batch_size must be an integer >= 1"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
        (dict(lr_schedule="linear"), "lr_schedule must be one of"),
    ],
)
def test_bad_loop_arguments(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        fit_module(Quadratic(), torch.ones(8, 1), generator=torch.Generator().manual_seed(0), **kwargs)


def test_vae_module_builds_without_the_global_generator():
    from deepnmf.nn.vae import build_module

    state = torch.random.get_rng_state()
    a = build_module(6, 2, device=torch.device("cpu"), dtype=torch.float64, hidden=(8,),
                     generator=torch.Generator().manual_seed(1))
    b = build_module(6, 2, device=torch.device("cpu"), dtype=torch.float64, hidden=(8,),
                     generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k
    assert a.encoder.head.weight.dtype == torch.float64
    assert np.isclose(float(a.prior_shape), 1.0) and np.isclose(float(a.prior_rate), 1.0)


def test_full_batch_with_a_given_optimizer_takes_one_step_per_epoch():
    X = torch.arange(10.0).reshape(-1, 1)
    module = Quadratic()
    made = []

    def sgd(params):
        made.append(params)
        return torch.optim.SGD(params, lr=0.25)

    result = fit_module(module, X, generator=torch.Generator().manual_seed(0), max_epochs=3, batch_size=10,
                        validation_fraction=0.0, early_stopping=False, optimizer=sgd)
    assert module.steps == 3 and result.n_epochs == 3 and len(made) == 1
    theta = 0.0
    for _ in range(3):  # gradient descent on (theta - x)^2 averaged: theta <- theta - 0.25 * 2 (theta - 4.5)
        theta -= 0.25 * 2 * (theta - 4.5)
    assert float(module.theta) == pytest.approx(theta)


@pytest.mark.parametrize("stream", [False, True], ids=["rows", "stream"])
def test_cosine_schedule_is_gradient_descent_with_the_cosine_rates(stream):
    """Full-batch SGD on (theta - x)^2 under the cosine schedule, against the same descent by hand."""
    from deepnmf.training import lr_factor

    X = torch.arange(10.0).reshape(-1, 1)
    module, epochs = Quadratic(), 5
    sgd = lambda params: torch.optim.SGD(params, lr=0.25)  # noqa: E731
    data = [X] if stream else X  # a stream: one batch per epoch
    fit_module(module, data, generator=torch.Generator().manual_seed(0), max_epochs=epochs, batch_size=10,
               validation_fraction=0.0, early_stopping=False, optimizer=sgd, lr_schedule="cosine")
    theta = 0.0
    for e in range(1, epochs + 1):
        rate = 0.25 * 0.5 * (1 + np.cos(np.pi * (e - 1) / epochs))
        theta -= rate * 2 * (theta - 4.5)
    assert float(module.theta) == pytest.approx(theta)
    # the factors: 1 first, strictly decreasing, a few percent last; the constant schedule is 1 throughout
    factors = [lr_factor("cosine", e, 10) for e in range(1, 11)]
    assert factors[0] == 1.0 and all(b < a for a, b in zip(factors, factors[1:])) and 0 < factors[-1] < 0.03
    assert {lr_factor("constant", e, 10) for e in range(1, 11)} == {1.0}


def test_chain_calls_every_callback_and_stops_when_any_asks():
    from deepnmf.callbacks import EpochInfo, chain

    seen = []
    first = lambda info: seen.append(("a", info.epoch))  # noqa: E731
    second = lambda info: seen.append(("b", info.epoch)) or info.epoch == 2  # noqa: E731
    assert chain(None, None) is None and chain(None, first) is first
    both = chain(first, None, second)
    assert both(EpochInfo(1, 5)) is False and both(EpochInfo(2, 5)) is True
    assert seen == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_print_every_prints_multiples_the_last_epoch_and_notices():
    import io

    from deepnmf.callbacks import EpochInfo, print_every

    out = io.StringIO()
    report = print_every(2, lambda i: f"epoch {i.epoch} loss {i.loss}", file=out)
    report(EpochInfo(0, 5, message="compiling"))
    for epoch in range(1, 6):
        report(EpochInfo(epoch, 5, {"loss": float(epoch)}))
    assert out.getvalue().splitlines() == ["compiling", "epoch 2 loss 2.0", "epoch 4 loss 4.0", "epoch 5 loss 5.0"]
    quiet_end = io.StringIO()
    report = print_every(2, lambda i: str(i.epoch), at_end=False, file=quiet_end)
    for epoch in range(1, 6):
        report(EpochInfo(epoch, 5))
    assert quiet_end.getvalue().split() == ["2", "4"]
