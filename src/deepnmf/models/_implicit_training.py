"""Training loops of :class:`deepnmf.ImplicitNMF` (grid and points mode).

Grid mode runs without autograd: the atom networks' forward and reverse
mode (:func:`deepnmf.nn.implicit.stacked_forward`, :func:`stacked_backward`)
and the objective with its gradient and the activation update
(:func:`grid_objective`) are called directly, writing into buffers reused at
every epoch. Routing it through :func:`deepnmf.training.fit_module` (a
module whose backward is the same hand-written reverse pass, autograd only
linking the pieces) gave the same trajectories bit for bit but took
1.03-1.07x the time per step on the benchmark's grid (320 x 1001, rank 20;
interleaved rounds on the 2-core machine: about 0.3 ms for autograd and
0.3 ms for the loop's bookkeeping on 10-13 ms), so this loop stays; it and
the points loops report through the same :class:`~deepnmf.callbacks.EpochInfo`
as every estimator. The points loops keep their own epochs too: one step
on a random fraction of the points, where ``fit_module``'s epoch is a pass
over all rows in minibatches (with ``point_fraction < 1`` it would train
another way). Splitting each epoch into two halves run on two threads (by
components for the networks, by frames for the objective, torch serial in
each thread) was measured at 0.99-1.05x the time of this single stream on
the 2-core machine, and not kept (``docs/implicit-nmf.md``).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from deepnmf.callbacks import Callback, Clock, report_epoch
from deepnmf.checkpoints import Checkpointer
from deepnmf.divergences import data_term, divergence_terms  # noqa: F401 - re-exported: the objective's pieces
from deepnmf.nn.implicit import (
    ImplicitFactor, Workspace, dense_pairs, paired_model, pointwise_loss, stacked_backward, stacked_forward,
    weight_views,
)
from deepnmf.exceptions import DataError, ModelFileError, ParameterError
from deepnmf.nn.optim import ETAS, STEP_SIZES, FlatRprop, rprop_update
from deepnmf.training import adam

#: Features are padded with zero columns up to a multiple of this many points.
PAD_MULTIPLE = 16
#: ``reduce(t) -> t``: sums a tensor over the processes of a data-parallel fit, in place
Reduce = Callable[[torch.Tensor], torch.Tensor]


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """``"rprop"``: :class:`FlatRprop` (torch's Rprop arithmetic, numpy passes on CPU); ``"adam"``: torch's Adam
    (:func:`deepnmf.training.adam`)."""
    if name == "rprop":
        return FlatRprop(params, lr=lr)
    return adam(params, lr=lr)


def grid_objective(W: torch.Tensor, H: torch.Tensor, X: torch.Tensor, loss: str, eps: float, *,
                   branch_free: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divergence of ``X`` and ``Y = H @ W`` (minus its data term), its gradient and the ``H`` update, in one pass.

    Sharing ``Y`` and ``X / Y`` saves one product and about ten elementwise
    passes per epoch compared with autograd through the divergence followed
    by a separate update. Rows are independent: the terms of a
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
    branch_free : bool
        Skip the test of whether the floor is active anywhere (which decides
        a cheaper ``"kl"`` path in eager mode) so that :func:`torch.compile`
        traces one graph; same values.

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
    if loss == "kl" and not branch_free and float(Y.min()) >= eps:
        # the usual case: no floor active, sum(Y) from the factors' sums, log in place (Y is not needed after)
        R = X / Y
        factor = (R @ W.T) / W.sum(dim=1).clamp_min(eps)
        value = H.sum(dim=0) @ W.sum(dim=1) - torch.dot(X.reshape(-1), Y.log_().reshape(-1))
        return value, factor, torch.rsub(R, 1.0)
    value, G = divergence_terms(X, Y, loss, eps)
    Yc = Y.clamp_min(eps)
    if loss == "kl":
        factor = ((X / Yc) @ W.T) / W.sum(dim=1).clamp_min(eps)
    elif loss == "is":
        inv = 1.0 / Yc
        factor = ((X * inv.square()) @ W.T) / (inv @ W.T).clamp_min(eps)
    else:
        factor = (X @ W.T) / (Yc @ W.T).clamp_min(eps)
    return value, factor, G


#: the kinds of checkpoint the two loops write
GRID, POINTS = "implicit-grid", "implicit-points"


def resume_loop(checkpoint: Checkpointer | None, kind: str, tensors: dict[str, torch.Tensor],
                opt: torch.optim.Optimizer, gen: torch.Generator | None = None) -> tuple[int, list[float]]:
    """Put a checkpoint's tensors (in place), optimiser and generator back; the first epoch to run and the losses.

    Without a checkpoint to resume from: ``(1, [])``.
    """
    restored = checkpoint.restore(kind) if checkpoint is not None else None
    if restored is None:
        return 1, []
    state = restored["state"]
    with torch.no_grad():
        for name, target in tensors.items():
            saved = state["tensors"].get(name)
            if saved is None or saved.shape != target.shape:
                raise ModelFileError(f"the checkpoint's {name!r} does not fit this model (another rank, size "
                                     "or data); resume with the same settings")
            target.copy_(saved)
    opt.load_state_dict(state["optimizer"])
    if gen is not None:
        gen.set_state(state["generator"])
    return restored["epoch"] + 1, [float(v) for v in state["losses"]]


def save_loop(checkpoint: Checkpointer | None, kind: str, epoch: int, epochs: int, tensors: dict[str, torch.Tensor],
              opt: torch.optim.Optimizer, losses: list[float], gen: torch.Generator | None = None) -> None:
    """Write the loop's state after ``epoch`` when the checkpointer says it is due."""
    if checkpoint is None or not checkpoint.due(epoch, epochs):
        return
    state = {"tensors": tensors, "optimizer": opt.state_dict(), "losses": losses}
    if gen is not None:
        state["generator"] = gen.get_state()
    checkpoint.save(kind, epoch, state)


def pad_points(F: torch.Tensor) -> torch.Tensor:
    """Features ``(K, 2J, n)`` with zero columns appended up to a multiple of :data:`PAD_MULTIPLE` points.

    The padded points' outputs are sliced away before the objective, so their
    gradient is zero and they change no weight gradient; the batched products
    over ``n`` run faster on rows of a multiple of 16 floats.
    """
    extra = -F.shape[2] % PAD_MULTIPLE
    return F if extra == 0 else torch.nn.functional.pad(F, (0, extra))


def _summed(value: torch.Tensor, reduce: Reduce | None) -> float:
    """``value`` (a sum over this process's frames) summed over the processes, as a float."""
    if reduce is None:
        return float(value)
    return float(reduce(value.detach().to(torch.float64).reshape(1)))


def _mean_over(mean: float | torch.Tensor, n: int, reduce: Reduce | None) -> float:
    """The mean over every process's entries of per-process means ``mean`` over ``n`` entries."""
    if reduce is None:
        return float(mean)
    total = reduce(torch.tensor([float(mean) * n, float(n)], dtype=torch.float64))
    return float(total[0] / total[1])


def frame_block(n_frames: int, *, compiled: bool, checkpoint: Checkpointer | None) -> tuple[slice, dict]:
    """This process's frames and :func:`train_grid`'s extra arguments (``checkpoint`` or ``reduce``).

    Inside a ``torch.distributed`` process group (``torchrun ...
    --distributed``) each process trains on a block of the frames (its rows
    of ``X`` and of the activations) and the networks' gradient and the
    losses are summed over the processes: every process starts from the same
    initialisation and takes the one-process steps. Outside one: every frame.
    """
    from deepnmf.distributed import all_reduce_sum, is_distributed, row_block, world_size

    if not is_distributed():
        return slice(None), ({"checkpoint": checkpoint} if checkpoint is not None else {})
    if compiled or checkpoint is not None:
        raise ParameterError("distributed iN-NMF trains uncompiled and without checkpoints: drop --compile, "
                             "--checkpoint-every and --resume")
    if n_frames < world_size():
        raise DataError(f"X has {n_frames} frames for {world_size()} processes: give each process a frame")
    return row_block(n_frames), {"reduce": all_reduce_sum}


def train_grid(net: ImplicitFactor, F: torch.Tensor, H: torch.Tensor, X: torch.Tensor, *, loss: str, eps: float,
               optimizer: str, lr: float, epochs: int, callback: Callback | None = None,
               checkpoint: Checkpointer | None = None, reduce: Reduce | None = None) -> list[float]:
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
    callback : callable, optional
        Called with a :class:`deepnmf.callbacks.EpochInfo` after every
        epoch (``train={"loss": mean divergence}``); ``True`` stops training.
    checkpoint : deepnmf.checkpoints.Checkpointer, optional
        Write the weights, ``H``, the optimiser's state and the losses every
        ``checkpoint.every`` epochs; with ``checkpoint.resume`` start from
        the last one (the same trajectory as an uninterrupted run).
    reduce : callable, optional
        Frames split over processes (:func:`deepnmf.distributed.all_reduce_sum`):
        ``X`` and ``H`` are this process's block of frames, and
        ``reduce(t)`` sums ``t`` over the processes in place. The networks'
        gradient (a sum over frames) and the losses are then those of all
        frames, so every process takes the one-process step; ``H`` is
        updated locally (its update is row by row).

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
    w, gw = weight_views(theta, net.layout), weight_views(grad, net.layout)
    gW_pad = X.new_zeros(F.shape[0], F.shape[2])
    gW = gW_pad[:, :n_bins]  # the padding's gradient stays zero
    workspace = Workspace()  # the networks' large states reuse the same memory at every epoch
    n_entries = X.numel() if reduce is None else int(_summed(torch.tensor(float(X.numel())), reduce))
    scale, const = 1.0 / n_entries, _mean_over(data_term(X, loss, eps), X.numel(), reduce)
    first, losses = resume_loop(checkpoint, GRID, {"theta": theta, "H": H}, opt)
    clock = Clock()
    for epoch in range(first, epochs + 1):
        W_pad, saved = stacked_forward(w, F, workspace=workspace)
        value, factor, G = grid_objective(W_pad[:, :n_bins], H, X, loss, eps)
        torch.mm(H.T, G, out=gW)
        if reduce is not None:  # the sum over every process's frames (the padding's zeros stay zero)
            reduce(gW_pad)
        gW.mul_(scale)
        losses.append(_summed(value, reduce) * scale + const)
        stacked_backward(w, gw, gW_pad, saved, workspace=workspace)
        opt.step()
        H.mul_(factor)  # the activation update with the atoms of this epoch
        save_loop(checkpoint, GRID, epoch, epochs, {"theta": theta, "H": H}, opt, losses)
        if report_epoch(callback, epoch, epochs, losses[-1], clock):
            break
    net.theta.grad = None
    with torch.no_grad():  # the final value without cancellation: full formula in float64
        final = pointwise_loss(X.double(), (H @ net(F)[:, :n_bins]).double(), loss, eps=eps)
    losses.append(_mean_over(final, X.numel(), reduce))
    return losses


def _draw_points(f_idx: torch.Tensor, t_idx: torch.Tensor, V: torch.Tensor, n_draw: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An epoch's points: ``n_draw`` drawn without replacement from ``gen``, or all of them (no draw)."""
    if n_draw >= V.numel():
        return f_idx, t_idx, V
    sel = torch.randperm(V.numel(), generator=gen)[:n_draw].to(V.device)
    return f_idx[sel], t_idx[sel], V[sel]


def train_points(nets: torch.nn.ModuleDict, Ff: torch.Tensor, Ft: torch.Tensor, f_idx: torch.Tensor,
                 t_idx: torch.Tensor, V: torch.Tensor, *, loss: str, eps: float, optimizer: str, lr: float,
                 epochs: int, fraction: float, gen: torch.Generator,
                 callback: Callback | None = None, checkpoint: Checkpointer | None = None) -> list[float]:
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
    callback : callable, optional
        Called with a :class:`deepnmf.callbacks.EpochInfo` after every
        epoch (``train={"loss": mean divergence}``); ``True`` stops training.
    checkpoint : deepnmf.checkpoints.Checkpointer, optional
        As :func:`train_grid` (the generator's state included).

    Returns
    -------
    losses : list of float
    """
    opt = make_optimizer(optimizer, [nets["W"].theta, nets["H"].theta], lr)
    n = V.numel()
    n_draw = max(1, int(round(fraction * n)))
    weights = {"W": nets["W"].theta.detach(), "H": nets["H"].theta.detach()}
    first, losses = resume_loop(checkpoint, POINTS, weights, opt, gen)
    spaces = {name: Workspace() for name in nets}
    n_f, n_t = Ff.shape[2], Ft.shape[2]
    Ff, Ft = pad_points(Ff), pad_points(Ft)
    clock = Clock()
    for epoch in range(first, epochs + 1):
        fi, ti, v = _draw_points(f_idx, t_idx, V, n_draw, gen)
        opt.zero_grad(set_to_none=True)
        Wu = nets["W"](Ff, workspace=spaces["W"])[:, :n_f]  # (K, n_freqs)
        Hu = nets["H"](Ft, workspace=spaces["H"])[:, :n_t]  # (K, n_times)
        Y = paired_model(Wu, Hu, fi, ti)  # (n_draw,)
        objective = divergence_terms(v, Y, loss, eps, gradient=False)[0] / v.numel()
        objective.backward()
        losses.append(float(objective.detach()) + data_term(v, loss, eps))
        opt.step()
        save_loop(checkpoint, POINTS, epoch, epochs, weights, opt, losses, gen)
        if report_epoch(callback, epoch, epochs, losses[-1], clock):
            break
    with torch.no_grad():
        Y = paired_model(nets["W"](Ff)[:, :n_f], nets["H"](Ft)[:, :n_t], f_idx, t_idx)
        losses.append(float(pointwise_loss(V.double(), Y.double(), loss, eps=eps)))
    return losses


# ------------------------------------------------------------ compiled grid mode
def _grid_epoch(theta: torch.Tensor, H: torch.Tensor, F: torch.Tensor, X: torch.Tensor, prev: torch.Tensor,
                size: torch.Tensor, layout: tuple, n_bins: int, loss: str, eps: float, rprop: tuple | None):
    """One grid epoch as a pure function of tensors and plain constants (what :func:`torch.compile` traces).

    Returns ``(theta, prev, size, H, value)`` after an Rprop step when
    ``rprop = (etas, step_sizes)``, else ``(grad, factor, value)``. The
    constants are plain values, so fits of the same shapes and settings
    share one compiled graph.
    """
    w = weight_views(theta, layout)
    W_pad, saved = stacked_forward(w, F)
    value, factor, G = grid_objective(W_pad[:, :n_bins], H, X, loss, eps, branch_free=True)
    gW = torch.nn.functional.pad((H.T @ G) * (1.0 / X.numel()), (0, F.shape[2] - n_bins))
    grad = torch.empty_like(theta)
    stacked_backward(w, weight_views(grad, layout), gW, saved)
    if rprop is None:
        return grad, factor, value
    theta, prev, size = rprop_update(theta, grad, prev, size, etas=rprop[0], step_sizes=rprop[1])
    return theta, prev, size, H * factor, value


def _root_cause(err: BaseException) -> str:
    """``"Type: first line"`` of the innermost exception in ``err``'s chain (compilers wrap theirs)."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200] if lines else ''}"


def train_grid_compiled(net: ImplicitFactor, F: torch.Tensor, H: torch.Tensor, X: torch.Tensor, *, loss: str,
                        eps: float, optimizer: str, lr: float, epochs: int,
                        callback: Callback | None = None) -> list[float]:
    """:func:`train_grid` with each epoch compiled by :func:`torch.compile` into fused kernels.

    The forward and reverse passes, the objective and (with Rprop) the
    optimiser step become one graph; inductor fuses the bias additions,
    sines, cosines and products into a few loops and leaves the batched
    matrix products to the BLAS. The first epoch compiles (about 9-25 s on
    the 2-core machine, less once torch's on-disk cache holds the graph);
    where compiling fails (no C++ compiler, for example) training falls
    back to :func:`train_grid` with a warning. The frame count is a dynamic
    dimension, so spectrograms of any length share one compiled graph;
    another number of bins, components or hidden units compiles anew, and
    after 8 such graphs in one process torch stops compiling this function
    (training then falls back with the warning). The same arithmetic as
    :func:`train_grid` up to rounding: the trajectories agree to float32
    rounding over the first epochs, then Rprop's sign decisions let
    rounding differences grow, as between any two machines.
    """
    n_bins = F.shape[2]
    Fp = pad_points(F)
    layout = net.layout
    rprop = (ETAS, STEP_SIZES) if optimizer == "rprop" else None
    theta = net.theta.detach().clone()
    prev, size = torch.zeros_like(theta), torch.full_like(theta, lr)
    step = torch.compile(_grid_epoch, dynamic=False, fullgraph=True)
    if X.shape[0] >= 2:  # one graph for any number of frames (recordings differ in length); torch
        X = X.view_as(X)  # specialises sizes 0 and 1, so a single frame gets its own; the mark goes on
        torch._dynamo.mark_dynamic(X, 0)  # a view of ours, not on a tensor the caller may pass elsewhere
        torch._dynamo.mark_dynamic(H, 0)
    opt = None if rprop else adam([net.theta], lr=lr)
    scale, const = 1.0 / X.numel(), data_term(X, loss, eps)
    losses: list[float] = []
    clock = Clock()
    for epoch in range(1, epochs + 1):
        try:
            out = step(theta, H, Fp, X, prev, size, layout, n_bins, loss, eps, rprop)
        except Exception as err:  # noqa: BLE001 - compiler missing or unsupported: train uncompiled
            if epoch > 1:
                raise
            warnings.warn(f"torch.compile failed ({_root_cause(err)}); training without it", RuntimeWarning,
                          stacklevel=3)
            return train_grid(net, F, H, X, loss=loss, eps=eps, optimizer=optimizer, lr=lr, epochs=epochs,
                              callback=callback)
        if rprop is not None:
            theta, prev, size, H_new, value = out
            H.copy_(H_new)
        else:
            grad, factor, value = out
            net.theta.grad = grad
            opt.step()
            theta = net.theta.detach()
            H.mul_(factor)
        losses.append(float(value) * scale + const)
        if report_epoch(callback, epoch, epochs, losses[-1], clock):
            break
    with torch.no_grad():
        if rprop is not None:
            net.theta.copy_(theta)
        net.theta.grad = None
        losses.append(float(pointwise_loss(X.double(), (H @ net(Fp)[:, :n_bins]).double(), loss, eps=eps)))
    return losses


# ---------------------------------------------------------- compiled points mode
def _points_epoch(thetas: tuple[torch.Tensor, torch.Tensor], feats: tuple[torch.Tensor, torch.Tensor],
                  f_idx: torch.Tensor, t_idx: torch.Tensor, V: torch.Tensor,
                  states: tuple[torch.Tensor, ...], layouts: tuple, sizes: tuple[int, int], dense: bool,
                  loss: str, eps: float, rprop: tuple | None):
    """One points epoch as a pure function (what :func:`torch.compile` traces; see :func:`_grid_epoch`).

    ``thetas`` and ``feats`` hold the atom then the activation networks' weights
    and padded features, ``sizes`` their unpadded coordinate counts, ``states``
    Rprop's ``(prev_W, size_W, prev_H, size_H)``. The model at the points and
    its reverse pass follow :func:`deepnmf.nn.implicit.paired_model` (the
    dense product of the distinct coordinates when ``dense``, else gathered
    rows). Returns ``(theta_W, theta_H, states, value)`` after an Rprop step,
    else ``(grad_W, grad_H, value)``.
    """
    n_f, n_t = sizes
    ws = [weight_views(theta, layout) for theta, layout in zip(thetas, layouts)]
    (W_pad, saved_W), (H_pad, saved_H) = (stacked_forward(w, F) for w, F in zip(ws, feats))
    W, H = W_pad[:, :n_f], H_pad[:, :n_t]
    if dense:
        flat = f_idx * n_t + t_idx
        Y = (W.T @ H).reshape(-1)[flat]
    else:
        Wg, Hg = W[:, f_idx], H[:, t_idx]
        Y = (Wg * Hg).sum(dim=0)
    value, dY = divergence_terms(V, Y, loss, eps)
    dY = dY * (1.0 / V.numel())
    if dense:
        A = torch.zeros(n_f * n_t, dtype=dY.dtype, device=dY.device).index_add(0, flat, dY).view(n_f, n_t)
        gW, gH = H @ A.T, W @ A
    else:
        gW = torch.zeros_like(W).index_add(1, f_idx, Hg * dY)
        gH = torch.zeros_like(H).index_add(1, t_idx, Wg * dY)
    grads = []
    for theta, layout, w, g, F, saved in zip(thetas, layouts, ws, (gW, gH), feats, (saved_W, saved_H)):
        grad = torch.empty_like(theta)
        g = torch.nn.functional.pad(g, (0, F.shape[2] - g.shape[1]))
        stacked_backward(w, weight_views(grad, layout), g, saved)
        grads.append(grad)
    if rprop is None:
        return grads[0], grads[1], value
    new_W = rprop_update(thetas[0], grads[0], states[0], states[1], etas=rprop[0], step_sizes=rprop[1])
    new_H = rprop_update(thetas[1], grads[1], states[2], states[3], etas=rprop[0], step_sizes=rprop[1])
    return new_W[0], new_H[0], (new_W[1], new_W[2], new_H[1], new_H[2]), value


def train_points_compiled(nets: torch.nn.ModuleDict, Ff: torch.Tensor, Ft: torch.Tensor, f_idx: torch.Tensor,
                          t_idx: torch.Tensor, V: torch.Tensor, *, loss: str, eps: float, optimizer: str, lr: float,
                          epochs: int, fraction: float, gen: torch.Generator,
                          callback: Callback | None = None) -> list[float]:
    """:func:`train_points` with each epoch compiled by :func:`torch.compile` (see :func:`train_grid_compiled`).

    The same draws of points as :func:`train_points` (the same generator
    calls), the same arithmetic up to rounding; falls back to
    :func:`train_points` with a warning where compiling fails.
    """
    n = V.numel()
    n_draw = max(1, int(round(fraction * n)))
    n_f, n_t = Ff.shape[2], Ft.shape[2]
    feats = (pad_points(Ff), pad_points(Ft))
    dense = dense_pairs(n_f, n_t, n_draw)
    layouts = (nets["W"].layout, nets["H"].layout)
    rprop = (ETAS, STEP_SIZES) if optimizer == "rprop" else None
    thetas = (nets["W"].theta.detach().clone(), nets["H"].theta.detach().clone())
    states = tuple(t for theta in thetas for t in (torch.zeros_like(theta), torch.full_like(theta, lr)))
    opt = None if rprop else adam([nets["W"].theta, nets["H"].theta], lr=lr)
    step = torch.compile(_points_epoch, dynamic=False, fullgraph=True)
    losses: list[float] = []
    clock = Clock()
    state_before = gen.get_state()
    for epoch in range(1, epochs + 1):
        fi, ti, v = _draw_points(f_idx, t_idx, V, n_draw, gen)
        try:
            out = step(thetas, feats, fi, ti, v, states, layouts, (n_f, n_t), dense, loss, eps, rprop)
        except Exception as err:  # noqa: BLE001 - compiler missing or unsupported: train uncompiled
            if epoch > 1:
                raise
            warnings.warn(f"torch.compile failed ({_root_cause(err)}); training without it", RuntimeWarning,
                          stacklevel=3)
            gen.set_state(state_before)  # give back this epoch's draw: the uncompiled loop makes it again
            return train_points(nets, Ff, Ft, f_idx, t_idx, V, loss=loss, eps=eps, optimizer=optimizer, lr=lr,
                                epochs=epochs, fraction=fraction, gen=gen, callback=callback)
        if rprop is not None:
            theta_W, theta_H, states, value = out
            thetas = (theta_W, theta_H)
        else:
            grad_W, grad_H, value = out
            nets["W"].theta.grad, nets["H"].theta.grad = grad_W, grad_H
            opt.step()
            thetas = (nets["W"].theta.detach(), nets["H"].theta.detach())
        losses.append(float(value) / v.numel() + data_term(v, loss, eps))
        if report_epoch(callback, epoch, epochs, losses[-1], clock):
            break
    with torch.no_grad():
        if rprop is not None:
            nets["W"].theta.copy_(thetas[0])
            nets["H"].theta.copy_(thetas[1])
        for net in nets.values():
            net.theta.grad = None
        Y = paired_model(nets["W"](feats[0])[:, :n_f], nets["H"](feats[1])[:, :n_t], f_idx, t_idx)
        losses.append(float(pointwise_loss(V.double(), Y.double(), loss, eps=eps)))
    return losses
