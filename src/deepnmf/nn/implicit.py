"""Implicit factor networks: many small coordinate MLPs evaluated at once.

An implicit factor is a set of ``K`` nonnegative functions of one scalar
coordinate, ``g_k(x) = softplus(MLP_k(phi(x)))`` with ``x`` a normalised time
or frequency (see :mod:`deepnmf.audio.points` for the one normalisation the
package uses: ``t / duration`` and ``f / (sr / 2)``).

- ``phi`` are Fourier features, ``cos(2^j pi x + b_kj)`` and ``sin(2^j pi x + b_kj)``
  for ``j = 0 .. n_octaves - 1``, with fixed random phases ``b_kj ~ N(0, 1)``
  drawn once per component (as in the reference recipe);
- each ``MLP_k`` maps the ``2 n_octaves`` features through ``n_layers`` sine
  layers of ``hidden`` units to one output.

The reference recipe writes its MLP as ``20 -> 64 -> 64 -> 64 -> 64 -> 1``
with sine activations after the second, third and fourth linear layers only:
its first two linear layers compose into a single linear map, so the same
functions are ``sin`` layers ``20 -> 64 -> 64 -> 64`` then ``64 -> 1``, which
is what ``n_layers=3`` builds (one ``64 x 64`` product fewer per evaluation).

All ``K`` networks share their architecture, so their weights are stacked in a
handful of large tensors and evaluated by batched matrix products
(``torch.bmm``): there is no Python loop over components or over points.
On a fixed grid the Fourier features are constant and are computed once
(:class:`ImplicitFactor` takes them as input). For points lying on a union of
grids, :func:`unique_coordinates` finds the distinct coordinates so that every
factor is evaluated once per coordinate and gathered back.

Orientation: a factor evaluated at ``n`` coordinates is ``(n_components, n)``,
the orientation of ``components_``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from deepnmf.divergences import IMPLICIT_EPS, beta_divergence
from deepnmf.exceptions import DataError, ParameterError

#: iN-NMF's loss names (short names of beta 1, 2, 0; see :mod:`deepnmf.divergences`)
LOSSES = ("kl", "frobenius", "is")


def fourier_features(x: torch.Tensor, n_octaves: int, *, phase: torch.Tensor | None = None) -> torch.Tensor:
    """Fourier features of normalised coordinates.

    Parameters
    ----------
    x : torch.Tensor [shape=(n,)]
        Coordinates, normally in ``[0, 1]``.
    n_octaves : int
        Number of octaves ``J``; frequencies ``2^j pi`` for ``j < J``.
    phase : torch.Tensor [shape=(n_octaves,) or (n_components, n_octaves)], optional
        Phase offsets ``b_j`` (default zero), shared or one row per component.

    Returns
    -------
    F : torch.Tensor [shape=(n, 2 * n_octaves) or (n_components, n, 2 * n_octaves)]
        ``[cos(2^j pi x + b_j) for j] + [sin(2^j pi x + b_j) for j]``.
    """
    if x.ndim != 1:
        raise DataError(f"coordinates must be 1-D, got shape {tuple(x.shape)}")
    scales = math.pi * torch.pow(2.0, torch.arange(n_octaves, dtype=x.dtype, device=x.device))
    arg = x[:, None] * scales  # (n, J)
    if phase is not None:
        phase = phase.to(dtype=x.dtype, device=x.device)
        arg = arg + (phase[:, None, :] if phase.ndim == 2 else phase)  # (n, J) or (K, n, J)
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


def unique_coordinates(x: torch.Tensor, *, decimals: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct coordinates and, for every input, the index of its coordinate.

    Coordinates equal after rounding to ``decimals`` are merged (frame times of
    two STFTs with hops 32 and 256 coincide, for example).

    Parameters
    ----------
    x : torch.Tensor [shape=(n,)]

    Returns
    -------
    values : torch.Tensor [shape=(n_unique,)]
    inverse : torch.Tensor [shape=(n,), int64]
        ``values[inverse]`` equals ``x`` up to the rounding.
    """
    key = torch.round(x.to(torch.float64) * 10**decimals)
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    return (uniq / 10**decimals).to(x.dtype), inverse


