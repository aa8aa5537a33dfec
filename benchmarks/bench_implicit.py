"""iN-NMF training speed: batched implicit networks vs the reference formulation, side by side.

Grid mode: seconds per training step on a 1001 x 320 compressed magnitude
spectrogram (TIMIT speech, STFT 2000 / hop 1000 at 16 kHz, 320 frames), rank
20, hidden 64, 10 octaves. The reference formulation (written here, after the
reference recipe in papers/NOTES.md) has one small network per component, run
in a Python loop, and computes the Fourier features point by point in a
Python loop; its activations are a matrix trained by the same optimiser.

Points mode: seconds per training step on a hybrid point cloud of about 100k
points (STFT 128/32 + STFT 1024/256 + CQT of the same speech), rank 20, with
the package's method (each factor evaluated once per distinct coordinate,
then gathered) against evaluating every network at every point: (a) one
network per component in a Python loop (features vectorised), (b) the
package's batched networks without the deduplication.

Both comparisons have one more candidate, the package's training with
``ImplicitNMF(compile=True)`` (each epoch compiled by ``torch.compile``); its
first call, which compiles (or finds the graph in torch's on-disk cache), is
timed separately and left out of the per-step figure. ``--skip compiled``
leaves them out.

For the grid step it also reports the matrix-product FLOPs per step, the
achieved GFLOP/s and their share of a measured 2000^3 matrix-multiply peak.

Also plots a learned dictionary sampled at two STFT sizes.

Usage::

    python benchmarks/bench_implicit.py [--device cpu|cuda] [--rounds 3] [--out benchmarks/results]
        [--model saved-implicit-model/] [--plot-epochs 300] [--skip grid|compiled|points|plot]

Prints a table and writes ``bench_implicit.json`` and ``implicit_dictionary_sizes.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepnmf.audio import points as P
from deepnmf.audio.tf import stft_freqs
from deepnmf.experiments.transfer import load_speaker, timit_speakers
from deepnmf.models._implicit_training import train_grid, train_grid_compiled, train_points, train_points_compiled
from deepnmf.nn.implicit import ImplicitFactor, unique_coordinates
from deepnmf.pipelines.separation import compressed_spectrogram
from deepnmf.report.build import cpu_model

SR = 16000


# ------------------------------------------------------- reference formulation
class PerPointFourier(nn.Module):
    """Fourier features ``cos/sin(2^j pi x + b_j)`` built point by point in a Python loop (as the reference).

    Per point the reference multiplies its octave vector ``2^j`` by pi, then by
    the coordinate, then adds the phases: three tensor operations, kept here
    (sessions 1-2 folded pi into the octaves, one operation fewer per point:
    that reference step took 0.62x the time of this one in paired runs, so
    the speed-ups reported then were understated).
    """

    def __init__(self, n_octaves: int):
        super().__init__()
        self.register_buffer("octaves", 2.0 ** torch.arange(n_octaves))
        self.register_buffer("phase", torch.randn(n_octaves))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arg = torch.vstack([self.octaves * math.pi * x[i] + self.phase for i in range(x.shape[0])])  # point by point
        return torch.hstack([torch.cos(arg), torch.sin(arg)])  # (n, 2J)


class VectorFourier(PerPointFourier):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arg = x[:, None] * (self.octaves * math.pi) + self.phase
        return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


class ReferenceNetwork(nn.Module):
    """One component, as the reference recipe: features -> 64 -> 64 -> 64 -> 64 -> 1, sine after layers 2-4."""

    def __init__(self, n_octaves: int, hidden: int, *, per_point: bool):
        super().__init__()
        self.features = PerPointFourier(n_octaves) if per_point else VectorFourier(n_octaves)
        self.layers = nn.ModuleList([nn.Linear(2 * n_octaves, hidden), nn.Linear(hidden, hidden),
                                     nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.layers[0](self.features(x))
        for layer in self.layers[1:-1]:
            z = torch.sin(layer(z))
        return self.layers[-1](z)[:, 0]  # (n,)


def reference_grid_step_fn(X: torch.Tensor, f: torch.Tensor, rank: int, hidden: int, n_octaves: int):
    nets = nn.ModuleList([ReferenceNetwork(n_octaves, hidden, per_point=True) for _ in range(rank)]).to(X.device)
    H = torch.rand(X.shape[0], rank, device=X.device).requires_grad_(True)
    opt = torch.optim.Rprop([*nets.parameters(), H], lr=1e-3)
    splus = nn.Softplus()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        W = splus(torch.stack([net(f) for net in nets]))  # Python loop over components, (K, n_bins)
        Y = splus(H) @ W
        loss = torch.mean(X * torch.log((X + 1e-8) / (Y + 1e-8)) - X + Y)
        loss.backward()
        opt.step()

    return step


def reference_points_step_fn(V, tn, fn, rank: int, hidden: int, n_octaves: int):
    mk = lambda: nn.ModuleList([ReferenceNetwork(n_octaves, hidden, per_point=False) for _ in range(rank)])  # noqa: E731
    wnets, hnets = mk().to(V.device), mk().to(V.device)
    opt = torch.optim.Rprop([*wnets.parameters(), *hnets.parameters()], lr=1e-3)
    splus = nn.Softplus()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        W = splus(torch.stack([w(fn) for w in wnets]))  # every network at every point, (K, n_points)
        H = splus(torch.stack([h(tn) for h in hnets]))
        Y = (W * H).sum(0)
        loss = torch.mean(V * torch.log((V + 1e-8) / (Y + 1e-8)) - V + Y)
        loss.backward()
        opt.step()

    return step


# ------------------------------------------------------------ package method
def package_grid_step_fn(X: torch.Tensor, f: torch.Tensor, rank: int, hidden: int, n_octaves: int, *,
                         compiled: bool = False):
    net = ImplicitFactor(rank, n_octaves=n_octaves, hidden=hidden, generator=torch.Generator().manual_seed(0)).to(X.device)
    F = net.features(f)  # constant on the grid
    H = torch.rand(X.shape[0], rank, device=X.device).mul_(0.1)
    train = train_grid_compiled if compiled else train_grid

    def steps(n: int) -> None:
        train(net, F, H, X, loss="kl", eps=1e-8, optimizer="rprop", lr=1e-3, epochs=n)

    return steps


def package_points_step_fn(V, tn, fn, rank: int, hidden: int, n_octaves: int, *, dedup: bool,
                           compiled: bool = False):
    gen = torch.Generator().manual_seed(0)
    nets = nn.ModuleDict({k: ImplicitFactor(rank, n_octaves=n_octaves, hidden=hidden, generator=gen) for k in "WH"})
    nets = nets.to(V.device)
    if dedup:
        (t_u, t_idx), (f_u, f_idx) = unique_coordinates(tn), unique_coordinates(fn)
    else:
        t_u, t_idx = tn, torch.arange(tn.numel(), device=V.device)
        f_u, f_idx = fn, torch.arange(fn.numel(), device=V.device)
    Ff, Ft = nets["W"].features(f_u), nets["H"].features(t_u)

    def steps(n: int) -> None:
        train = train_points_compiled if compiled else train_points
        train(nets, Ff, Ft, f_idx, t_idx, V, loss="kl", eps=1e-8, optimizer="rprop", lr=1e-3, epochs=n,
                      fraction=1.0, gen=gen)

    return steps, (t_u.numel(), f_u.numel())


# ------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_step(fn, n_steps: int, device: torch.device, *, batched: bool) -> float:
    sync(device)
    t0 = time.perf_counter()
    if batched:
        fn(n_steps)
    else:
        for _ in range(n_steps):
            fn()
    sync(device)
    return (time.perf_counter() - t0) / n_steps


def first_call_seconds(steps, device: torch.device) -> float:
    """Seconds of a compiled candidate's first step: it compiles (or finds the graph in torch's on-disk cache)."""
    return per_step(steps, 1, device, batched=True)


def interleaved(candidates: dict, rounds: int, device: torch.device) -> dict[str, float]:
    """Median seconds per step of each candidate, measured in alternating rounds (after one warm-up)."""
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for name, (fn, n, batched) in candidates.items():
        per_step(fn, 1, device, batched=batched)  # warm-up
    for _ in range(rounds):
        for name, (fn, n, batched) in candidates.items():
            times[name].append(per_step(fn, n, device, batched=batched))
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------------- main
def speech(seconds: float) -> np.ndarray:
    x = load_speaker(timit_speakers()[0])
    return x[: int(seconds * SR)]


REF_GRID = "reference (loop over components, per-point features)"
OURS_GRID = "deepnmf grid mode (batched, features precomputed)"
OURS_GRID_COMPILED = "deepnmf grid mode, compile=True (torch.compile)"
OURS_POINTS = "deepnmf points mode (unique coordinates + gather)"
OURS_POINTS_COMPILED = "deepnmf points mode, compile=True (torch.compile)"


def bench_grid(device, rounds, rank=20, hidden=64, n_octaves=10, *, compiled=True) -> dict:
    X = compressed_spectrogram(speech(20.0), n_fft=2000)[:320]  # (320, 1001)
    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    f = torch.as_tensor(stft_freqs(2000, SR) / (SR / 2), dtype=torch.float32, device=device)
    cands = {
        REF_GRID: (reference_grid_step_fn(Xt, f, rank, hidden, n_octaves), 2, False),
        OURS_GRID: (package_grid_step_fn(Xt, f, rank, hidden, n_octaves), 20, True),
    }
    compile_s = None
    if compiled:
        fn = package_grid_step_fn(Xt, f, rank, hidden, n_octaves, compiled=True)
        compile_s = first_call_seconds(fn, device)
        cands[OURS_GRID_COMPILED] = (fn, 20, True)
    res = interleaved(cands, rounds, device)
    flops = grid_step_flops(X.shape[0], X.shape[1], rank, hidden, n_octaves)
    out = {"shape": list(X.shape), "rank": rank, "hidden": hidden, "n_octaves": n_octaves,
           "seconds_per_step": res, "speedup": res[REF_GRID] / res[OURS_GRID],
           "matrix_product_gflop_per_step": flops / 1e9, "achieved_gflop_per_s": flops / res[OURS_GRID] / 1e9}
    if compiled:
        out.update(speedup_compiled=res[REF_GRID] / res[OURS_GRID_COMPILED], first_compiled_call_s=compile_s,
                   achieved_gflop_per_s_compiled=flops / res[OURS_GRID_COMPILED] / 1e9)
    return out


def grid_step_flops(n_frames: int, n_bins: int, rank: int, hidden: int, n_octaves: int, n_layers: int = 3) -> float:
    """Multiply-add FLOPs of the matrix products of one grid training step (elementwise work not counted).

    Forward: ``2J -> h``, ``n_layers - 1`` times ``h -> h``, ``h -> 1`` per
    component and bin. Backward: a weight-gradient product per layer and an
    input-gradient product per layer but the first. Objective: ``H W``, the
    atoms' gradient ``H^T G`` and the activation update's ``R W^T``.
    """
    d, h = 2 * n_octaves, hidden
    per_point = d * h + (n_layers - 1) * h * h + h  # forward multiply-adds per component and bin
    backward = per_point + (n_layers - 1) * h * h + h  # weight gradients, then input gradients
    network = 2 * rank * n_bins * (per_point + backward)
    objective = 3 * 2 * n_frames * rank * n_bins
    return float(network + objective)


def matmul_peak(device: torch.device) -> float:
    """Best float32 GFLOP/s of a 2000^3 torch product on ``device``."""
    A = torch.rand(2000, 2000, device=device)
    best = math.inf
    for _ in range(6):
        sync(device)
        t0 = time.perf_counter()
        A @ A
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2000**3 / best / 1e9


def bench_points(device, rounds, rank=20, hidden=64, n_octaves=10, seconds=1.3, *, compiled=True) -> dict:
    x = speech(seconds)
    cloud = P.hybrid(x, SR, stfts=((128, 32), (1024, 256)), cqt={"hop": 256, "n_bins": 84})
    tn, fn = (torch.as_tensor(c, dtype=torch.float32, device=device) for c in cloud.coords())
    V = torch.as_tensor(cloud.value, dtype=torch.float32, device=device)
    ours, uniq = package_points_step_fn(V, tn, fn, rank, hidden, n_octaves, dedup=True)
    nodedup, _ = package_points_step_fn(V, tn, fn, rank, hidden, n_octaves, dedup=False)
    cands = {
        "every network at every point (loop over components)": (reference_points_step_fn(V, tn, fn, rank, hidden, n_octaves), 1, False),
        "batched networks at every point (no dedup)": (nodedup, 1, True),
        OURS_POINTS: (ours, 10, True),
    }
    compile_s = None
    if compiled:
        fn_c, _ = package_points_step_fn(V, tn, fn, rank, hidden, n_octaves, dedup=True, compiled=True)
        compile_s = first_call_seconds(fn_c, device)
        cands[OURS_POINTS_COMPILED] = (fn_c, 10, True)
    res = interleaved(cands, rounds, device)
    base, batched_all, pkg = (res[k] for k in list(cands)[:3])
    out = {"n_points": len(cloud), "groups": list(cloud.groups), "unique_times": uniq[0], "unique_freqs": uniq[1],
           "rank": rank, "seconds_per_step": res, "speedup": base / pkg, "speedup_vs_batched_all_points": batched_all / pkg}
    if compiled:
        out.update(speedup_compiled=base / res[OURS_POINTS_COMPILED], first_compiled_call_s=compile_s)
    return out


def plot_dictionary(out: Path, model_path: str | None, epochs: int, device: str) -> Path:
    from deepnmf import ImplicitNMF
    from deepnmf.plotting.implicit import plot_dictionary_at_sizes

    if model_path:
        model = ImplicitNMF.load(model_path)
    else:
        X = compressed_spectrogram(speech(20.0), n_fft=2000)
        model = ImplicitNMF(20, max_epochs=epochs, random_state=0, device=device).fit(X, freqs=stft_freqs(2000, SR), sr=SR)
    return plot_dictionary_at_sizes(model, (1000, 2500), SR, out / "implicit_dictionary_sizes.png", fmax=4000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--model", default=None, help="saved ImplicitNMF to plot (default: train one)")
    ap.add_argument("--plot-epochs", type=int, default=300)
    ap.add_argument("--skip", choices=["grid", "compiled", "points", "plot"], action="append", default=[],
                    help="parts to leave out (compiled: the torch.compile grid candidate)")
    args = ap.parse_args()
    device = torch.device(args.device)
    result = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": cpu_model(), "matmul_peak_gflop_per_s": matmul_peak(device)}
    print(f"float32 matmul peak (2000^3, torch): {result['matmul_peak_gflop_per_s']:.0f} GFLOP/s", flush=True)
    if "grid" not in args.skip:
        result["grid"] = bench_grid(device, args.rounds, compiled="compiled" not in args.skip)
        result["grid"]["percent_of_peak"] = 100 * result["grid"]["achieved_gflop_per_s"] / result["matmul_peak_gflop_per_s"]
        print(json.dumps(result["grid"], indent=1), flush=True)
    if "points" not in args.skip:
        result["points"] = bench_points(device, args.rounds, compiled="compiled" not in args.skip)
        print(json.dumps(result["points"], indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if "plot" not in args.skip:
        result["figure"] = str(plot_dictionary(args.out, args.model, args.plot_epochs, args.device))
    (args.out / f"bench_implicit_{device.type}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
