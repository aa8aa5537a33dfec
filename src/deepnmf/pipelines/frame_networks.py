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
from typing import Any, Callable, Iterable, MutableMapping, Sequence

import torch
from torch import nn

from deepnmf._utils import check_positive_int, make_generator
from deepnmf.callbacks import Callback
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.nn.networks import FrameNetwork
from deepnmf.training import fit_module

__all__ = ["LaidOut", "TrainingResult", "frame_network_loss", "input_layout", "signal_loss", "signal_sources", "train_frame_network",
           "train_on_mixtures"]


@dataclass
class TrainingResult:
    """What :func:`train_frame_network` did (epochs 0-based in ``best_epoch``)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    n_train: int = 0
    n_val: int = 0


@dataclass(frozen=True)
class LaidOut:
    """A training matrix of :func:`train_frame_network`, standardised, with the statistics it was standardised by.

    Networks of the same input layout (:func:`input_layout`) trained on the same pairs can share it
    (``train_on_mixtures(cache=)``): the matrix is read, never written, by the training loop.
    """

    rows: torch.Tensor  # (n_rows, L * (n_in + width)), see _training_rows
    in_mean: torch.Tensor  # (n_in,)
    in_std: torch.Tensor  # (n_in,)
    out_scale: torch.Tensor | None  # (n_outputs,) of a softplus network trained on targets, else None
    layout: tuple  # input_layout(net) of the network it was made for, the sequence length and the width
    n_pairs: int

    def normalise(self, net: FrameNetwork) -> None:
        """Give ``net`` (of this matrix's input layout) its input statistics (and output scale)."""
        net.in_mean.copy_(self.in_mean)
        net.in_std.copy_(self.in_std)
        if self.out_scale is not None:
            net.out_scale.copy_(self.out_scale)


def input_layout(net: FrameNetwork) -> tuple:
    """What a network's input features depend on: bins, context, bands, noise estimate, dtype, recurrence."""
    c = net.config
    return (c["n_bins"], c["context"], c.get("context_bands", 0), bool(c.get("noise_aware")), c.get("noise_window", 0),
            str(net.in_mean.dtype), net.is_recurrent)


def _check_pairs(net: FrameNetwork, inputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], width: int,
                 what: str) -> None:
    """Every input ``(n_i, n_bins)`` has a target ``(n_i, width)``."""
    if len(inputs) != len(targets) or not inputs:
        raise DataError(f"need as many input as {what} spectrograms (at least one), got {len(inputs)} and {len(targets)}")
    for i, (mag, target) in enumerate(zip(inputs, targets)):
        if mag.ndim != 2 or mag.shape[1] != net.config["n_bins"] or target.ndim != 2 \
                or mag.shape[0] != target.shape[0] or target.shape[1] != width:
            raise DataError(
                f"pair {i}: input {tuple(mag.shape)} and {what} {tuple(target.shape)} do not match "
                f"(frames must agree, inputs need {net.config['n_bins']} bins, {what} {width} columns)"
            )


