"""Training loops of :class:`deepnmf.ImplicitNMF` (grid and points mode).

Grid mode runs without autograd: the atom networks' forward and reverse
mode (:func:`deepnmf.nn.implicit.stacked_forward`, :func:`stacked_backward`)
and the objective with its gradient and the activation update
(:func:`grid_objective`) are called directly, writing into buffers reused at
every epoch. Splitting each epoch into two halves run on two threads (by
components for the networks, by frames for the objective, torch serial in
each thread) was measured at 0.99-1.05x the time of this single stream on
the 2-core machine, and not kept (``docs/implicit-nmf.md``).
"""
from __future__ import annotations

from typing import Callable

import torch

from deepnmf.nn.implicit import ImplicitFactor, Workspace, paired_model, pointwise_loss, stacked_backward, stacked_forward
from deepnmf.nn.optim import FlatRprop

#: Features are padded with zero columns up to a multiple of this many points.
PAD_MULTIPLE = 16


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """``"rprop"``: :class:`FlatRprop` (torch's Rprop arithmetic, numpy passes on CPU); ``"adam"``: torch's Adam."""
    if name == "rprop":
        return FlatRprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def data_term(X: torch.Tensor, loss: str, eps: float) -> float:
    """Part of the mean divergence that depends only on the data (for reporting)."""
    if loss == "kl":
        return float((torch.xlogy(X, X) - X).mean())
    if loss == "is":
        return float((-torch.log(X.clamp_min(eps)) - 1).mean())
    return 0.0


def model_term(X: torch.Tensor, Y: torch.Tensor, loss: str, eps: float) -> torch.Tensor:
    """Mean divergence minus :func:`data_term` (what the gradient needs)."""
    if loss == "kl":
        return (Y - X * torch.log(Y.clamp_min(eps))).mean()
    if loss == "is":
        Yc = Y.clamp_min(eps)
        return (X.clamp_min(eps) / Yc + torch.log(Yc)).mean()
    return 0.5 * (X - Y).square().mean()


