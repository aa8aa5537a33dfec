"""How an enhancement network is trained on generated mixtures: one settings object for every caller.

:meth:`deepnmf.pipelines.enhancement.Enhancer.fit_network` (activation networks) and
:meth:`deepnmf.pipelines.enhancement_baselines.MaskEnhancer.fit` (the mask baseline) train a
:class:`~deepnmf.nn.networks.FrameNetwork` the same way: generate noisy mixtures of the training
speech (:func:`~deepnmf.pipelines.enhancement.training_mixtures`), build the network, fit it
(:func:`~deepnmf.pipelines.frame_networks.train_on_mixtures`). Everything those three steps take
lives in :class:`NetworkTraining`; the two methods take the same fields as keywords
(``fit_network(speech, noise, epochs=10, hidden=(512, 512))``) or a whole object
(``fit_network(speech, noise, training=NetworkTraining(...))``), and they only add what is
their own (the objective, the output layer, the ensemble).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Iterator, Mapping, MutableMapping, Sequence

import torch

from deepnmf.callbacks import Callback, stage_reporter
from deepnmf.exceptions import ParameterError

__all__ = ["RECOMMENDED", "RECOMMENDED_OBJECTIVE", "NetworkTraining", "TrainingMixtures"]


@dataclass(frozen=True)
class NetworkTraining:
    """Settings of a frame network trained on generated noisy mixtures.

    Attributes
    ----------
    snr_range : (float, float)
        SNRs of the training mixtures in dB, drawn uniformly.
    n_copies : int
        Training mixtures per training utterance (a random noise excerpt and SNR each).
    gain_range : (float, float)
        Random level of each training mixture in dB (``(0, 0)``: none).
    max_mixtures : int, optional
        At most this many training mixtures (utterances in a random order).
    speed_range : (float, float)
        Speed perturbation of the training utterances (``(1, 1)``: none).
    context : int
        Neighbouring frames on each side in the network's input.
    context_bands : int
        The neighbours and the noise estimate in this many mel-like bands (0: every bin;
        :class:`~deepnmf.nn.networks.FrameNetwork`).
    hidden : sequence of int
        Widths of the dense layers.
    recurrent : {None, "gru", "lstm", "bgru", "blstm"}
        A recurrent layer after the dense ones.
    noise_aware : bool
        Each utterance's noise estimate beside every frame (Seltzer et al. 2013).
    noise_window : int
        With ``noise_aware``: frames on each side of a running noise estimate (0: one per utterance).
    dropout : float
        Dropout rate after every hidden layer while training.
    epochs, batch_size, lr :
        Adam's epochs, frames (or chunks, recurrent) per step and learning rate.
    lr_schedule : {"constant", "cosine"}
        The learning rate over the epochs (:func:`deepnmf.training.fit_module`).
    discriminative : float
        Huang et al.'s discriminative weight (signal-approximation objectives only).
    loss_scale : {"mixture", "noise", "speech", "sdr"}
        Units of each training mixture in the signal-approximation loss
        (:func:`~deepnmf.pipelines.frame_networks.signal_sources`).

    See :func:`~deepnmf.pipelines.enhancement.training_mixtures`,
    :class:`~deepnmf.nn.networks.FrameNetwork` and
    :func:`~deepnmf.pipelines.frame_networks.train_frame_network` for the details; each checks its
    own arguments.
    """

    snr_range: tuple[float, float] = (-5.0, 10.0)
    n_copies: int = 1
    gain_range: tuple[float, float] = (0.0, 0.0)
    max_mixtures: int | None = None
    speed_range: tuple[float, float] = (1.0, 1.0)
    context: int = 2
    context_bands: int = 0
    hidden: Sequence[int] = (256, 256)
    recurrent: str | None = None
    noise_aware: bool = False
    noise_window: int = 0
    dropout: float = 0.0
    epochs: int = 12
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"
    discriminative: float = 0.0
    loss_scale: str = "mixture"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, training: "NetworkTraining | None" = None, options: Mapping[str, Any] | None = None) -> "NetworkTraining":
        """``training`` (default: the defaults) with the settings in ``options`` replaced.

        Raises
        ------
        ParameterError
            ``training`` is not a :class:`NetworkTraining`, or ``options`` names a setting that does not exist.
        """
        if training is None:
            training = cls()
        elif not isinstance(training, cls):
            raise ParameterError(f"training must be a NetworkTraining, got {type(training).__name__}")
        unknown = sorted(set(options or {}) - set(cls.names()))
        if unknown:
            raise ParameterError(f"unknown network training setting(s) {', '.join(unknown)}; "
                                 f"the settings are {', '.join(cls.names())}")
        return replace(training, **dict(options or {}))

    def mixtures(self, speech: Sequence[Any], noise: Any, stft: Any, *, phase_sensitive: bool = False,
                 random_state: Any = None, callback: Callback | None = None) -> "TrainingMixtures":
        """The training mixtures ``(|Y|, |S|, |N|)``, each ``(n_frames, n_bins)``, made as they are iterated
        (:func:`~deepnmf.pipelines.enhancement.training_mixtures`; ``callback`` gets stage ``"pairs"``).

        With an integer ``random_state`` they carry a ``key``: the settings that decide them, for the
        ``cache`` of :meth:`fit` (the speech and the noise are the cache's to keep the same)."""
        from deepnmf.pipelines.enhancement import training_mixtures

        def make() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
            return training_mixtures(speech, noise, stft, snr_range=self.snr_range, n_copies=self.n_copies,
                                     gain_range=self.gain_range, max_mixtures=self.max_mixtures,
                                     speed_range=self.speed_range, phase_sensitive=phase_sensitive,
                                     random_state=random_state, callback=callback)

        seeded = isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
        key = (tuple(self.snr_range), self.n_copies, tuple(self.gain_range), self.max_mixtures,
               tuple(self.speed_range), bool(phase_sensitive), repr(stft), int(random_state)) if seeded else None
        return TrainingMixtures(make, key)

    def network(self, n_bins: int, n_outputs: int, output: str = "softplus") -> Any:
        """A new :class:`~deepnmf.nn.networks.FrameNetwork` ``n_bins -> n_outputs`` of these settings."""
        from deepnmf.nn.networks import FrameNetwork

        return FrameNetwork(n_bins, n_outputs, context=self.context, hidden=tuple(self.hidden), output=output,
                            recurrent=self.recurrent, noise_aware=self.noise_aware, noise_window=self.noise_window,
                            dropout=self.dropout, context_bands=self.context_bands)

    def fit(self, net: Any, mixtures: Any, *, target_fn: Callable | None = None, mask_fn: Callable | None = None,
            random_state: Any = None, callback: Callback | None = None, cache: MutableMapping | None = None) -> Any:
        """Train ``net`` in place on ``mixtures`` (:func:`~deepnmf.pipelines.frame_networks.train_on_mixtures`:
        against ``target_fn(|S|, |N|)``, or by signal approximation of ``mask_fn(outputs)`` without it);
        ``callback`` gets stage ``"network"`` once per epoch. ``cache`` (a dict) shares the laid-out
        training matrix between signal-approximation fits of the same mixtures and inputs. Returns the
        :class:`~deepnmf.pipelines.frame_networks.TrainingResult`."""
        from deepnmf.pipelines.frame_networks import train_on_mixtures

        signal = target_fn is None
        return train_on_mixtures(
            net, mixtures, target_fn=target_fn, mask_fn=mask_fn,
            discriminative=self.discriminative if signal else 0.0, loss_scale=self.loss_scale,
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_schedule=self.lr_schedule,
            random_state=random_state, callback=stage_reporter(callback, "network"), cache=cache,
        )


#: How the enhancement experiment trains its activation networks (``EnhancementConfig``'s ``dnn_*``
#: defaults are these fields) and the demo its own, chosen on validation speakers of the training side
#: (``benchmarks/tune_enhancement_networks.py``; the figures are beside each ``EnhancementConfig`` field
#: and in docs/enhancement.md): 10 mixtures per training utterance, at most 1000, for 3 epochs with a
#: cosine learning rate; 512x512 MLP on 2 context frames and a per-utterance noise estimate in 64
#: mel-like bands; 512-frame batches; Huang et al.'s discriminative weight 0.05. Train with
#: ``objective=RECOMMENDED_OBJECTIVE`` (signal approximation through the frozen dictionaries) and
#: enhance with the gain exponent ``pipelines.enhancement.DEFAULT_EXPONENTS["dnn"]``.
RECOMMENDED = NetworkTraining(n_copies=10, max_mixtures=1000, context=2, context_bands=64, hidden=(512, 512),
                              noise_aware=True, epochs=3, batch_size=512, lr=1e-3, lr_schedule="cosine",
                              discriminative=0.05)
#: the activation networks' objective that goes with :data:`RECOMMENDED`
RECOMMENDED_OBJECTIVE = "signal"


class TrainingMixtures:
    """Training mixtures made afresh each time they are iterated (:meth:`NetworkTraining.mixtures`).

    Attributes
    ----------
    key : tuple or None
        What decides them apart from the speech and the noise (settings, STFT, integer seed), or
        ``None`` when the seed is not an integer.
    """

    def __init__(self, make: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]],
                 key: tuple | None) -> None:
        self._make = make
        self.key = key

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return self._make()
