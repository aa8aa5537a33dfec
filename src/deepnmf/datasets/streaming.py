"""Spectrogram frames streamed from recordings: corpora larger than memory.

:class:`StreamingFrames` is a :class:`torch.utils.data.IterableDataset` that
reads audio files one at a time, turns each into ``|STFT| ** power`` frames
and yields them in batches, so memory holds one recording, the shuffle
buffer and one batch, whatever the size of the corpus. Files are shared out
over ``DataLoader`` workers and over ``torch.distributed`` ranks: shard
``rank * num_workers + worker_id`` of ``world_size * num_workers`` takes every
``n_shards``-th file of an order that is re-drawn each epoch from the seed
(so all shards agree on it without talking); with fewer files than shards,
every shard reads every file and keeps every ``n_shards``-th frame.

Use it with ``DataLoader(stream, batch_size=None, num_workers=k)``: the
dataset batches itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

__all__ = ["StreamingFrames"]


def _distributed_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StreamingFrames(IterableDataset):
    """Batches of magnitude-STFT frames read lazily from audio files.

    Parameters
    ----------
    inputs : sequence of path
        Audio files or folders (searched recursively), as ``deepnmf train`` takes them.
    sr, n_fft, hop, power
        Sample rate every file is resampled to, STFT size and hop (samples),
        and the exponent of ``|STFT|`` (1: magnitude, 2: power).
    batch_size : int
        Frames per yielded batch (the last batch of an epoch may be smaller).
    shuffle_buffer : int
        Frames held for shuffling (0: frames in file order). Frames leave the
        buffer at random, so with a buffer larger than a file the batches mix
        recordings.
    seed : int
        Seeds the per-epoch file order and the buffer; with :meth:`set_epoch`
        every epoch differs, and a run is reproducible.
    rank, world_size : int, optional
        This process's place among distributed ranks (default: from
        ``torch.distributed`` when it is initialised, else 0 of 1).

    Yields
    ------
    torch.Tensor [shape=(batch, n_fft // 2 + 1)], float32
    """

    def __init__(self, inputs: Sequence[str | Path], *, sr: int = 16000, n_fft: int = 512, hop: int = 128,
                 power: float = 1.0, batch_size: int = 256, shuffle_buffer: int = 0, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        from deepnmf.audio.io import list_audio_files
        from deepnmf.exceptions import DataError, ParameterError

        for name, value in (("sr", sr), ("n_fft", n_fft), ("hop", hop), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value}")
        if shuffle_buffer < 0:
            raise ParameterError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.files = list_audio_files(*inputs)
        if not self.files:
            raise DataError(f"no audio files found in {', '.join(map(str, inputs))}")
        self.sr, self.n_fft, self.hop, self.power = int(sr), int(n_fft), int(hop), float(power)
        self.batch_size, self.shuffle_buffer, self.seed = int(batch_size), int(shuffle_buffer), int(seed)
        self._rank, self._world = rank, world_size
        self.epoch = 0

    @property
    def n_features(self) -> int:
        """Frequency bins per frame."""
        return self.n_fft // 2 + 1

    def set_epoch(self, epoch: int) -> None:
        """Draw the file order and buffer of epoch ``epoch`` (call it before each epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def _shard(self) -> tuple[int, int]:
        rank, world = _distributed_rank()
        rank = rank if self._rank is None else self._rank
        world = world if self._world is None else self._world
        info = get_worker_info()
        n_workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        return rank * n_workers + worker, world * n_workers

    def _file_order(self) -> list[Path]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.files))
        return [self.files[i] for i in order]

    def _frames(self, path: Path) -> np.ndarray:
        from deepnmf.audio.io import load_audio
        from deepnmf.audio.tf import magnitude, stft

        x, _ = load_audio(path, sr=self.sr)
        if x.size < self.n_fft:
            return np.zeros((0, self.n_features), dtype=np.float32)
        return magnitude(stft(x, n_fft=self.n_fft, hop=self.hop), self.power).numpy().astype(np.float32, copy=False)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """This shard's frames ``(n_features,)`` in stream order, before shuffling and batching."""
        shard, n_shards = self._shard()
        files = self._file_order()
        by_file = len(files) >= n_shards
        count = 0
        for path in (files[shard::n_shards] if by_file else files):
            for frame in self._frames(path):
                if by_file or count % n_shards == shard:
                    yield frame
                count += 1

    def _shuffled(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        if self.shuffle_buffer <= 1:
            yield from frames
            return
        shard, _ = self._shard()
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        buffer: list[np.ndarray] = []
        for frame in frames:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(frame)
                continue
            j = int(rng.integers(len(buffer)))
            yield buffer[j]
            buffer[j] = frame
        for j in rng.permutation(len(buffer)):
            yield buffer[j]

    def __iter__(self) -> Iterator[torch.Tensor]:
        batch: list[np.ndarray] = []
        for frame in self._shuffled(self.iter_frames()):
            batch.append(frame)
            if len(batch) == self.batch_size:
                yield torch.from_numpy(np.stack(batch))
                batch = []
        if batch:
            yield torch.from_numpy(np.stack(batch))


def is_stream(X: object) -> bool:
    """True for what :func:`deepnmf.training.fit_module` trains on as a stream of batches
    (a :class:`StreamingFrames`, or a ``DataLoader``), not an in-memory matrix."""
    from torch.utils.data import DataLoader

    return isinstance(X, (StreamingFrames, DataLoader))


def stream_sample(batches: object, n_frames: int = 8192) -> torch.Tensor:
    """The first ``n_frames`` frames of a stream (fewer if it is shorter), for initialisation.

    Parameters
    ----------
    batches : StreamingFrames or DataLoader
        Yields ``(batch, n_features)`` tensors.
    n_frames : int
        Frames to keep; memory is bounded by this, not by the corpus.

    Returns
    -------
    torch.Tensor [shape=(n, n_features)], float32
    """
    from deepnmf.exceptions import DataError

    kept, count = [], 0
    for batch in batches:  # type: ignore[attr-defined]
        kept.append(batch[: n_frames - count])
        count += kept[-1].shape[0]
        if count >= n_frames:
            break
    if not kept:
        raise DataError("the stream yielded no frames (every file shorter than one STFT frame?)")
    return torch.cat(kept)