def grid_objective(W: torch.Tensor, H: torch.Tensor, X: torch.Tensor, loss: str,
                   eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divergence of ``X`` and ``Y = H @ W`` (minus its data term), its gradient and the ``H`` update, in one pass.

    Sharing ``Y`` and ``X / Y`` saves one product and about ten elementwise
    passes per epoch compared with autograd through :func:`model_term`
    followed by a separate update. Rows are independent: the terms of a
    range of frames are those of the whole computed on the range's rows.

    Parameters
    ----------
    W : torch.Tensor [shape=(n_components, n_bins)]
    H : torch.Tensor [shape=(n_frames, n_components)]
    X : torch.Tensor [shape=(n_frames, n_bins)]
    loss : {"kl", "frobenius", "is"}
    eps : float
        Floor of ``Y`` inside logs and ratios; the gradient is zero where the
        floor is active (as with ``clamp_min``).

    Returns
    -------
    value : torch.Tensor [shape=()]
        Sum (not mean) over the entries of the divergence minus its data term.
    factor : torch.Tensor [shape=(n_frames, n_components)]
        Multiplicative update of ``H`` for this ``W``:
        ``H * ((X Y^(b-2)) W^T) / (Y^(b-1) W^T)`` with b = 1 (kl), 2
        (frobenius) or 0 (is); it never increases the divergence.
    G : torch.Tensor [shape=(n_frames, n_bins)]
        Gradient of ``value`` with respect to ``Y``; ``H.T @ G`` is the
        gradient with respect to ``W``.
    """
    Y = H @ W
    if loss == "kl":
        clamped = float(Y.min()) < eps
        Yc = Y.clamp_min(eps) if clamped else Y
        R = X / Yc
        factor = (R @ W.T) / W.sum(dim=1).clamp_min(eps)
        if clamped:
            value = (Y - X * torch.log(Yc)).sum()
            G = torch.where(Y >= eps, 1.0 - R, 1.0)
        else:  # the usual case: sum(Y) from the factors' sums, log in place (Y is not needed after)
            value = H.sum(dim=0) @ W.sum(dim=1) - torch.dot(X.reshape(-1), Y.log_().reshape(-1))
            G = torch.rsub(R, 1.0)
    elif loss == "is":
        Yc = Y.clamp_min(eps)
        inv = 1.0 / Yc
        Xc = X.clamp_min(eps)
        value = (Xc * inv + torch.log(Yc)).sum()
        factor = ((X * inv.square()) @ W.T) / (inv @ W.T).clamp_min(eps)
        G = (inv - Xc * inv.square()) * (Y >= eps)
    else:
        value = 0.5 * (X - Y).square().sum()
        factor = (X @ W.T) / (Y.clamp_min(eps) @ W.T).clamp_min(eps)
        G = Y - X
    return value, factor, G


def pad_points(F: torch.Tensor) -> torch.Tensor:
    """Features ``(K, 2J, n)`` with zero columns appended up to a multiple of :data:`PAD_MULTIPLE` points.

    The padded points' outputs are sliced away before the objective, so their
    gradient is zero and they change no weight gradient; the batched products
    over ``n`` run faster on rows of a multiple of 16 floats.
    """
    extra = -F.shape[2] % PAD_MULTIPLE
    return F if extra == 0 else torch.nn.functional.pad(F, (0, extra))


def train_grid(net: ImplicitFactor, F: torch.Tensor, H: torch.Tensor, X: torch.Tensor, *, loss: str, eps: float,
               optimizer: str, lr: float, epochs: int, report: Callable[[int, float], object]) -> list[float]:
    """Full-batch training of the atom networks and the activation matrix on a grid.

    Each epoch takes one optimiser step on the network weights (gradient of
    the mean divergence) and one multiplicative update of ``H`` with the
    atoms of that step.

    Parameters
    ----------
    net : ImplicitFactor
        Atom networks (trained in place).
    F : torch.Tensor [shape=(n_components, 2 * n_octaves, n_bins)]
        Constant Fourier features of the bins.
    H : torch.Tensor [shape=(n_frames, n_components)]
        Activations (updated in place).
    X : torch.Tensor [shape=(n_frames, n_bins)]
        Data.
    loss, eps, optimizer, lr, epochs
        As :class:`deepnmf.ImplicitNMF`.
    report : callable
        ``report(epoch, loss)`` after every epoch.

    Returns
    -------
    losses : list of float
        Mean divergence before each step, then at the end (in float64).
    """
    n_bins = F.shape[2]
    F = pad_points(F)
    opt = make_optimizer(optimizer, [net.theta], lr)
    theta = net.theta.detach()
    net.theta.grad = grad = torch.zeros_like(theta)  # every entry rewritten by each reverse pass
    gW_pad = X.new_zeros(F.shape[0], F.shape[2])
    gW = gW_pad[:, :n_bins]  # the padding's gradient stays zero
    workspace = Workspace()  # the networks' large states reuse the same memory at every epoch
    scale, const = 1.0 / X.numel(), data_term(X, loss, eps)
    losses = []
    for epoch in range(1, epochs + 1):
        W_pad, saved = stacked_forward(net, theta, F, workspace=workspace)
        value, factor, G = grid_objective(W_pad[:, :n_bins], H, X, loss, eps)
        torch.mm(H.T, G, out=gW).mul_(scale)
        losses.append(float(value) * scale + const)
        stacked_backward(net, theta, gW_pad, saved, grad, workspace=workspace)
        opt.step()
        H.mul_(factor)  # the activation update with the atoms of this epoch
        report(epoch, losses[-1])
    net.theta.grad = None
    with torch.no_grad():  # the final value without cancellation: full formula in float64
        losses.append(float(pointwise_loss(X.double(), (H @ net(F)[:, :n_bins]).double(), loss, eps=eps)))
    return losses


def train_points(nets: torch.nn.ModuleDict, Ff: torch.Tensor, Ft: torch.Tensor, f_idx: torch.Tensor,
                 t_idx: torch.Tensor, V: torch.Tensor, *, loss: str, eps: float, optimizer: str, lr: float,
                 epochs: int, fraction: float, gen: torch.Generator,
                 report: Callable[[int, float], object]) -> list[float]:
    """Full-batch (or random-fraction) training of atom and activation networks on points.

    Parameters
    ----------
    nets : torch.nn.ModuleDict
        ``{"W": ImplicitFactor, "H": ImplicitFactor}`` (trained in place).
    Ff, Ft : torch.Tensor [shape=(n_components, 2 * n_octaves, n_freqs or n_times)]
        Fourier features of the distinct frequencies and times.
    f_idx, t_idx : torch.Tensor [shape=(n_points,), int64]
        Each point's frequency and time.
    V : torch.Tensor [shape=(n_points,)]
        Values.
    loss, eps, optimizer, lr, epochs
        As :class:`deepnmf.ImplicitNMF`.
    fraction : float
        Share of the points drawn (without replacement) for each epoch.
    gen : torch.Generator
        Source of the draws.
    report : callable
        ``report(epoch, loss)`` after every epoch.

    Returns
    -------
    losses : list of float
    """
    opt = make_optimizer(optimizer, [nets["W"].theta, nets["H"].theta], lr)
    n = V.numel()
    n_draw = max(1, int(round(fraction * n)))
    losses = []
    spaces = {name: Workspace() for name in nets}
    n_f, n_t = Ff.shape[2], Ft.shape[2]
    Ff, Ft = pad_points(Ff), pad_points(Ft)
    for epoch in range(1, epochs + 1):
        if n_draw < n:
            sel = torch.randperm(n, generator=gen)[:n_draw].to(V.device)
            fi, ti, v = f_idx[sel], t_idx[sel], V[sel]
        else:
            fi, ti, v = f_idx, t_idx, V
        opt.zero_grad(set_to_none=True)
        Wu = nets["W"](Ff, workspace=spaces["W"])[:, :n_f]  # (K, n_freqs)
        Hu = nets["H"](Ft, workspace=spaces["H"])[:, :n_t]  # (K, n_times)
        Y = paired_model(Wu, Hu, fi, ti)  # (n_draw,)
        objective = model_term(v, Y, loss, eps)
        objective.backward()
        losses.append(float(objective.detach()) + data_term(v, loss, eps))
        opt.step()
        report(epoch, losses[-1])
    with torch.no_grad():
        Y = paired_model(nets["W"](Ff)[:, :n_f], nets["H"](Ft)[:, :n_t], f_idx, t_idx)
        losses.append(float(pointwise_loss(V.double(), Y.double(), loss, eps=eps)))
    return losses
