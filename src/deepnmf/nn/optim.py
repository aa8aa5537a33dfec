"""Rprop for a few large parameter tensors, with numpy kernels on CPU.

:class:`FlatRprop` computes exactly what :class:`torch.optim.Rprop` computes
(Riedmiller & Braun's sign-based steps, the "Rprop-" variant torch uses: the
gradient is zeroed after a sign change), in about ten single-pass array
operations per tensor. The implicit networks keep all their weights in one
flat parameter of about 200k entries; there torch's Rprop step took about
2.8 ms on our 2-core machine (a dozen threaded torch kernels, each paying
the thread pool's start-up), the numpy step a fifth of that. CUDA
tensors use the same formulas in torch.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from deepnmf.exceptions import ParameterError


#: torch.optim.Rprop's defaults: step-size factors (after a sign change, after a repeated sign) and bounds
ETAS = (0.5, 1.2)
STEP_SIZES = (1e-6, 50.0)


class FlatRprop(torch.optim.Optimizer):
    """Resilient backpropagation, equal to :class:`torch.optim.Rprop` step for step.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Parameters (best few and large).
    lr : float
        Initial step size of every entry.
    etas : (float, float)
        Step-size factors after a sign change and after a repeated sign ``(eta_minus, eta_plus)``,
        with ``0 < eta_minus < 1 < eta_plus``.
    step_sizes : (float, float)
        Bounds of the step sizes.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-2, etas: tuple[float, float] = ETAS,
                 step_sizes: tuple[float, float] = STEP_SIZES) -> None:
        if not lr > 0:
            raise ParameterError(f"lr must be positive, got {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ParameterError(f"etas must satisfy 0 < eta_minus < 1 < eta_plus, got {etas}")
        if not 0 < step_sizes[0] <= step_sizes[1]:
            raise ParameterError(f"step_sizes must satisfy 0 < min <= max, got {step_sizes}")
        super().__init__(params, {"lr": lr, "etas": tuple(etas), "step_sizes": tuple(step_sizes)})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            eta_minus, eta_plus = group["etas"]
            lo, hi = group["step_sizes"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ParameterError("FlatRprop does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["step_size"] = torch.full_like(p, group["lr"])
                state["step"] += 1
                if p.device.type == "cpu" and p.is_contiguous() and p.grad.is_contiguous():
                    _step_numpy(p.numpy(), p.grad.numpy(), state["prev"].numpy(), state["step_size"].numpy(),
                                eta_minus, eta_plus, lo, hi)
                else:
                    _step_torch(p, p.grad, state["prev"], state["step_size"], eta_minus, eta_plus, lo, hi)
        return loss


def _step_numpy(p, g, prev, size, eta_minus, eta_plus, lo, hi) -> None:
    """One step in place. (``np.where`` with scalars and boolean-mask assignment were 5-20x
    slower here than the comparisons, table lookup and multiplications used instead.)"""
    dt = p.dtype.type
    prod = g * prev
    which = np.add(prod > 0, 1, dtype=np.intp)  # 0: sign change, 1: zero (or NaN), 2: same sign
    which -= prod < 0
    size *= np.take(np.array([eta_minus, 1.0, eta_plus], dtype=p.dtype), which)
    np.clip(size, dt(lo), dt(hi), out=size)
    np.multiply(g, prod >= 0, out=prev)  # after a sign change: no move, and none counted next time
    p -= np.sign(prev) * size


def _step_torch(p, g, prev, size, eta_minus, eta_plus, lo, hi) -> None:
    """One step in place on any device, through :func:`rprop_update`."""
    new_p, new_prev, new_size = rprop_update(p, g, prev, size, etas=(eta_minus, eta_plus), step_sizes=(lo, hi))
    p.copy_(new_p)
    prev.copy_(new_prev)
    size.copy_(new_size)


def rprop_update(p: torch.Tensor, g: torch.Tensor, prev: torch.Tensor, size: torch.Tensor, *,
                 etas: tuple[float, float] = ETAS,
                 step_sizes: tuple[float, float] = STEP_SIZES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Rprop step as a pure function (for :func:`torch.compile`), the arithmetic of :class:`FlatRprop`.

    Parameters
    ----------
    p, g, prev, size : torch.Tensor [shape=(n,)]
        Parameters, gradient, previous (kept) gradient, step sizes.
    etas, step_sizes
        As :class:`FlatRprop`.

    Returns
    -------
    p, prev, size : torch.Tensor [shape=(n,)]
        New parameters, the gradient kept for the next step (zero after a
        sign change) and the new step sizes.
    """
    prod = g * prev
    one = torch.ones_like(size)
    factor = torch.where(prod > 0, one * etas[1], torch.where(prod < 0, one * etas[0], one))
    size = (size * factor).clamp(step_sizes[0], step_sizes[1])
    kept = torch.where(prod < 0, torch.zeros_like(g), g)
    return p - kept.sign() * size, kept, size
