r"""Frame networks for enhancement: noisy frame (with context) -> activations or a mask.

Orientation: spectrograms are ``(n_frames, n_bins)``; network outputs are
``(n_frames, n_outputs)``.

- **Activation network** (Kang et al. 2015, used by the VAE-NMF paper): an MLP
  maps the log-magnitude of a noisy frame and its ``context`` neighbours on
  each side to the concatenated speech and noise activations
  ``[h_s, h_n]``; a softplus keeps them nonnegative. It is trained on
  pairs (noisy frame -> activations of the clean speech and of the noise
  against their own frozen dictionaries).
- **Mask network** (a DNN mask baseline in the spirit of Huang et al. 2014):
  the same MLP with a sigmoid output predicting the ratio mask
  ``|S|^p / (|S|^p + |N|^p)`` per bin directly.

The loss compares square roots (activations) or plain values (masks):

.. math::

    L = \frac{1}{TK} \sum_{t,k} \big(\sqrt{\hat h_{tk}} - \sqrt{h_{tk}}\big)^2

so that quiet frames count as well as loud ones. Inputs are standardised with
the training mean and deviation, activations divided by their training mean
per component; both are buffers of the module and saved with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from deepnmf._utils import check_choice, check_positive_int, make_generator
from deepnmf.exceptions import DataError, ModelFileError, ParameterError
from deepnmf.training import EpochInfo, fit_module

__all__ = ["FrameNetwork", "TrainingResult", "stack_context", "log_features", "train_frame_network"]

OUTPUTS = ("softplus", "sigmoid")
LOG_FLOOR = 1e-4


def log_features(magnitude: torch.Tensor, *, floor: float = LOG_FLOOR) -> torch.Tensor:
    """Log-compressed magnitudes ``log(|Y| + floor)``.

    Parameters
    ----------
    magnitude : torch.Tensor [shape=(n_frames, n_bins)]

    Returns
    -------
    features : torch.Tensor [shape=(n_frames, n_bins)]
    """
    return torch.log(magnitude.clamp(min=0) + floor)


def stack_context(features: torch.Tensor, context: int) -> torch.Tensor:
    """Concatenate each frame with its ``context`` neighbours on each side.

    Edge frames repeat the first/last frame.

    Parameters
    ----------
    features : torch.Tensor [shape=(n_frames, n_bins)]
    context : int

    Returns
    -------
    stacked : torch.Tensor [shape=(n_frames, n_bins * (2 * context + 1))]
        Blocks ordered from ``t - context`` to ``t + context``.
    """
    if context == 0:
        return features
    n_frames = features.shape[0]
    idx = torch.arange(-context, context + 1, device=features.device)
    rows = (torch.arange(n_frames, device=features.device)[:, None] + idx[None, :]).clamp(0, n_frames - 1)
    return features[rows].reshape(n_frames, -1)  # (T, 2c+1, F) -> (T, (2c+1) F)


class FrameNetwork(nn.Module):
    """MLP from a noisy frame with context to nonnegative activations or a mask.

    Parameters
    ----------
    n_bins : int
        Frequency bins of the input spectrogram.
    n_outputs : int
        Output size (``n_speech + n_noise`` activations, or ``n_bins`` for a mask).
    context : int
        Neighbouring frames on each side fed with the current frame.
    hidden : sequence of int
        Hidden layer widths (ReLU).
    output : {"softplus", "sigmoid"}
        Nonnegative activations or a mask in ``(0, 1)``.
    """

    def __init__(
        self,
        n_bins: int,
        n_outputs: int,
        *,
        context: int = 2,
        hidden: Sequence[int] = (512, 512),
        output: str = "softplus",
    ) -> None:
        super().__init__()
        check_positive_int(n_bins, "n_bins")
        check_positive_int(n_outputs, "n_outputs")
        check_positive_int(context, "context", minimum=0)
        check_choice(output, "output", OUTPUTS)
        hidden = [check_positive_int(h, "hidden width") for h in hidden]
        self.config = {"n_bins": int(n_bins), "n_outputs": int(n_outputs), "context": int(context),
                       "hidden": list(hidden), "output": output}
        n_in = n_bins * (2 * context + 1)
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        layers.append(nn.Linear(n_in, n_outputs))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("in_mean", torch.zeros(n_bins * (2 * context + 1)))
        self.register_buffer("in_std", torch.ones(n_bins * (2 * context + 1)))
        self.register_buffer("out_scale", torch.ones(n_outputs))

    @property
    def context(self) -> int:
        return self.config["context"]

    def features(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Standardised log features with context, ``(n_frames, n_bins * (2 context + 1))``."""
        if magnitude.ndim != 2 or magnitude.shape[1] != self.config["n_bins"]:
            raise DataError(
                f"the network expects spectrograms of shape (n_frames, {self.config['n_bins']}), "
                f"got {tuple(magnitude.shape)}; use the STFT settings it was trained with"
            )
        x = stack_context(log_features(magnitude.to(self.in_mean.dtype)), self.context)
        return (x - self.in_mean) / self.in_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for standardised features ``x`` ``(batch, n_in)`` -> ``(batch, n_outputs)``."""
        z = self.mlp(x)
        if self.config["output"] == "sigmoid":
            return torch.sigmoid(z)
        return nn.functional.softplus(z) * self.out_scale

    @torch.no_grad()
    def predict(self, magnitude: torch.Tensor, *, chunk: int = 8192) -> torch.Tensor:
        """Outputs for a magnitude spectrogram.

        Parameters
        ----------
        magnitude : torch.Tensor [shape=(n_frames, n_bins)]

        Returns
        -------
        out : torch.Tensor [shape=(n_frames, n_outputs)]
        """
        self.eval()
        x = self.features(magnitude.to(self.in_mean.device))
        return torch.cat([self(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])

    # ------------------------------------------------------------ files
    def save(self, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write ``weights.safetensors`` + ``config.json`` (never pickle)."""
        from deepnmf.io.model_files import write_model

        tensors = {k: v for k, v in self.state_dict().items()}
        return write_model(path, model="FrameNetwork", params=dict(self.config), tensors=tensors, state=extra or {})

    @classmethod
    def load(cls, path: str | Path) -> tuple["FrameNetwork", dict[str, Any]]:
        """Read a folder written by :meth:`save`; returns ``(network, extra_state)``."""
        from deepnmf.io.model_files import read_model

        config, tensors = read_model(path, model="FrameNetwork")
        try:
            net = cls(**config["params"])
            net.load_state_dict(tensors)
        except (TypeError, RuntimeError, ParameterError) as err:
            raise ModelFileError(f"{path}: the network weights do not match its configuration: {err}") from err
        return net, dict(config.get("state", {}))


