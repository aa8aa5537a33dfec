"""Fused CPU kernels (numba) for the implicit networks' training loop.

The implicit networks spend much of a training step in elementwise passes
over their ``(K, hidden, n)`` states: bias, sine and cosine in the forward
pass; cosine scaling and bias-gradient sums in the reverse pass; and a dozen
passes of Rprop over the flat weights. Each of those is memory traffic (and,
for sine and cosine, arithmetic) over several megabytes. The kernels here do
each group in one pass, split over threads by rows:

- :func:`sine_activation`: ``z = sin(a + b)`` and ``c = cos(a + b)`` together,
  sharing one argument reduction (torch: an add, a sine and a cosine pass);
- :func:`scale_rowsum` and :func:`outer_scale_rowsum`: ``g *= c`` (or
  ``g = w go c``) and the row sums of the result, the bias gradient;
- :func:`rprop_step`: :class:`torch.optim.Rprop`'s step in one pass.

Every function takes torch tensors and falls back to torch (or numpy)
operations when the kernels do not apply: numba missing, :data:`ENABLED`
false (or the environment variable ``DEEPNMF_FUSED=0``), tensors not on the
CPU, not contiguous, or (sine and cosine) not float32.

Sine and cosine (float32): the argument is reduced by ``k = rint(2 x / pi)``,
``r = x - k pi/2`` with pi/2 split in three float32 parts whose first two have
12 significant bits (so ``k * part`` is exact for ``|k| < 4096``), and the
Taylor polynomials of degree 9 (sine) and 10 (cosine) are evaluated at ``r``
(``|r| <= pi/4``; truncation below 2e-9), then the quadrant of ``k`` picks
and signs them. The result is within two float32 ulps of 1
(tested against float64): the caller passes a bound of ``|a + b|`` and
beyond ``4096`` torch computes sine and cosine instead. The kernels are
compiled on first use and cached on disk by numba.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
import torch

ENABLED = os.environ.get("DEEPNMF_FUSED", "1") != "0"
"""Use the numba kernels where they apply (set to False to compare with the torch path)."""

BIG_ARGUMENT = 4096.0
"""Arguments beyond this magnitude are reduced by torch instead (see the module notes)."""

_FLOAT32_TRAILING_ZEROS = np.uint32(0xFFFFF000)  # keep 12 significant bits of a float32


def _split_half_pi() -> tuple[np.float32, np.float32, np.float32]:
    """pi/2 as ``P1 + P2 + P3`` in float32, ``P1`` and ``P2`` with 12 significant bits."""
    def head(x: float) -> np.float32:
        return (np.array([x], dtype=np.float32).view(np.uint32) & _FLOAT32_TRAILING_ZEROS).view(np.float32)[0]
    p1 = head(math.pi / 2)
    p2 = head(math.pi / 2 - float(p1))
    p3 = np.float32(math.pi / 2 - float(p1) - float(p2))
    return p1, p2, p3


@lru_cache(maxsize=1)
def _kernels():
    """Compile (or load from numba's cache) the kernels; None if numba cannot be imported."""
    try:
        import numba as nb
    except ImportError:  # pragma: no cover - numba comes with librosa
        return None
    f32 = np.float32
    P1, P2, P3 = _split_half_pi()
    TWO_OVER_PI, ONE = f32(2 / math.pi), f32(1.0)
    # Taylor coefficients of sin (r^3 .. r^9) and cos (r^2 .. r^10)
    S1, S2, S3, S4 = (f32((-1) ** i / math.factorial(2 * i + 1)) for i in range(1, 5))
    C1, C2, C3, C4, C5 = (f32((-1) ** i / math.factorial(2 * i)) for i in range(1, 6))
    exact = {"nsz", "arcp", "contract"}  # no reassociation: the argument reduction relies on the order
    sums = {"nsz", "arcp", "contract", "reassoc"}  # lets the row sums run on several vector accumulators

    @nb.njit(parallel=True, fastmath=exact, cache=True)
    def sincos_rows(a, b, z, c):  # pragma: no cover - compiled
        rows, n = a.shape
        for i in nb.prange(rows):
            bi = b[i]
            for j in range(n):
                x = a[i, j] + bi
                k = np.rint(x * TWO_OVER_PI)
                r = ((x - k * P1) - k * P2) - k * P3
                q = np.int32(k)
                r2 = r * r
                s = r + r * r2 * (S1 + r2 * (S2 + r2 * (S3 + r2 * S4)))
                co = ONE + r2 * (C1 + r2 * (C2 + r2 * (C3 + r2 * (C4 + r2 * C5))))
                odd = (q & 1) != 0
                sv = co if odd else s
                cv = s if odd else co
                z[i, j] = -sv if (q & 2) != 0 else sv
                c[i, j] = -cv if ((q + 1) & 2) != 0 else cv

    @nb.njit(parallel=True, fastmath=sums, cache=True)
    def scale_rowsum_rows(g, c, gb):  # pragma: no cover - compiled
        rows, n = g.shape
        for i in nb.prange(rows):
            acc = g.dtype.type(0)
            for j in range(n):
                v = g[i, j] * c[i, j]
                g[i, j] = v
                acc += v
            gb[i] = acc

    @nb.njit(parallel=True, fastmath=sums, cache=True)
    def outer_scale_rowsum_rows(w, go, c, g, gb, h):  # pragma: no cover - compiled
        rows, n = g.shape
        for i in nb.prange(rows):
            wi = w[i]
            gk = go[i // h]
            acc = g.dtype.type(0)
            for j in range(n):
                v = wi * gk[j] * c[i, j]
                g[i, j] = v
                acc += v
            gb[i] = acc

    @nb.njit(parallel=True, cache=True)
    def rprop(p, g, prev, size, eta_minus, eta_plus, lo, hi):  # pragma: no cover - compiled
        for i in nb.prange(p.shape[0]):
            gi = g[i]
            prod = gi * prev[i]
            s = size[i]
            if prod > 0:
                s = s * eta_plus
            elif prod < 0:
                s = s * eta_minus
                gi = gi * 0  # after a sign change: no move, and none counted next time
            s = min(max(s, lo), hi)
            size[i] = s
            prev[i] = gi
            if gi > 0:
                p[i] -= s
            elif gi < 0:
                p[i] += s
            elif gi != gi:  # NaN gradient: NaN parameter, as torch's sign(NaN) * step
                p[i] = gi

    return {"sincos": sincos_rows, "scale": scale_rowsum_rows, "outer": outer_scale_rowsum_rows, "rprop": rprop,
            "set_threads": nb.set_num_threads, "max_threads": nb.config.NUMBA_NUM_THREADS}


def available() -> bool:
    """Whether the numba kernels can be used in this process."""
    return ENABLED and _kernels() is not None


def abs_max(t: torch.Tensor) -> float:
    """``max |t|`` in one pass (torch.aminmax); NaN if ``t`` holds a NaN."""
    lo, hi = (float(v) for v in torch.aminmax(t.detach()))
    return max(-lo, hi) if lo == lo and hi == hi else math.nan


def sines_apply(t: torch.Tensor) -> bool:
    """Whether :func:`sine_activation` would use the kernel for tensors like ``t`` (CPU, float32)."""
    return ENABLED and t.device.type == "cpu" and t.dtype == torch.float32 and _kernels() is not None


def _applies(*tensors: torch.Tensor, float32: bool = False) -> bool:
    if not ENABLED:
        return False
    for t in tensors:
        if t.device.type != "cpu" or not t.is_contiguous():
            return False
        if float32 and t.dtype != torch.float32:
            return False
    if len({t.dtype for t in tensors}) != 1:
        return False
    return _kernels() is not None


def _threads() -> None:
    """Run numba's kernels on as many threads as torch uses (torch.set_num_threads, OMP_NUM_THREADS)."""
    k = _kernels()
    k["set_threads"](max(1, min(torch.get_num_threads(), k["max_threads"])))


def _written(*tensors: torch.Tensor) -> None:
    """Bump the autograd version counters of tensors written through numpy (as torch's in-place ops do),
    so that a backward pass through a state overwritten since its forward pass raises."""
    for t in tensors:
        torch.autograd.graph.increment_version(t)


def _rows(t: torch.Tensor) -> np.ndarray:
    return t.detach().reshape(-1, t.shape[-1]).numpy()


def sine_activation(a: torch.Tensor, b: torch.Tensor, z: torch.Tensor, c: torch.Tensor, *,
                    bound: float | None = None) -> None:
    """``z = sin(a + b)`` and ``c = cos(a + b)`` in place; ``a`` is left unchanged.

    Parameters
    ----------
    a : torch.Tensor [shape=(K, h, n)]
        Pre-activations without the bias.
    b : torch.Tensor [shape=(K, h, 1)]
        Biases.
    z, c : torch.Tensor [shape=(K, h, n)]
        Outputs, distinct from ``a`` and from each other.
    bound : float, optional
        An upper bound of ``|a + b|`` known to the caller (for a layer whose
        inputs lie in [-1, 1]: the largest row sum of ``|weights|`` plus
        ``|bias|``). Without it the bound is measured, an extra pass over ``a``.
        Beyond :data:`BIG_ARGUMENT` torch computes the result instead.
    """
    if _applies(a, b, z, c, float32=True):
        if bound is None:
            bound = abs_max(a) + abs_max(b)
        if bound <= BIG_ARGUMENT:  # also False for NaN: torch propagates it
            _threads()
            _kernels()["sincos"](_rows(a), b.detach().reshape(-1).numpy(), _rows(z), _rows(c))
            _written(z, c)
            return
    torch.add(a, b, out=c)
    torch.sin(c, out=z)
    c.cos_()


def scale_rowsum(g: torch.Tensor, c: torch.Tensor, gb: torch.Tensor) -> None:
    """``g *= c`` in place and ``gb = g.sum(-1)``.

    Parameters
    ----------
    g, c : torch.Tensor [shape=(K, h, n)]
    gb : torch.Tensor [shape=(K, h, 1)]
        Output (may be a view into a flat gradient).
    """
    if _applies(g, c, gb):
        _threads()
        _kernels()["scale"](_rows(g), _rows(c), gb.detach().view(-1).numpy())
        _written(g, gb)
        return
    g.mul_(c)
    torch.sum(g, dim=2, keepdim=True, out=gb)


def outer_scale_rowsum(w: torch.Tensor, go: torch.Tensor, c: torch.Tensor, g: torch.Tensor, gb: torch.Tensor) -> None:
    """``g = w * go * c`` (broadcast) and ``gb = g.sum(-1)``.

    Parameters
    ----------
    w : torch.Tensor [shape=(K, h, 1)]
    go : torch.Tensor [shape=(K, 1, n)]
    c, g : torch.Tensor [shape=(K, h, n)]
        ``g`` is the output.
    gb : torch.Tensor [shape=(K, h, 1)]
        Output.
    """
    if _applies(w, go, c, g, gb):
        _threads()
        _kernels()["outer"](w.detach().reshape(-1).numpy(), _rows(go), _rows(c), _rows(g),
                            gb.detach().view(-1).numpy(), g.shape[1])
        _written(g, gb)
        return
    torch.mul(w, go, out=g).mul_(c)
    torch.sum(g, dim=2, keepdim=True, out=gb)


def rprop_step(p: np.ndarray, g: np.ndarray, prev: np.ndarray, size: np.ndarray,
               eta_minus: float, eta_plus: float, lo: float, hi: float) -> bool:
    """One Rprop step in place on contiguous 1-D numpy arrays; False if the kernel does not apply."""
    if not available() or not all(x.flags.c_contiguous and x.dtype == p.dtype for x in (g, prev, size)):
        return False
    _threads()
    dt = p.dtype.type
    _kernels()["rprop"](p.reshape(-1), g.reshape(-1), prev.reshape(-1), size.reshape(-1),
                        dt(eta_minus), dt(eta_plus), dt(lo), dt(hi))
    return True