def weight_views(theta: torch.Tensor, layout: tuple[tuple[str, tuple[int, ...]], ...]) -> dict[str, torch.Tensor]:
    """Named views of a flat parameter vector.

    Parameters
    ----------
    theta : torch.Tensor [shape=(n_parameters,)]
    layout : tuple of (name, shape)
        In storage order (:attr:`ImplicitFactor.layout`).

    Returns
    -------
    w : dict of str to torch.Tensor
    """
    out, offset = {}, 0
    for name, shape in layout:
        n = math.prod(shape)
        out[name] = theta[offset:offset + n].view(shape)
        offset += n
    return out


def sine_layers(w: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, bias)`` of each sine layer, input first, from :func:`weight_views`' dictionary."""
    return [(w["w_in"], w["b_in"])] + [(w["w_hidden"][i], w["b_hidden"][i]) for i in range(w["w_hidden"].shape[0])]


def stacked_forward(w: dict[str, torch.Tensor], F: torch.Tensor, *,
                    workspace: "Workspace | None" = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Outputs of stacked networks, and the states their reverse mode needs (no autograd).

    Parameters
    ----------
    w : dict of str to torch.Tensor
        The networks' weights (:func:`weight_views`, shapes in :class:`ImplicitFactor`).
    F : torch.Tensor [shape=(n_components, 2 * n_octaves, n)]
        Features (:meth:`ImplicitFactor.features`).
    workspace : Workspace, optional
        Buffers for the states (see :class:`Workspace`); ``None`` allocates
        fresh tensors (and is what :func:`torch.compile` can trace).

    Returns
    -------
    G : torch.Tensor [shape=(n_components, n)]
        ``softplus`` outputs.
    saved : tuple of torch.Tensor
        Sine-layer inputs and outputs ``z``, cosines of the pre-activations and
        the output's sigmoid, for :func:`stacked_backward`.
    """
    z = F
    K, n = z.shape[0], z.shape[2]
    zs, cs = [z], []
    for i, (W, b) in enumerate(sine_layers(w)):
        a = _buffer(workspace, ("a", i), (K, W.shape[1], n), z)
        torch.bmm(W, z, out=a).add_(b)  # (K, h, n)
        z = torch.sin(a, out=_buffer(workspace, ("z", i), a.shape, z))
        cs.append(torch.cos(a, out=a))  # over the pre-activation while it is in cache
        zs.append(z)
    out = torch.baddbmm(w["b_out"], w["w_out"], z)  # (K, 1, n)
    return nn.functional.softplus(out.squeeze(1)), (*zs, *cs, torch.sigmoid(out))  # softplus' = sigmoid


def stacked_backward(w: dict[str, torch.Tensor], gw: dict[str, torch.Tensor], grad: torch.Tensor,
                     saved: tuple[torch.Tensor, ...], *,
                     workspace: "Workspace | None" = None, input_grad: bool = False) -> torch.Tensor | None:
    """Reverse mode of :func:`stacked_forward`: the weight gradients, written into ``gw``.

    Parameters
    ----------
    w, workspace
        As given to :func:`stacked_forward`.
    gw : dict of str to torch.Tensor
        Gradient tensors shaped as ``w`` (for example :func:`weight_views`
        of a flat gradient); every entry is overwritten.
    grad : torch.Tensor [shape=(n_components, n)]
        Gradient with respect to the outputs.
    saved : tuple of torch.Tensor
        Second output of :func:`stacked_forward`.
    input_grad : bool
        Also return the gradient with respect to the features.

    Returns
    -------
    gF : torch.Tensor [shape=(n_components, 2 * n_octaves, n)] or None
    """
    layers, grads = sine_layers(w), sine_layers(gw)
    n_sine = len(layers)
    zs, cs, sig = saved[:n_sine + 1], saved[n_sine + 1:-1], saved[-1]
    go = grad.unsqueeze(1) * sig  # (K, 1, n)
    torch.bmm(go, zs[-1].transpose(1, 2), out=gw["w_out"])
    torch.sum(go, dim=2, keepdim=True, out=gw["b_out"])
    ga = torch.mul(w["w_out"].transpose(1, 2), go, out=_buffer(workspace, ("g", 0), cs[-1].shape, go))
    ga.mul_(cs[-1])  # (K, h, n); the output layer's backward as a broadcast product
    for i in range(n_sine - 1, -1, -1):
        gW, gb = grads[i]
        torch.bmm(ga, zs[i].transpose(1, 2), out=gW)
        torch.sum(ga, dim=2, keepdim=True, out=gb)
        if i > 0:  # buffers g1 and g2 alternate: a product cannot write over its input
            out = _buffer(workspace, ("g", i % 2 + 1), cs[i - 1].shape, ga)
            ga = torch.bmm(layers[i][0].transpose(1, 2), ga, out=out).mul_(cs[i - 1])
    return torch.bmm(layers[0][0].transpose(1, 2), ga) if input_grad else None


class _StackedMLP(torch.autograd.Function):
    """All ``K`` networks of an :class:`ImplicitFactor` as one autograd node.

    ``apply(theta, F, factor, workspace)`` returns ``softplus(out)`` ``(K, n)``
    for features ``F`` ``(K, 2J, n)``; the gradient flows to ``theta`` (flat, in
    the layout of ``factor``) and to ``F`` if it requires one. Forward and
    reverse mode are written out (:func:`stacked_forward`,
    :func:`stacked_backward`), with choices measured on the project's 2-core
    machines: ``bmm`` then an in-place bias add (``baddbmm`` with a
    broadcast bias was 1.7x slower); the cosine each backward product needs
    is computed in the forward pass, over the pre-activation while that is
    still in cache; the output layer's backward is a broadcast product, not a
    rank-1 matrix product; weight gradients are written straight into the
    flat gradient. A grid training step (20 components, 1001 bins, hidden
    64) took 0.64-0.76x (median 0.70x) the time of the per-layer autograd
    functions this replaced (interleaved runs, ``docs/implicit-nmf.md``).
    """

    @staticmethod
    def forward(ctx, theta: torch.Tensor, F: torch.Tensor, factor: "ImplicitFactor",
                workspace: "Workspace | None") -> torch.Tensor:
        G, saved = stacked_forward(factor.weights(theta), F, workspace=workspace)
        ctx.save_for_backward(theta, *saved)  # version counters guard the workspace's reuse
        ctx.factor, ctx.workspace = factor, workspace
        return G

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        theta, *saved = ctx.saved_tensors
        flat = torch.empty_like(theta)
        gF = stacked_backward(ctx.factor.weights(theta), ctx.factor.weights(flat), grad, tuple(saved),
                              workspace=ctx.workspace, input_grad=ctx.needs_input_grad[1])
        return flat, gF, None, None


class Workspace:
    """Buffers reused by repeated evaluations of an :class:`ImplicitFactor` (a training loop).

    Large intermediate states (``(K, hidden, n)`` each) are written into the
    same memory at every step instead of freshly allocated ones: fresh
    multi-megabyte blocks come from the operating system as zeroed pages
    (1654 page faults per grid training step without a workspace, 499 with
    one; the step took 0.94x the time on the project's machine). A state saved for the backward pass of one evaluation is
    overwritten by the next evaluation with the same workspace, so use one
    workspace per loop that runs backward before evaluating again; torch's
    version counters make a backward through an overwritten state raise an
    error instead of returning wrong gradients.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, the same one for the same key."""
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._buffers[key] = like.new_empty(shape)
        return buf


def _buffer(workspace: Workspace | None, key: tuple, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A fresh tensor without a workspace, else the workspace's buffer for ``key``."""
    return like.new_empty(shape) if workspace is None else workspace.get(key, shape, like)


class ImplicitFactor(nn.Module):
    """``K`` coordinate MLPs with sine activations and a softplus output, stacked.

    Parameters
    ----------
    n_components : int
        Number of functions ``K``.
    n_octaves : int
        Fourier feature octaves; the input size is ``2 * n_octaves``.
    hidden : int
        Width of each hidden layer.
    n_layers : int
        Number of sine layers (>= 1); 3 gives the reference recipe's functions
        (see the module notes).
    generator : torch.Generator, optional
        Source of the initial weights.

    Notes
    -----
    The Fourier phases are a buffer ``phase (K, J)`` drawn from
    ``generator`` (standard normal). All weights live in one flat parameter ``theta`` (so an Rprop or Adam step
    is a few vectorised operations, not a loop over many small tensors); the
    named weights are views of it, stored output-major as in
    :class:`torch.nn.Linear`: ``w_in (K, h, 2J)``, ``b_in (K, h, 1)``,
    ``w_hidden (n_layers - 1, K, h, h)``, ``b_hidden (n_layers - 1, K, h, 1)``,
    ``w_out (K, 1, h)`` and ``b_out (K, 1, 1)``, initialised as
    :class:`torch.nn.Linear` is (uniform in ``+-1/sqrt(fan_in)``). Hidden
    states are kept as ``(K, h, n)`` (units x points): batched products of
    ``(h, h)`` weights with ``(h, n)`` states are about 2.5x faster on CPU than
    the ``(n, h) @ (h, h)`` layout.
    """

    def __init__(
        self,
        n_components: int,
        *,
        n_octaves: int = 10,
        hidden: int = 64,
        n_layers: int = 3,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ParameterError(f"n_layers must be >= 1, got {n_layers}")
        self.n_components, self.n_octaves, self.hidden, self.n_layers = n_components, n_octaves, hidden, n_layers
        K, d, h, L = n_components, 2 * n_octaves, hidden, n_layers - 1
        # name -> (shape, fan_in)
        self._layout = {
            "w_in": ((K, h, d), d), "b_in": ((K, h, 1), d),
            "w_hidden": ((L, K, h, h), h), "b_hidden": ((L, K, h, 1), h),
            "w_out": ((K, 1, h), h), "b_out": ((K, 1, 1), h),
        }
        size = sum(math.prod(shape) for shape, _ in self._layout.values())
        self.theta = nn.Parameter(torch.empty(size, dtype=dtype, device=device))
        self.register_buffer("phase", torch.zeros(K, n_octaves, dtype=dtype, device=device))
        self.reset_parameters(generator)

    @property
    def layout(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(name, shape)`` of every weight tensor in ``theta``, in storage order (plain values)."""
        return tuple((name, shape) for name, (shape, _) in self._layout.items())

    def weights(self, theta: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The named weights as views of ``theta`` (default: the module's; shapes in the class notes)."""
        return weight_views(self.theta if theta is None else theta, self.layout)

    def sine_layers(self, w: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(weight, bias)`` of each sine layer, input first, from :meth:`weights`' dictionary."""
        return sine_layers(w)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight uniformly in ``+-1/sqrt(fan_in)`` (as ``nn.Linear``) and the phases from N(0, 1)."""
        gen_device = "cpu" if generator is None else generator.device
        self.phase.copy_(torch.randn(self.phase.shape, generator=generator, dtype=self.phase.dtype, device=gen_device))
        views = self.weights()
        for name, (_, fan_in) in self._layout.items():
            p = views[name]
            u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=gen_device)
            p.copy_((2 * u - 1) / math.sqrt(fan_in))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Fourier features of ``x`` ``(n,)`` with each component's phases, as ``(K, 2 * n_octaves, n)``.

        This is the input :meth:`forward` takes; on a fixed grid compute it once.
        """
        return fourier_features(x, self.n_octaves, phase=self.phase).transpose(1, 2).contiguous()

    def forward(self, F: torch.Tensor, *, workspace: Workspace | None = None) -> torch.Tensor:
        """Evaluate every component on precomputed features.

        Parameters
        ----------
        F : torch.Tensor [shape=(n_components, 2 * n_octaves, n)]
            Output of :meth:`features` (constant on a fixed grid: compute once).
        workspace : Workspace, optional
            Buffers to reuse for the intermediate states (training loops; see :class:`Workspace`).

        Returns
        -------
        G : torch.Tensor [shape=(n_components, n)]
            Nonnegative function values.
        """
        return _StackedMLP.apply(self.theta, F, self, workspace)

    def at(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate at coordinates ``x`` ``(n,)``; returns ``(n_components, n)``."""
        return self(self.features(x))

    def at_unique(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate at ``x`` ``(n,)`` once per distinct coordinate, then gather; ``(n_components, n)``."""
        values, inverse = unique_coordinates(x)
        return self.at(values)[:, inverse]

    def scale_output(self, factor: float) -> None:
        """Shift the output bias so that outputs are multiplied by about ``factor`` where softplus is linear."""
        with torch.no_grad():
            self.weights()["b_out"].add_(math.log(factor))


def pointwise_loss(X: torch.Tensor, Y: torch.Tensor, loss: str, *, eps: float = IMPLICIT_EPS) -> torch.Tensor:
    """Mean divergence between data ``X`` and a nonnegative model ``Y`` (same shape).

    :func:`deepnmf.divergences.beta_divergence` averaged over all entries:
    ``"kl"`` (generalised Kullback-Leibler), ``"frobenius"`` (half squared
    error), ``"is"`` (Itakura-Saito), or any other name or beta it knows;
    ``eps`` floors the model (and the data for ``"is"``) inside logs and
    ratios only (``floor_linear=False``: the gradient is that of
    :func:`deepnmf.divergences.divergence_terms`).

    Parameters
    ----------
    X, Y : torch.Tensor [shape=(...)]

    Returns
    -------
    loss : torch.Tensor [shape=()]
    """
    return beta_divergence(X, Y, loss, eps=eps, reduction="mean", floor_linear=False)


def grid_reconstruction(H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``H @ W``: activations ``(n_frames, K)`` times atoms ``(K, n_bins)`` -> ``(n_frames, n_bins)``."""
    return H @ W


def points_reconstruction(Wf: torch.Tensor, Ht: torch.Tensor) -> torch.Tensor:
    """``sum_k W_k(f_i) H_k(t_i)`` for paired evaluations ``Wf, Ht`` ``(K, n)`` -> ``(n,)``."""
    return (Wf * Ht).sum(dim=0)


#: Largest ``n_freqs * n_times / n_points`` for which :func:`paired_model` goes through the dense product.
DENSE_PAIR_RATIO = 32
#: Largest dense product :func:`paired_model` forms (entries; 128 MB in float32).
MAX_DENSE_PAIRS = 1 << 25


def dense_pairs(n_freqs: int, n_times: int, n_points: int) -> bool:
    """Whether :func:`paired_model` goes through the dense product for these sizes."""
    return n_freqs * n_times <= min(DENSE_PAIR_RATIO * max(n_points, 1), MAX_DENSE_PAIRS)


def paired_model(W: torch.Tensor, H: torch.Tensor, f_idx: torch.Tensor, t_idx: torch.Tensor) -> torch.Tensor:
    """``Y_i = sum_k W[k, f_idx[i]] H[k, t_idx[i]]`` for factors evaluated at distinct coordinates.

    ``W`` ``(K, n_freqs)`` and ``H`` ``(K, n_times)`` hold the factors at the
    distinct frequencies and times, the index vectors ``(n,)`` map every point
    to them. Two equivalent evaluations, chosen by size:

    - points on a union of a few grids share few distinct coordinates: the
      dense product ``P = W^T H`` ``(n_freqs, n_times)`` is read at the
      points, and the backward pass scatters the point gradients into one
      ``(n_freqs, n_times)`` matrix ``A`` (``dW = H A^T``, ``dH = W A``):
      three small matrix products and two passes over ``n`` scalars, instead
      of gathering and scattering ``(n, K)`` rows (the scatter with repeated
      indices alone took a third of a points-mode step on the 91k-point
      benchmark cloud);
    - otherwise (``n_freqs * n_times > DENSE_PAIR_RATIO * n`` or above
      ``MAX_DENSE_PAIRS``, for example spectral peaks with many distinct
      frequencies): rows gathered per point.

    Returns
    -------
    Y : torch.Tensor [shape=(n,)]
    """
    n_f, n_t = W.shape[1], H.shape[1]
    if dense_pairs(n_f, n_t, f_idx.numel()):
        return _DensePairs.apply(W, H, f_idx * n_t + t_idx)
    return points_reconstruction(W[:, f_idx], H[:, t_idx])


class _DensePairs(torch.autograd.Function):
    """``(W^T H).flatten()[flat]`` with a backward that scatters into one dense matrix (see :func:`paired_model`)."""

    @staticmethod
    def forward(ctx, W: torch.Tensor, H: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(W, H, flat)
        return (W.T @ H).view(-1).index_select(0, flat)  # (n,)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        W, H, flat = ctx.saved_tensors
        A = grad.new_zeros(W.shape[1] * H.shape[1]).index_add_(0, flat, grad).view(W.shape[1], H.shape[1])
        gW = H @ A.T if ctx.needs_input_grad[0] else None  # (K, n_freqs)
        gH = W @ A if ctx.needs_input_grad[1] else None  # (K, n_times)
        return gW, gH, None
