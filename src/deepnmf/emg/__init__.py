"""Multichannel EMG: loaders (``io``), envelope preprocessing (``preprocess``), muscle synergies (``synergies``).

Orientation: envelopes are ``(n_times, n_channels)``; synergies are
``(n_synergies, n_channels)`` (the ``components_`` of the estimator).
"""
from deepnmf.emg.io import Recording, Segment, load_csv, load_gait, load_ninapro, load_recording, load_uci
from deepnmf.emg.preprocess import EnvelopeConfig, preprocess
from deepnmf.emg.synergies import (
    cross_validated_vaf,
    extract_synergies,
    match_synergies,
    refit_activations,
    select_rank,
    vaf,
    vaf_curve,
    vaf_per_channel,
)

__all__ = [
    "Recording", "Segment", "load_csv", "load_gait", "load_ninapro", "load_recording", "load_uci",
    "EnvelopeConfig", "preprocess",
    "cross_validated_vaf", "extract_synergies", "match_synergies", "refit_activations", "select_rank",
    "vaf", "vaf_curve", "vaf_per_channel",
]
