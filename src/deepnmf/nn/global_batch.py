"""The global minibatch of data-parallel training, seen from one rank's share of its rows.

In data-parallel training each rank's forward sees only its rows of the
batch. Two things a forward may compute depend on the whole batch, and
would make a run on W ranks differ from the run on one process:

- **random draws**: a sampler that consumes its generator element by
  element (torch's Gamma kernel rejects and redraws) gives row ``i`` draws
  that depend on the parameters of the rows before it;
- **batch statistics**: a running estimate updated from the batch mean.

Inside :func:`sharded`, :func:`draw` gathers the (detached) parameters of a
draw from every rank, draws for the whole batch from the generator that
every rank holds in the same state (the draws of one process), and keeps
this rank's rows; :func:`mean` is the mean over the whole batch. Outside it
(one process) they are the plain operations, so a module written with them
trains bit for bit as before.

Rows are dimension ``dim`` of a drawn tensor (0 unless given); every rank's
rows lie in the global batch's order, rank 0's first.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Callable, Iterator, Union

import torch

Drawn = Union[torch.Tensor, tuple]


@dataclass(frozen=True)
class RowShard:
    """This rank's place in a global batch.

    Parameters
    ----------
    sizes : tuple of int
        Rows of the global batch held by each rank, in rank order.
    rank : int
    gather : callable
        ``gather(t, sizes)``: every rank's ``t`` (``(sizes[r], ...)``)
        concatenated in rank order, ``(sum(sizes), ...)``, on every rank.
    reduce_sum : callable
        ``reduce_sum(t)``: ``t`` summed over the ranks.
    """

    sizes: tuple[int, ...]
    rank: int
    gather: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]
    reduce_sum: Callable[[torch.Tensor], torch.Tensor]

    @property
    def rows(self) -> slice:
        """This rank's rows of the global batch."""
        start = sum(self.sizes[: self.rank])
        return slice(start, start + self.sizes[self.rank])


_ACTIVE: contextvars.ContextVar[RowShard | None] = contextvars.ContextVar("deepnmf_row_shard", default=None)


@contextlib.contextmanager
def sharded(shard: RowShard | None) -> Iterator[None]:
    """Run the enclosed forward as ``shard``'s rows of the global batch (``None``: the whole batch)."""
    token = _ACTIVE.set(shard)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def current() -> RowShard | None:
    """The active :class:`RowShard`, ``None`` in one process."""
    return _ACTIVE.get()


def draw(sample: Callable[[torch.Tensor], Drawn], params: torch.Tensor, dim: int = 0) -> Drawn:
    """``sample(params)`` for this rank's rows, drawn as one process draws for the whole batch.

    Parameters
    ----------
    sample : callable
        ``sample(params) -> tensor or tuple of tensors``, each with the rows
        of ``params`` along ``dim``; it consumes a generator.
    params : torch.Tensor [shape=(..., n_rows, ...)]
        Detached parameters of the draws, this rank's rows along ``dim``.
    dim : int
        The rows' dimension.

    Returns
    -------
    tensor or tuple of tensors [shape=(..., n_rows, ...)]
    """
    shard = current()
    if shard is None:
        return sample(params)
    whole = shard.gather(params.detach().movedim(dim, 0).contiguous(), shard.sizes).movedim(0, dim)
    out = sample(whole)
    rows = shard.rows
    if isinstance(out, tuple):
        return tuple(t.narrow(dim, rows.start, rows.stop - rows.start) for t in out)
    return out.narrow(dim, rows.start, rows.stop - rows.start)


def mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of every entry of ``values`` over the whole batch (``values.mean()`` in one process); a
    statistic: with a shard the result carries no gradient.

    Parameters
    ----------
    values : torch.Tensor [shape=(n_rows, ...)]
        This rank's rows (none is allowed).

    Returns
    -------
    torch.Tensor [shape=()]
    """
    shard = current()
    if shard is None:
        return values.mean()
    local = torch.stack([values.detach().sum().to(torch.float64),
                         torch.tensor(float(values.numel()), dtype=torch.float64, device=values.device)])
    total = shard.reduce_sum(local)
    return (total[0] / total[1]).to(values.dtype)


__all__ = ["RowShard", "sharded", "current", "draw", "mean"]