@dataclass
class TrainingResult:
    """What :func:`train_frame_network` did."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    n_train: int = 0
    n_val: int = 0


def _stack_pairs(net: FrameNetwork, inputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]):
    if len(inputs) != len(targets) or not inputs:
        raise DataError(f"need as many input as target spectrograms (at least one), got {len(inputs)} and {len(targets)}")
    feats, outs = [], []
    for i, (mag, target) in enumerate(zip(inputs, targets)):
        if mag.shape[0] != target.shape[0] or target.ndim != 2 or target.shape[1] != net.config["n_outputs"]:
            raise DataError(
                f"pair {i}: input {tuple(mag.shape)} and target {tuple(target.shape)} do not match "
                f"(frames must agree, targets need {net.config['n_outputs']} columns)"
            )
        feats.append(stack_context(log_features(mag.float()), net.context))
        outs.append(target.float())
    X, Y = torch.cat(feats), torch.cat(outs)
    if not (torch.isfinite(X).all() and torch.isfinite(Y).all()) or bool((Y < 0).any()):
        raise DataError("training pairs contain NaN/inf or negative targets")
    return X, Y


def _loss(net: FrameNetwork, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error on masks, or on square roots of activations in units of their training mean."""
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
    callback: Callable[[int, float, float], Any] | None = None,
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
        ``callback(epoch, train_loss, val_loss)`` after every epoch.

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
        return {"loss": _loss(module, module(batch[:, :d]), batch[:, d:])}

    def progress(info: EpochInfo) -> None:
        if callback is not None:
            callback(info.epoch - 1, info.train["loss"], info.val.get("loss", info.train["loss"]))

    # inputs and targets side by side, so that the shared loop's row split and shuffling keep them paired
    fit = fit_module(
        net, torch.cat([Xn, Y], dim=1), generator=gen, loss_fn=loss_fn, max_epochs=epochs, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, validation_fraction=validation_fraction,
        early_stopping=validation_fraction > 0, patience=patience, tol=1e-6, callback=progress,
    )
    train_loss = fit.history["train_loss"]
    return TrainingResult(
        train_loss=train_loss, val_loss=fit.history.get("val_loss", train_loss),
        best_epoch=max(fit.best_epoch - 1, 0), n_train=fit.n_train, n_val=fit.n_val,
    )


def _set_normalisation(net: FrameNetwork, X: torch.Tensor, Y: torch.Tensor) -> None:
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
