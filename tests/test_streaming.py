"""StreamingFrames: lazy STFT frames, sharded over DataLoader workers and ranks, with a shuffle buffer."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from deepnmf.audio.frames import load_matrix
from deepnmf.datasets.streaming import StreamingFrames
from deepnmf.exceptions import DataError, ParameterError

SR = 8000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i, seconds in enumerate([0.5, 0.3, 0.7, 0.4, 0.25]):
        t = np.arange(int(seconds * SR)) / SR
        x = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / f"utt{i}.wav", x.astype(np.float32), SR, subtype="FLOAT")
    return root


def _rows(batches) -> np.ndarray:
    return np.concatenate([b.numpy() for b in batches], axis=0)


def _sorted(X: np.ndarray) -> np.ndarray:
    return X[np.lexsort(X.T[::-1])]


def test_stream_holds_exactly_the_frames_of_the_in_memory_matrix(corpus):
    X, _ = load_matrix([corpus], sr=SR, n_fft=256, hop=64, power=1.0)
    stream = StreamingFrames([corpus], sr=SR, n_fft=256, hop=64, batch_size=50)
    batches = list(stream)
    assert all(b.shape[1] == stream.n_features == 129 and b.dtype == torch.float32 for b in batches)
    assert all(b.shape[0] == 50 for b in batches[:-1])
    np.testing.assert_allclose(_sorted(_rows(batches)), _sorted(X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("world", [2, 3, 7])  # 7 shards > 5 files: frame-level sharding
def test_ranks_partition_the_frames(corpus, world):
    full = _rows(StreamingFrames([corpus], sr=SR, n_fft=256, hop=64))
    parts = [_rows(StreamingFrames([corpus], sr=SR, n_fft=256, hop=64, rank=r, world_size=world)) for r in range(world)]
    assert sum(p.shape[0] for p in parts) == full.shape[0]
    np.testing.assert_array_equal(_sorted(np.concatenate(parts)), _sorted(full))


def test_dataloader_workers_share_the_files_without_overlap(corpus):
    stream = StreamingFrames([corpus], sr=SR, n_fft=256, hop=64, batch_size=32)
    single = _rows(stream)
    multi = _rows(DataLoader(stream, batch_size=None, num_workers=2))
    np.testing.assert_array_equal(_sorted(multi), _sorted(single))


def test_shuffle_buffer_permutes_frames_and_epochs_differ_reproducibly(corpus):
    plain = _rows(StreamingFrames([corpus], sr=SR, n_fft=256, hop=64))
    make = lambda: StreamingFrames([corpus], sr=SR, n_fft=256, hop=64, shuffle_buffer=40, seed=5)  # noqa: E731
    a, b = make(), make()
    first = _rows(a)
    np.testing.assert_array_equal(first, _rows(b))  # same seed, same epoch: same stream
    np.testing.assert_array_equal(_sorted(first), _sorted(plain))  # a permutation of the frames
    assert not np.array_equal(first, plain)
    a.set_epoch(1)
    second = _rows(a)
    assert not np.array_equal(second, first)
    np.testing.assert_array_equal(_sorted(second), _sorted(plain))


def test_bad_inputs_are_refused_clearly(tmp_path, corpus):
    with pytest.raises(DataError, match="no audio files"):
        StreamingFrames([tmp_path])
    with pytest.raises(ParameterError, match="batch_size"):
        StreamingFrames([corpus], batch_size=0)
    with pytest.raises(ParameterError, match="shuffle_buffer"):
        StreamingFrames([corpus], shuffle_buffer=-1)