def _training_rows(net: FrameNetwork, inputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                   sequence_length: int, n_targets: int | None, chunk: int = 16384) -> torch.Tensor:
    """The training matrix: standardised log features with context beside what the loss needs.

    Sets the network's input mean and deviation ``(n_in,)`` and, for a softplus network trained on
    ``n_targets``-wide targets, its output scale, from these pairs (:func:`_set_normalisation`). One
    row per frame, ``[x (n_in), target]``; with ``sequence_length`` L > 0 (recurrent networks) one
    row per chunk of L consecutive frames of one pair, ``(L * (n_in + width),)``, frame after frame.
    The matrix is the only copy: each pair's raw features are written into it as they are made, the
    statistics are read from it, and it is standardised in place, ``chunk`` rows at a time (a second
    copy of the features cost as much memory again, and the time to touch its pages: at 1000
    mixtures of 3 s some 3.5 GB and seconds per network).
    """
    L = max(sequence_length, 1)
    d, w = net.in_mean.numel(), targets[0].shape[1]
    frames = [-(-max(mag.shape[0], L) // L) * L if sequence_length > 0 else mag.shape[0] for mag in inputs]
    rows = torch.empty(sum(frames) // L, L * (d + w))
    view = rows.view(-1, d + w)  # frame by frame
    start = 0
    for mag, target, n in zip(inputs, targets, frames):
        x = net.raw_features(mag.float()).float()  # context (and the noise estimate) never crosses pairs
        y = target.float()
        if not (_all_finite(x) and _all_finite(y)) or bool((y < 0).any()):
            raise DataError("training pairs contain NaN/inf or negative targets")
        view[start : start + n, :d] = _chunks(x, sequence_length).reshape(-1, d)  # frames (of the chunks)
        view[start : start + n, d:] = _chunks(y, sequence_length).reshape(-1, w)
        start += n
    _set_normalisation(net, [view[:, :d]], [view[:, d:]], n_targets)
    for first in range(0, view.shape[0], chunk):
        view[first : first + chunk, :d].sub_(net.in_mean).div_(net.in_std)
    return rows


def _lay_out(net: FrameNetwork, inputs: Sequence[torch.Tensor], pairs: Sequence[torch.Tensor], layout: tuple,
             sdr_weights: bool) -> LaidOut:
    """The :class:`LaidOut` training matrix of checked pairs (sources or targets ``(n_i, width)``), standardised by
    their statistics, which ``net`` takes too (:func:`_training_rows`)."""
    _, length, _, signal = layout
    if sdr_weights:  # each frame carries its mixture's number in a last column
        pairs = [torch.cat([src.float(), torch.full((src.shape[0], 1), float(i))], dim=1) for i, src in enumerate(pairs)]
    # inputs and targets side by side, so that the shared loop's row split and shuffling keep them paired
    rows = _training_rows(net, inputs, pairs, length, None if signal else pairs[0].shape[1])
    scale = None if signal or net.config["output"] != "softplus" else net.out_scale.clone()
    return LaidOut(rows, net.in_mean.clone(), net.in_std.clone(), scale, layout, len(pairs))


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every element is finite: one sum first (NaN or inf anywhere makes it non-finite), the
    elementwise check only when the sum is not (an overflowing sum of finite values then passes it).
    ``isfinite(x).all()`` alone writes a boolean copy of the matrix: 15x slower on the training rows."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def _column_sums(blocks: Sequence[torch.Tensor], f: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 chunk: int = 16384) -> torch.Tensor:
    """Column sums ``(d,)`` in float64 of ``f(block)`` over the rows of ``blocks`` (each ``(n_i, d)``), as
    products of row chunks with a row of ones (matrix-multiply speed: ``Tensor.std(0)`` on a tall float32
    matrix runs a slow strided reduction, 8 s for 113 thousand frames of 1542 features on one core)."""
    ones = torch.ones(1, chunk, dtype=blocks[0].dtype)
    total = torch.zeros(blocks[0].shape[1], dtype=torch.float64)
    for block in blocks:
        for start in range(0, block.shape[0], chunk):
            part = block[start : start + chunk]
            part = part if f is None else f(part)
            total += (ones[:, : part.shape[0]] @ part)[0].double()
    return total


def _column_mean_std(blocks: Sequence[torch.Tensor], chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and (unbiased) standard deviations of the rows of ``blocks`` (each ``(n_i, d)``),
    as ``x.mean(0)``, ``x.std(0)`` of their concatenation ``x``: two passes of :func:`_column_sums`
    (the sum, then the squared deviations from the mean)."""
    n = sum(b.shape[0] for b in blocks)
    mean = (_column_sums(blocks, chunk=chunk) / n).to(blocks[0].dtype)
    sq = _column_sums(blocks, lambda b: (b - mean) ** 2, chunk=chunk)
    return mean, (sq / max(n - 1, 1)).sqrt().to(blocks[0].dtype)


def _chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """``(n, d)`` -> ``(ceil(n / L), L * d)`` consecutive chunks (the last one ends at frame n, overlapping
    its predecessor; a pair shorter than L is repeated at its last frame); ``length`` 0 returns ``x``."""
    if length <= 0:
        return x
    n = x.shape[0]
    if n < length:
        x = torch.cat([x, x[-1:].expand(length - n, -1)])
        n = length
    starts = list(range(0, n - length + 1, length))
    if starts[-1] != n - length:
        starts.append(n - length)
    return torch.stack([x[s : s + length] for s in starts]).reshape(len(starts), -1)


def frame_network_loss(net: FrameNetwork, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error on masks, or on square roots of activations in units of their training mean.

    Parameters
    ----------
    net : FrameNetwork
    pred, target : torch.Tensor [shape=(..., n_outputs)]

    Returns
    -------
    loss : torch.Tensor (scalar)
    """
    if net.config["output"] != "softplus":
        return (pred - target).pow(2).mean()
    scale = net.out_scale
    return ((pred / scale).clamp(min=1e-12).sqrt() - (target / scale).sqrt()).pow(2).mean()


def signal_loss(mask: torch.Tensor, sources: torch.Tensor, discriminative: float = 0.0,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""Signal approximation with Huang et al.'s discriminative term.

    .. math::

        L = \|M Y - S\|^2 + \|(1 - M) Y - N\|^2 - \gamma \big(\|M Y - N\|^2 + \|(1 - M) Y - S\|^2\big)

    per element, averaged; ``Y = S + N`` in magnitude is *not* assumed: ``Y`` is given.

    Parameters
    ----------
    mask : torch.Tensor [shape=(..., n_bins)]
        The speech mask ``M`` in ``[0, 1]``.
    sources : torch.Tensor [shape=(..., 3 * n_bins)]
        ``[|Y|, |S|, |N|]`` of the same frames: noisy, clean speech and noise magnitudes.
    discriminative : float
        ``gamma``, the weight of the discriminative term (0: plain signal approximation).
    weights : torch.Tensor [shape=(...)], optional
        A weight per frame: the loss is then the mean over frames of each frame's weighted loss.

    Returns
    -------
    loss : torch.Tensor (scalar)
    """
    Y, S, N = sources.chunk(3, dim=-1)
    speech, noise = mask * Y, (1 - mask) * Y
    frame = (speech - S).pow(2).mean(-1) + (noise - N).pow(2).mean(-1)  # every frame has n_bins elements
    if discriminative:
        frame = frame - discriminative * ((speech - N).pow(2).mean(-1) + (noise - S).pow(2).mean(-1))
    return frame.mean() if weights is None else (weights * frame).mean()


LOSS_SCALES = ("mixture", "noise", "speech", "sdr")
#: frames per training chunk of a recurrent network (train_frame_network's default)
SEQUENCE_LENGTH = 100


def signal_sources(mixtures: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                   scale: str = "mixture") -> list[torch.Tensor]:
    """``[|Y|, |S|, |N|]`` ``(n_frames, 3 n_bins)`` per mixture, in units of one of its RMS magnitudes.

    The units are for the loss only (the network's inputs keep their level); they set how much each
    training mixture weighs in the squared error of :func:`signal_loss`:

    - ``"mixture"``: ``mean(|Y|^2) = 1``, loud and quiet training utterances count alike;
    - ``"noise"``: ``mean(|N|^2) = 1``. A mask's residual error grows with the noise it has to remove,
      so in these units every mixture's error is of the same order whatever its SNR, as every
      utterance counts alike in an average of SDRs in dB (relative to ``"mixture"``, a mixture at
      SNR ``r`` weighs ``1 + 10^(r/10)`` times more: 1.3 at -5 dB, 11 at 10 dB);
    - ``"speech"``: ``mean(|S|^2) = 1``, the error relative to the speech (low SNRs weigh most);
    - ``"sdr"``: the units of ``"noise"`` here; :func:`train_on_mixtures` then also reweights every
      mixture during training by the inverse of its current error (``sdr_weights`` of
      :func:`train_frame_network`).
    """
    from deepnmf._utils import check_choice

    check_choice(scale, "scale", LOSS_SCALES)
    out = []
    for Y, S, N in mixtures:
        ref = {"mixture": Y, "noise": N, "speech": S, "sdr": N}[scale]
        unit = ref.float().pow(2).mean().sqrt().clamp(min=1e-12)
        out.append(torch.cat([Y.float(), S.float(), N.float()], dim=1) / unit)
    return out


MaskFn = Callable[[torch.Tensor], torch.Tensor]


def train_frame_network(
    net: FrameNetwork,
    inputs: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor] | None = None,
    *,
    sources: Sequence[torch.Tensor] | None = None,
    mask_fn: MaskFn | None = None,
    discriminative: float = 0.0,
    sdr_weights: bool = False,
    sequence_length: int = SEQUENCE_LENGTH,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    validation_fraction: float = 0.1,
    patience: int = 5,
    random_state: Any = None,
    callback: Callback | None = None,
    laid_out: LaidOut | None = None,
    keep: Callable[[LaidOut], None] | None = None,
) -> TrainingResult:
    """Fit ``net`` on noisy magnitude spectrograms (in place), against targets or by signal approximation.

    Parameters
    ----------
    net : FrameNetwork
    inputs : sequence of torch.Tensor [shape=(n_frames_i, n_bins)]
        Noisy magnitude spectrograms, one per training mixture (context
        frames and recurrent chunks never cross from one mixture into the next).
    targets : sequence of torch.Tensor [shape=(n_frames_i, n_outputs)], optional
        Activations (softplus network) or masks (sigmoid / joint network):
        the loss is :func:`frame_network_loss`.
    sources : sequence of torch.Tensor [shape=(n_frames_i, 3 * n_bins)], optional
        Instead of ``targets``: ``[|Y|, |S|, |N|]`` per mixture (see
        :func:`signal_sources`); the loss is :func:`signal_loss` of the mask
        ``mask_fn(outputs)``.
    mask_fn : callable, optional
        Network outputs ``(..., n_outputs)`` -> speech mask ``(..., n_bins)``
        (for an activation network: the Wiener gain of its dictionaries);
        default: the outputs are the mask.
    discriminative : float
        Weight of the discriminative term of :func:`signal_loss`.
    sdr_weights : bool
        Signal approximation only: weight the frames of every training mixture ``u`` by
        ``1 / E_u``, ``E_u`` its mean speech error ``mean |M Y - S|^2`` over the previous epoch's
        training steps (1 in the first epoch; normalised to a mean weight of 1). The gradient is then
        that of ``sum_u log E_u``, the mean SDR's up to the sign and units: a mixture counts by its
        error in dB, as every utterance counts alike in an average of SDRs, instead of by its squared
        error, where the mixtures with the most residual noise dominate. The validation loss stays
        unweighted, so that early stopping compares epochs on one scale.
    sequence_length : int
        Frames per training chunk of a recurrent network (ignored by the MLP).
    epochs, batch_size, lr, weight_decay :
        Adam training settings (``batch_size`` counts chunks for a recurrent network).
    lr_schedule : {"constant", "cosine"}
        The learning rate over the epochs (:func:`deepnmf.training.fit_module`).
    validation_fraction : float
        Share of rows held out for early stopping (0 trains on all rows
        for ``epochs`` epochs).
    patience : int
        Epochs without validation improvement before stopping; the best
        weights are kept.
    random_state : int, generator or None
        Seeds the initialisation, the split and the shuffling.
    callback : callable, optional
        Called with an :class:`~deepnmf.callbacks.EpochInfo` after every
        epoch (``train["loss"]``, ``val["loss"]``); returning ``True`` stops.
    laid_out : LaidOut, optional
        The training matrix of these pairs, laid out by an earlier call for a network of the same
        inputs (``inputs`` and ``targets`` / ``sources`` are then not read and may be empty; give
        the pairs' kind, ``targets`` or ``sources``, as an empty list).
    keep : callable, optional
        Called with the :class:`LaidOut` matrix this call made (not with a ``laid_out`` given).

    Returns
    -------
    result : TrainingResult
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    length = check_positive_int(sequence_length, "sequence_length") if net.is_recurrent else 0
    if not 0 <= validation_fraction < 1:
        raise ParameterError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if (targets is None) == (sources is None):
        raise ParameterError("give either targets (what the network predicts) or sources (signal approximation)")
    signal = sources is not None
    width = 3 * net.config["n_bins"] if signal else net.config["n_outputs"]
    if sdr_weights and not signal:
        raise ParameterError("sdr_weights weighs the signal-approximation loss: give sources, not targets")
    layout = (input_layout(net), length, width + int(sdr_weights), signal)
    if laid_out is None:
        _check_pairs(net, inputs, sources if signal else targets, width, "sources" if signal else "target")
        laid_out = _lay_out(net, inputs, sources if signal else targets, layout, sdr_weights)
        if keep is not None:
            keep(laid_out)
    elif laid_out.layout != layout:
        raise ParameterError(f"these training rows were laid out for inputs, sequence length, row width and "
                             f"objective {laid_out.layout}; this fit needs {layout}")
    laid_out.normalise(net)
    rows, n_pairs = laid_out.rows, laid_out.n_pairs
    gen = make_generator(random_state)
    _reset_parameters(net, gen)
    d = net.in_mean.numel()
    mask_fn = mask_fn or (lambda out: out)
    weighting = _MixtureWeights(n_pairs) if sdr_weights else None

    def loss_fn(module: FrameNetwork, batch: torch.Tensor, _gen: torch.Generator) -> dict[str, torch.Tensor]:
        if length:
            batch = batch.reshape(batch.shape[0], length, -1)
        out = module(batch[..., :d])
        if not signal:
            return {"loss": frame_network_loss(module, out, batch[..., d:])}
        mask, src = mask_fn(out), batch[..., d : d + width]  # (the mixture numbers follow with sdr_weights)
        weights = None
        if weighting is not None and module.training:
            weights = weighting.observe(mask, src, batch[..., -1].long())
        return {"loss": signal_loss(mask, src, discriminative, weights)}

    def on_epoch(info):
        if weighting is not None:
            weighting.update()
        return callback(info) if callback is not None else None

    fit = fit_module(
        net, rows, generator=gen, loss_fn=loss_fn, max_epochs=epochs, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, validation_fraction=validation_fraction,
        early_stopping=validation_fraction > 0, patience=patience, tol=1e-6, callback=on_epoch,
        lr_schedule=lr_schedule,
    )
    train_loss = fit.history["train_loss"]
    return TrainingResult(
        train_loss=train_loss, val_loss=fit.history.get("val_loss", train_loss),
        best_epoch=max(fit.best_epoch - 1, 0), n_train=fit.n_train, n_val=fit.n_val,
    )


def train_on_mixtures(
    net: FrameNetwork,
    mixtures: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    target_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    mask_fn: MaskFn | None = None,
    discriminative: float = 0.0,
    loss_scale: str = "mixture",
    cache: MutableMapping | None = None,
    **training: Any,
) -> TrainingResult:
    """Fit ``net`` on training mixtures, against targets or by signal approximation.

    Parameters
    ----------
    net : FrameNetwork
    mixtures : iterable of (torch.Tensor, torch.Tensor, torch.Tensor) [shape=(n_frames_i, n_bins) each]
        ``(|Y|, |S|, |N|)`` per mixture (e.g. ``pipelines.enhancement.training_mixtures``);
        consumed once, and only what training needs is kept.
    target_fn : callable, optional
        ``target_fn(|S|, |N|)`` -> targets ``(n_frames_i, n_outputs)``; without it the
        network is trained by :func:`signal_loss` of ``mask_fn(outputs)``.
    mask_fn, discriminative :
        As :func:`train_frame_network` (signal approximation only).
    loss_scale : {"mixture", "noise", "speech", "sdr"}
        The units of each mixture in the signal-approximation loss (:func:`signal_sources`);
        ``"sdr"`` also reweights the mixtures as training goes (``sdr_weights``).
    cache : dict, optional
        Signal approximation of mixtures that carry a ``key`` (those of
        :meth:`~deepnmf.pipelines.network_training.NetworkTraining.mixtures` with an integer seed):
        the training matrix is taken from ``cache`` when a network of the same inputs was trained
        on the same mixtures and units before (the mixtures are then not even generated), and
        stored in it otherwise. One cache is for networks trained on the same speech and noise
        only; it holds each matrix (GBs for 1000 mixtures) until it is dropped.
    **training :
        The other arguments of :func:`train_frame_network` (epochs, batch size, seed, ...).

    Returns
    -------
    result : TrainingResult
    """
    if target_fn is not None and loss_scale != "mixture":
        raise ParameterError(f"loss_scale={loss_scale!r} weighs the signal-approximation loss; "
                             "a network trained on targets has none")
    key = getattr(mixtures, "key", None)
    if cache is not None and key is not None and target_fn is None:
        key = (key, loss_scale, input_layout(net), training.get("sequence_length", SEQUENCE_LENGTH) if net.is_recurrent else 0)
        if key in cache:
            return train_frame_network(net, [], sources=[], laid_out=cache[key], mask_fn=mask_fn,
                                       discriminative=discriminative, sdr_weights=loss_scale == "sdr", **training)
        training["keep"] = lambda laid: cache.__setitem__(key, laid)
    inputs, extra = [], []
    for Y, S, N in mixtures:
        inputs.append(Y)
        extra.append(target_fn(S, N) if target_fn is not None else signal_sources([(Y, S, N)], loss_scale)[0])
    if target_fn is not None:
        return train_frame_network(net, inputs, extra, **training)
    return train_frame_network(net, inputs, sources=extra, mask_fn=mask_fn, discriminative=discriminative,
                               sdr_weights=loss_scale == "sdr", **training)


class _MixtureWeights:
    """Per-mixture weights ``1 / E_u`` of :func:`train_frame_network`'s ``sdr_weights``, from the speech errors
    seen in the training steps of the previous epoch (normalised to mean 1 over the mixtures)."""

    def __init__(self, n_mixtures: int) -> None:
        self.weights = torch.ones(n_mixtures)
        self.total = torch.zeros(n_mixtures, dtype=torch.float64)
        self.count = torch.zeros(n_mixtures, dtype=torch.float64)

    def observe(self, mask: torch.Tensor, sources: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Record the mean speech error of each frame ``(...)`` under its mixture; the frames' weights ``(...)``."""
        Y, S, _ = sources.chunk(3, dim=-1)
        error = (mask.detach() * Y - S).pow(2).mean(-1).reshape(-1).double()
        flat = index.reshape(-1)
        self.total.index_add_(0, flat, error)
        self.count.index_add_(0, flat, torch.ones_like(error))
        return self.weights.to(mask.dtype)[index]

    def update(self) -> None:
        """New weights from the errors recorded since the last update (a mixture not seen takes the mean of
        the others' weights)."""
        seen = self.count > 0
        if bool(seen.any()):
            E = self.total[seen] / self.count[seen]
            E = E.clamp(min=float(E.median()) * 1e-3 + 1e-30)  # a mixture the network gets right cannot take over
            w = torch.full_like(self.total, float((1.0 / E).mean()))
            w[seen] = 1.0 / E
            self.weights = (w / w.mean()).float()
        self.total.zero_()
        self.count.zero_()


def _set_normalisation(net: FrameNetwork, feats: Sequence[torch.Tensor], outs: Sequence[torch.Tensor],
                       n_targets: int | None) -> None:
    """Input mean and deviation ``(n_in,)`` and (softplus) output scale ``(n_outputs,)`` from the training frames.

    ``feats`` and ``outs`` hold each pair's raw features ``(n_i, n_in)`` and targets ``(n_i, width)``;
    ``n_targets`` is the target width (``None``: no targets, signal approximation, where the scale is
    left at 1 and the mask function sets the units).
    """
    mean, std = _column_mean_std(feats)
    net.in_mean.copy_(mean)
    net.in_std.copy_(std.clamp(min=1e-5))
    if net.config["output"] == "softplus" and n_targets is not None:
        n = sum(y.shape[0] for y in outs)
        net.out_scale.copy_((_column_sums(outs) / n).to(net.out_scale.dtype).clamp(min=1e-8))


def _reset_parameters(net: FrameNetwork, gen: torch.Generator) -> None:
    """He-uniform dense weights, zero biases, recurrent weights uniform in ``±1/sqrt(width)`` (torch's
    rule), all drawn from ``gen`` (never the global generator)."""
    with torch.no_grad():
        for layer in [*net.mlp, getattr(net, "head", None)]:
            if isinstance(layer, nn.Linear):
                bound = math.sqrt(6.0 / layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.zero_()
        for rnn in net.rnn:
            bound = 1.0 / math.sqrt(rnn.hidden_size)
            for weight in rnn.parameters():
                weight.uniform_(-bound, bound, generator=gen)
