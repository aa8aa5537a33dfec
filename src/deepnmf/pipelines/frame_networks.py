r"""Training of the frame networks (:class:`deepnmf.nn.networks.FrameNetwork`) on spectrogram pairs.

Orientation: spectrograms are ``(n_frames, n_bins)``; targets are
``(n_frames, n_outputs)`` (activations for a softplus network, a mask for a
sigmoid network).

The network is fitted by the shared loop :func:`deepnmf.training.fit_module`
(Adam, minibatches, held-out frames for early stopping) on

.. math::

    L = \frac{1}{TK} \sum_{t,k} \big(\sqrt{\hat h_{tk} / m_k} - \sqrt{h_{tk} / m_k}\big)^2

for activations (``m_k`` the training mean of component ``k``, so quiet
frames and weak components count as much as loud ones) and the plain squared
error for masks. Progress is reported through the one callback protocol,
:class:`deepnmf.callbacks.EpochInfo`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from deepnmf._utils import check_positive_int, make_generator
from deepnmf.callbacks import Callback
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.nn.networks import FrameNetwork, log_features, stack_context
from deepnmf.training import fit_module

__all__ = ["TrainingResult", "frame_network_loss", "train_frame_network"]


@dataclass
class TrainingResult:
    """What :func:`train_frame_network` did (epochs 0-based in ``best_epoch``)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    n_train: int = 0
    n_val: int = 0


def _stack_pairs(net: FrameNetwork, inputs: Sequence[torch.Tensor],
                 targets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log features with context ``(n, n_bins * (2 c + 1))`` and targets ``(n, n_outputs)`` of all pairs."""
    if len(inputs) != len(targets) or not inputs:
        raise DataError(f"need as many input as target spectrograms (at least one), got {len(inputs)} and {len(targets)}")
    feats, outs = [], []
    for i, (mag, target) in enumerate(zip(inputs, targets)):
        if mag.shape[0] != target.shape[0] or target.ndim != 2 or target.shape[1] != net.config["n_outputs"]:
            raise DataError(
                f"pair {i}: input {tuple(mag.shape)} and target {tuple(target.shape)} do not match "
                f"(frames must agree, targets need {net.config['n_outputs']} columns)"
            )
        feats.append(stack_context(log_features(mag.float()), net.context))  # context never crosses pairs
        outs.append(target.float())
    X, Y = torch.cat(feats), torch.cat(outs)
    if not (torch.isfinite(X).all() and torch.isfinite(Y).all()) or bool((Y < 0).any()):
        raise DataError("training pairs contain NaN/inf or negative targets")
    return X, Y


def frame_network_loss(net: FrameNetwork, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error on masks, or on square roots of activations in units of their training mean.

    Parameters
    ----------
    net : FrameNetwork
    pred, target : torch.Tensor [shape=(batch, n_outputs)]

    Returns
    -------
    loss : torch.Tensor (scalar)
    """
    if net.config["output"] == "sigmoid":
        return (pred - target).pow(2).mean()
    scale = net.out_scale
    return ((pred / scale).clamp(min=1e-12).sqrt() - (target / scale).sqrt()).pow(2).mean()


def train_frame_network(
    net: FrameNetwork,
    inputs: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    *,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    validation_fraction: float = 0.1,
    patience: int = 5,
    random_state: Any = None,
    callback: Callback | None = None,
) -> TrainingResult:
    """Fit ``net`` on pairs of noisy magnitude spectrograms and targets (in place).

    Parameters
    ----------
    net : FrameNetwork
    inputs : sequence of torch.Tensor [shape=(n_frames_i, n_bins)]
        Noisy magnitude spectrograms, one per training mixture (context
        frames never cross from one mixture into the next).
    targets : sequence of torch.Tensor [shape=(n_frames_i, n_outputs)]
        Activations (softplus network) or masks (sigmoid network).
    epochs, batch_size, lr, weight_decay :
        Adam training settings.
    validation_fraction : float
        Share of frames held out for early stopping (0 trains on all frames
        for ``epochs`` epochs).
    patience : int
        Epochs without validation improvement before stopping; the best
        weights are kept.
    random_state : int, generator or None
        Seeds the initialisation, the split and the shuffling.
    callback : callable, optional
        Called with an :class:`~deepnmf.callbacks.EpochInfo` after every
        epoch (``train["loss"]``, ``val["loss"]``); returning ``True`` stops.

    Returns
    -------
    result : TrainingResult
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not 0 <= validation_fraction < 1:
        raise ParameterError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    gen = make_generator(random_state)
    X, Y = _stack_pairs(net, inputs, targets)
    _set_normalisation(net, X, Y)
    _reset_parameters(net, gen)
    Xn = (X - net.in_mean) / net.in_std
    d = Xn.shape[1]

    def loss_fn(module: FrameNetwork, batch: torch.Tensor, _gen: torch.Generator) -> dict[str, torch.Tensor]:
        return {"loss": frame_network_loss(module, module(batch[:, :d]), batch[:, d:])}

    # inputs and targets side by side, so that the shared loop's row split and shuffling keep them paired
    fit = fit_module(
        net, torch.cat([Xn, Y], dim=1), generator=gen, loss_fn=loss_fn, max_epochs=epochs, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, validation_fraction=validation_fraction,
        early_stopping=validation_fraction > 0, patience=patience, tol=1e-6, callback=callback,
    )
    train_loss = fit.history["train_loss"]
    return TrainingResult(
        train_loss=train_loss, val_loss=fit.history.get("val_loss", train_loss),
        best_epoch=max(fit.best_epoch - 1, 0), n_train=fit.n_train, n_val=fit.n_val,
    )


def _set_normalisation(net: FrameNetwork, X: torch.Tensor, Y: torch.Tensor) -> None:
    """Input mean and deviation ``(n_in,)`` and (softplus) output scale ``(n_outputs,)`` from the training pairs."""
    net.in_mean.copy_(X.mean(0))
    net.in_std.copy_(X.std(0).clamp(min=1e-5))
    if net.config["output"] == "softplus":
        net.out_scale.copy_(Y.mean(0).clamp(min=1e-8))


def _reset_parameters(net: FrameNetwork, gen: torch.Generator) -> None:
    """He-uniform weights and zero biases drawn from ``gen`` (never the global generator)."""
    with torch.no_grad():
        for layer in net.mlp:
            if isinstance(layer, nn.Linear):
                bound = math.sqrt(6.0 / layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.zero_()
