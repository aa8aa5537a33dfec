r"""Frame networks for enhancement: noisy frame (with context) -> activations or a mask.

Orientation: spectrograms are ``(n_frames, n_bins)``; network outputs are
``(n_frames, n_outputs)``.

- **Activation network** (Kang et al. 2015, used by the VAE-NMF paper): an MLP
  maps the log-magnitude of a noisy frame and its ``context`` neighbours on
  each side to the concatenated speech and noise activations
  ``[h_s, h_n]``; a softplus keeps them nonnegative. It is trained on
  pairs (noisy frame -> activations of the clean speech and of the noise
  against their own frozen dictionaries).
- **Mask network** (the DNN mask baseline of Huang et al. 2014): the same
  network with a sigmoid output predicting the ratio mask
  ``|S|^p / (|S|^p + |N|^p)`` per bin directly, or with Huang et al.'s
  *joint mask layer* (``output="joint"``): two softplus outputs per bin, a
  speech and a noise magnitude estimate ``a`` and ``b``, turned into the
  mask ``a / (a + b)`` inside the network.
- **Recurrent variant** (``recurrent="gru"`` or ``"lstm"``, Huang et al.'s
  deep recurrent network): the first hidden layer is dense, the following
  ``hidden`` widths are recurrent layers running forward in time over the
  frames of an utterance (``"bgru"``, ``"blstm"``: forward and backward,
  each direction with the layer's width, so the whole utterance is
  context); training feeds chunks of consecutive frames.

The loss compares square roots (activations) or plain values (masks):

.. math::

    L = \frac{1}{TK} \sum_{t,k} \big(\sqrt{\hat h_{tk}} - \sqrt{h_{tk}}\big)^2

so that quiet frames count as well as loud ones (the loss and the training
loop are in :mod:`deepnmf.pipelines.frame_networks`). Inputs are standardised
with the training mean and deviation, activations divided by their training
mean per component; both are buffers of the module and saved with it.

This module holds torch modules only: it imports neither the training loop
nor the model files at module level.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from deepnmf._utils import check_choice, check_positive_int
from deepnmf.exceptions import DataError, ModelFileError, ParameterError

__all__ = ["FrameNetwork", "band_matrix", "stack_context", "log_features", "noise_estimate"]

OUTPUTS = ("softplus", "sigmoid", "joint")
RECURRENT = ("gru", "lstm", "bgru", "blstm")
LOG_FLOOR = 1e-4
NOISE_QUANTILE = 0.2


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


def noise_estimate(features: torch.Tensor, quantile: float = NOISE_QUANTILE, window: int = 0,
                   block: int = 1024) -> torch.Tensor:
    """A per-utterance noise estimate for noise-aware training (Seltzer et al. 2013).

    The mean log features of the quietest ``quantile`` of the frames (by
    mean log level; at least one frame), repeated for every frame: speech
    pauses, where the noise shows alone. With ``window`` w > 0 the estimate
    follows the noise in time: frame t gets the mean of the quietest
    ``quantile`` of the frames ``t - w .. t + w`` (cut at the utterance's
    ends), for noises whose level or colour changes within an utterance.

    Parameters
    ----------
    features : torch.Tensor [shape=(n_frames, n_bins)]
        Log features of one utterance (:func:`log_features`).
    quantile : float in (0, 1]
    window : int
        Frames on each side of the running estimate; 0: one estimate for the utterance.
    block : int
        Frames whose running estimates are computed together (memory ``block * (block + 2 window)``,
        not quadratic in the utterance's length).

    Returns
    -------
    estimate : torch.Tensor [shape=(n_frames, n_bins)]
    """
    T = features.shape[0]
    if window <= 0 or window >= T - 1:  # every frame's window holds the whole utterance
        n = max(1, int(round(quantile * T)))
        quiet = torch.topk(features.mean(1), n, largest=False).indices
        return features[quiet].mean(0, keepdim=True).expand(T, -1)
    width = 2 * window + 1
    level = torch.nn.functional.pad(features.mean(1), (window, window), value=float("inf"))
    windows = level.unfold(0, width, 1)  # (T, width): frame t's window, inf outside the utterance
    counts = torch.isfinite(windows).sum(1)
    k = (quantile * counts).round().clamp(min=1)
    order = windows.argsort(dim=1, stable=True)
    chosen = torch.zeros_like(windows).scatter_(1, order, (torch.arange(width) < k[:, None]).to(windows.dtype))
    chosen = (chosen / k[:, None]).to(features.dtype)  # (T, width): each frame's weights over its window
    padded = torch.nn.functional.pad(features, (0, 0, window, window))  # the zero rows get zero weight
    out = torch.empty_like(features)
    for start in range(0, T, block):  # frames start..stop see padded rows start..stop + 2 window: a banded product
        stop = min(start + block, T)
        rows = torch.arange(stop - start)[:, None]
        weights = torch.zeros(stop - start, stop - start + 2 * window, dtype=features.dtype)
        weights[rows, rows + torch.arange(width)] = chosen[start:stop]
        out[start:stop] = weights @ padded[start : stop + 2 * window]
    return out


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


def band_matrix(n_bins: int, n_bands: int) -> torch.Tensor:
    """Averages of the bins in ``n_bands`` contiguous bands spaced as the mel scale is at 16 kHz.

    The bin axis is warped by ``log(1 + b / c)`` with the corner ``c = 0.0875 (n_bins - 1)`` bins (700 Hz
    of 8000 at 16 kHz, the mel scale's corner); the bands are equal steps of the warped axis, widened
    to at least one bin each from the low end up.

    Parameters
    ----------
    n_bins : int
        Frequency bins.
    n_bands : int
        Bands, at most ``n_bins``.

    Returns
    -------
    M : torch.Tensor [shape=(n_bins, n_bands)]
        ``X @ M`` is the band means of the rows of ``X`` ``(..., n_bins)``; each column has the weight
        ``1 / width`` on its bins and 0 elsewhere, and every bin is in exactly one band.
    """
    check_positive_int(n_bins, "n_bins")
    check_positive_int(n_bands, "n_bands")
    if n_bands > n_bins:
        raise ParameterError(f"cannot make {n_bands} bands of {n_bins} bins")
    corner = max(0.0875 * (n_bins - 1), 1e-6)
    top = math.log1p((n_bins - 1) / corner)
    edges = [0]  # band k covers bins edges[k] .. edges[k + 1] - 1
    for k in range(1, n_bands):
        ideal = math.ceil(corner * math.expm1(top * k / n_bands))
        edges.append(min(max(ideal, edges[-1] + 1), n_bins - (n_bands - k)))
    edges.append(n_bins)
    M = torch.zeros(n_bins, n_bands)
    for k in range(n_bands):
        M[edges[k] : edges[k + 1], k] = 1.0 / (edges[k + 1] - edges[k])
    return M


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
    output : {"softplus", "sigmoid", "joint"}
        Nonnegative activations, a mask in ``(0, 1)``, or a mask from the
        joint mask layer (``n_outputs`` speech and ``n_outputs`` noise
        magnitudes ``a``, ``b`` -> ``a / (a + b)``).
    recurrent : {None, "gru", "lstm", "bgru", "blstm"}
        Make every hidden layer after the first a recurrent layer (forward
        in time; the ``b`` kinds are bidirectional and output twice the
        layer's width); ``None`` is the MLP. Needs at least two hidden widths.
    noise_aware : bool
        Append the utterance's noise estimate (:func:`noise_estimate`) to
        every frame's input (noise-aware training, Seltzer et al. 2013).
    noise_window : int
        With ``noise_aware``: frames on each side of a running noise
        estimate (:func:`noise_estimate`); 0 (the default) estimates the
        noise once per utterance.
    dropout : float
        Dropout rate after every hidden layer while training (as in Xu et
        al. 2015's regression networks for enhancement); 0 disables it.
    context_bands : int
        Feed the ``context`` neighbours (and the noise estimate) as the means
        of their log features in this many mel-like bands (:func:`band_matrix`)
        instead of every bin; the current frame keeps every bin. The first
        layer, most of the network's arithmetic, then takes
        ``n_bins + (2 context + noise_aware) context_bands`` inputs instead of
        ``(2 context + 1 + noise_aware) n_bins``. 0 (the default): every bin.

    Attributes
    ----------
    config : dict
        The constructor arguments (what :meth:`save` records as parameters).
    metadata : dict
        JSON-able notes saved with the network and restored by :meth:`load`
        (an enhancer records the checksums of the dictionaries the network
        was trained for under ``"fingerprints"``).
    """

    def __init__(
        self,
        n_bins: int,
        n_outputs: int,
        *,
        context: int = 2,
        hidden: Sequence[int] = (512, 512),
        output: str = "softplus",
        recurrent: str | None = None,
        noise_aware: bool = False,
        noise_window: int = 0,
        dropout: float = 0.0,
        context_bands: int = 0,
    ) -> None:
        super().__init__()
        check_positive_int(n_bins, "n_bins")
        check_positive_int(n_outputs, "n_outputs")
        check_positive_int(context, "context", minimum=0)
        check_choice(output, "output", OUTPUTS)
        hidden = [check_positive_int(h, "hidden width") for h in hidden]
        if not 0.0 <= float(dropout) < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        if recurrent is not None:
            check_choice(recurrent, "recurrent", RECURRENT)
            if len(hidden) < 2:
                raise ParameterError(f"a recurrent network needs at least two hidden widths (dense, recurrent...), got {hidden}")
        self.config = {"n_bins": int(n_bins), "n_outputs": int(n_outputs), "context": int(context),
                       "hidden": list(hidden), "output": output}
        if recurrent is not None:
            self.config["recurrent"] = recurrent
        check_positive_int(noise_window, "noise_window", minimum=0)
        if noise_window and not noise_aware:
            raise ParameterError("noise_window sets the running noise estimate of a noise-aware network: "
                                 "pass noise_aware=True as well")
        if noise_aware:
            self.config["noise_aware"] = True
        if noise_window:
            self.config["noise_window"] = int(noise_window)
        if dropout:
            self.config["dropout"] = float(dropout)
        check_positive_int(context_bands, "context_bands", minimum=0)
        if context_bands and not (context or noise_aware):
            raise ParameterError("context_bands shrinks the context frames and the noise estimate: give context > 0 "
                                 "or noise_aware=True, or context_bands=0")
        if context_bands > n_bins:
            raise ParameterError(f"context_bands ({context_bands}) must be at most n_bins ({n_bins})")
        if context_bands:
            self.config["context_bands"] = int(context_bands)
        self.metadata: dict[str, Any] = {}
        width = context_bands or n_bins  # the width of each context frame and of the noise estimate
        n_in = n_bins + width * (2 * context + int(bool(noise_aware)))
        n_features = n_in
        n_dense = 1 if recurrent else len(hidden)
        layers: list[nn.Module] = []
        for width in hidden[:n_dense]:
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        self.rnn = nn.ModuleList()
        for width in hidden[n_dense:]:
            both = recurrent.startswith("b")
            kind = nn.GRU if recurrent.endswith("gru") else nn.LSTM
            self.rnn.append(kind(n_in, width, batch_first=True, bidirectional=both))
            n_in = width * (2 if both else 1)
        n_last = 2 * n_outputs if output == "joint" else n_outputs
        if recurrent:
            self.head = nn.Linear(n_in, n_last)
        else:
            layers.append(nn.Linear(n_in, n_last))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("in_mean", torch.zeros(n_features))
        self.register_buffer("in_std", torch.ones(n_features))
        self.register_buffer("out_scale", torch.ones(n_outputs))
        # not a buffer: a function of the config, so files stay as they were
        self._bands = band_matrix(n_bins, context_bands) if context_bands else None

    @property
    def context(self) -> int:
        return self.config["context"]

    @property
    def is_recurrent(self) -> bool:
        """Whether the network runs over sequences ``(batch, n_frames, n_in)``."""
        return "recurrent" in self.config

    def raw_features(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Log features of one utterance with context (and its noise estimate when noise-aware),
        ``(n_frames, n_in)``, before standardisation."""
        if magnitude.ndim != 2 or magnitude.shape[1] != self.config["n_bins"] or magnitude.shape[0] == 0:
            raise DataError(
                f"the network expects spectrograms of shape (n_frames, {self.config['n_bins']}), "
                f"got {tuple(magnitude.shape)}; use the STFT settings it was trained with"
            )
        logs = log_features(magnitude.to(self.in_mean.dtype))
        noise = noise_estimate(logs, window=self.config.get("noise_window", 0)) if self.config.get("noise_aware") else None
        if self._bands is None:
            x = stack_context(logs, self.context)
        else:  # the neighbours in bands, the current frame in full
            c, bands = self.context, self._bands.to(logs)
            B = bands.shape[1]
            around = stack_context(logs @ bands, c)
            x = torch.cat([around[:, : c * B], logs, around[:, (c + 1) * B :]], dim=1)
            noise = None if noise is None else noise @ bands
        return x if noise is None else torch.cat([x, noise], dim=1)

    def features(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Standardised :meth:`raw_features`, ``(n_frames, n_in)``."""
        return (self.raw_features(magnitude) - self.in_mean) / self.in_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for standardised features.

        ``x`` is ``(batch, n_in)`` -> ``(batch, n_outputs)`` for the MLP, and
        ``(batch, n_frames, n_in)`` -> ``(batch, n_frames, n_outputs)`` (frames
        in time order) for a recurrent network.
        """
        rate = self.config.get("dropout", 0.0)
        z = x
        for layer in self.mlp:  # dropout after every hidden ReLU (functional: weight names do not depend on it)
            z = layer(z)
            if rate and isinstance(layer, nn.ReLU):
                z = nn.functional.dropout(z, rate, self.training)
        if self.is_recurrent:
            for layer in self.rnn:
                z, _ = layer(z)
                if rate:
                    z = nn.functional.dropout(z, rate, self.training)
            z = self.head(z)
        output = self.config["output"]
        if output == "sigmoid":
            return torch.sigmoid(z)
        if output == "joint":  # Huang et al.'s joint mask layer: speech / (speech + noise) magnitude estimates
            speech, noise = nn.functional.softplus(z).chunk(2, dim=-1)
            return speech / (speech + noise).clamp(min=1e-12)
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
        if self.is_recurrent:  # the whole utterance is one sequence
            return self(x[None])[0]
        return torch.cat([self(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])

    # ------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the network folder (``weights.safetensors`` + ``config.json``, never a pickle).

        The constructor arguments are the parameters, :attr:`metadata` the state.
        """
        from deepnmf.io.model_files import write_model

        return write_model(path, model="FrameNetwork", params=dict(self.config), tensors=dict(self.state_dict()),
                           state=dict(self.metadata))

    @classmethod
    def load(cls, path: str | Path) -> "FrameNetwork":
        """Read a folder written by :meth:`save` and return the network (in eval mode).

        Raises
        ------
        ModelFileError
            Any check of :func:`deepnmf.io.model_files.read_model`, parameters
            that do not build a network, or weights whose names or shapes do
            not match the layers the parameters describe.
        """
        from deepnmf.io.model_files import check_tensors, read_model

        config, tensors = read_model(path, model="FrameNetwork")
        try:
            net = cls(**config["params"])
        except (TypeError, ParameterError) as err:
            raise ModelFileError(f"{path}: the saved parameters do not describe a frame network: {err}") from err
        dtypes = {t.dtype for t in tensors.values()}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise ModelFileError(f"{path}: the network weights must share one floating-point dtype, got {sorted(map(str, dtypes))}")
        dtype = dtypes.pop()
        check_tensors(tensors, {k: (tuple(v.shape), dtype) for k, v in net.state_dict().items()}, where=path)
        net.to(dtype).load_state_dict(tensors)
        net.metadata = dict(config["state"])
        return net.eval()
