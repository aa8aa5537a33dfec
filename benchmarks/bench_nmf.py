"""deepnmf's NMF solvers against scikit-learn's, side by side in one process.

Data: a spectrogram-shaped nonnegative float32 matrix (low rank plus noise),
rank 40, in both orientations: frames x bins (10000 x 513, this project's)
and bins x frames (513 x 10000). Every run starts from the same nndsvda
initialisation (scikit-learn's ``_initialize_nmf``).

For each loss the reference is scikit-learn's best solver for it (``cd`` for
Frobenius, ``mu`` for KL) run for ``--iterations`` iterations with
``tol=0``; its final objective is the target. Each deepnmf solver then runs
until its objective reaches the target (or scikit-learn's time has passed),
and the report gives

- the time to reach the target and its ratio to scikit-learn's time;
- milliseconds per iteration and achieved GFLOP/s of the matrix products
  (model count; Newton CD is reported without GFLOP/s) against the float32
  matrix-multiply peak measured in the same process;
- the objective each reaches.

Rounds are interleaved (reference, then each deepnmf solver, per
orientation and loss, ``--repeats`` times) and medians are reported: the
machine may be shared.

Usage::

    python benchmarks/bench_nmf.py [--repeats 3] [--iterations 200] [--out benchmarks/results/bench_nmf.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _beta_divergence, _initialize_nmf

from deepnmf.solvers.cd import coordinate_descent
from deepnmf.solvers.mu import multiplicative_updates

N_FRAMES, N_BINS, RANK = 10000, 513, 40
#: deepnmf solvers per loss: name -> (function, keyword arguments)
SOLVERS = {
    "frobenius": {"cd": (coordinate_descent, {}), "cd-accelerated": (coordinate_descent, {"inner": None}),
                  "mu": (multiplicative_updates, {})},
    "kullback-leibler": {"mu": (multiplicative_updates, {}), "newton-cd": (coordinate_descent, {})},
}
REFERENCE = {"frobenius": "cd", "kullback-leibler": "mu"}
BETA = {"frobenius": 2.0, "kullback-leibler": 1.0}


def make_data(seed: int = 0) -> np.ndarray:
    """Bins x frames (513 x 10000) low-rank-plus-noise float32 matrix."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.5, 1.0, size=(N_BINS, 60))
    H = rng.gamma(0.5, 1.0, size=(60, N_FRAMES))
    return (W @ H + 0.1 * rng.random((N_BINS, N_FRAMES))).astype(np.float32)


def matmul_peak() -> dict[str, float]:
    """Best float32 GFLOP/s of a 2000^3 product with numpy and with torch."""
    rng = np.random.default_rng(0)
    A = rng.random((2000, 2000), dtype=np.float32)
    out = {}
    for name, fn in (("numpy", lambda: A @ A), ("torch", lambda t=torch.from_numpy(A): t @ t)):
        fn()
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * 2000**3 / best / 1e9
    return out


def product_flops(solver: str, loss: str, shape: tuple[int, int]) -> float | None:
    """Matrix-product flops of one iteration (None for Newton CD, which forms no product)."""
    n, m = shape
    k = RANK
    if solver.startswith("cd") or (solver == "mu" and loss == "frobenius"):
        return 4 * n * m * k + 4 * (n + m) * k * k  # X H^T, W^T X and the Gram products
    if solver == "mu":
        return 8 * n * m * k  # W H twice and the two gradient products
    return None


def warm_up() -> None:
    """Load the compiled kernels and start the worker threads before anything is timed."""
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.random((300, 200), dtype=np.float32))
    for beta in (2.0, 1.0):
        coordinate_descent(X, torch.rand(300, 4, dtype=torch.float32), torch.rand(4, 200, dtype=torch.float32),
                           beta=beta, max_iter=2, tol=0)


def run_reference(X, W0, H0, loss: str, iterations: int) -> dict:
    est = SklearnNMF(RANK, solver=REFERENCE[loss], beta_loss=loss, init="custom", max_iter=iterations, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
        seconds = time.perf_counter() - t0
    objective = float(_beta_divergence(X, W, est.components_, BETA[loss]))
    return {"seconds": seconds, "objective": objective, "ms_per_iter": 1e3 * seconds / iterations}


def run_ours(X, W0, H0, loss: str, solver: str, target: float, cap_s: float, max_iter: int) -> dict:
    """Time until the objective reaches ``target`` (the callback stops the run there, or at ``cap_s``)."""
    fn, kwargs = SOLVERS[loss][solver]
    Xt, W, H = torch.from_numpy(X), torch.from_numpy(W0.copy()), torch.from_numpy(H0.copy())
    hit: dict = {}
    t0 = time.perf_counter()

    def callback(info):
        elapsed = time.perf_counter() - t0
        if info.loss <= target and not hit:
            hit.update(iterations=info.epoch, seconds=elapsed)
            return True
        return elapsed > cap_s

    res = fn(Xt, W, H, beta=BETA[loss], max_iter=max_iter, tol=0, callback=callback, **kwargs)
    total = time.perf_counter() - t0
    out = {"iterations_run": res.n_iter, "ms_per_iter": 1e3 * total / max(res.n_iter, 1),
           "objective": float(res.losses[-1])}
    out.update(hit or {"iterations": None, "seconds": None})
    return out


def bench_case(X, loss: str, repeats: int, iterations: int) -> dict:
    """Interleaved rounds of the reference and every deepnmf solver on one orientation and loss."""
    W0, H0 = _initialize_nmf(X, RANK, init="nndsvda", random_state=0)
    W0, H0 = W0.astype(np.float32), H0.astype(np.float32)
    rounds: dict[str, list] = {"sklearn": [], **{s: [] for s in SOLVERS[loss]}}
    for _ in range(repeats):
        ref = run_reference(X, W0, H0, loss, iterations)
        rounds["sklearn"].append(ref)
        for solver in SOLVERS[loss]:
            rounds[solver].append(run_ours(X, W0, H0, loss, solver, ref["objective"], ref["seconds"], 4000))
    return rounds


def summarise(rounds: dict, loss: str, shape: tuple[int, int], peak: float) -> dict:
    ref_s = [r["seconds"] for r in rounds["sklearn"]]
    out = {"sklearn_" + REFERENCE[loss]: {"seconds_median": float(np.median(ref_s)),
                                          "objective": rounds["sklearn"][0]["objective"],
                                          "ms_per_iter_median": float(np.median([r["ms_per_iter"] for r in
                                                                                 rounds["sklearn"]]))}}
    ref_flops = product_flops(REFERENCE[loss], loss, shape)
    out["sklearn_" + REFERENCE[loss]]["gflops"] = ref_flops / out["sklearn_" + REFERENCE[loss]]["ms_per_iter_median"] / 1e6
    for solver in SOLVERS[loss]:
        runs = rounds[solver]
        reached = [r["seconds"] for r in runs if r["seconds"] is not None]
        paired = [r["seconds"] / s for r, s in zip(runs, ref_s) if r["seconds"] is not None]
        ms = float(np.median([r["ms_per_iter"] for r in runs]))
        flops = product_flops(solver, loss, shape)
        out[solver] = {
            "reached_in": f"{len(reached)}/{len(runs)} rounds",
            "seconds_to_target_median": float(np.median(reached)) if reached else None,
            "iterations_to_target": [r["iterations"] for r in runs],
            "time_ratio_paired_median": float(np.median(paired)) if paired else None,
            "time_ratio_paired": paired,
            "ms_per_iter_median": ms,
            "gflops": None if flops is None else flops / ms / 1e6,
            "percent_of_peak": None if flops is None else 100 * flops / ms / 1e6 / peak,
            "objective_at_stop": [r["objective"] for r in runs],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--losses", default="frobenius,kullback-leibler")
    parser.add_argument("--out", default="benchmarks/results/bench_nmf.json")
    args = parser.parse_args()

    warm_up()
    data = make_data()
    orientations = {"frames x bins": np.ascontiguousarray(data.T), "bins x frames": data}
    peak = matmul_peak()
    best = max(peak.values())
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}; float32 matmul peak numpy {peak['numpy']:.0f}, torch "
          f"{peak['torch']:.0f} GFLOP/s", flush=True)
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "rank": RANK, "dtype": "float32",
              "reference_iterations": args.iterations, "repeats": args.repeats, "peak_gflops": peak,
              "load_average_start": os.getloadavg()[0], "cases": {}}
    for loss in args.losses.split(","):
        for name, X in orientations.items():
            summary = summarise(bench_case(X, loss, args.repeats, args.iterations), loss, X.shape, best)
            report["cases"][f"{loss}, {name} {X.shape[0]}x{X.shape[1]}"] = summary
            _print(loss, name, X.shape, summary)
    report["load_average_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {out}")


def _print(loss: str, name: str, shape, summary: dict) -> None:
    print(f"\n[{loss}, {name} {shape[0]}x{shape[1]}]")
    for solver, s in summary.items():
        if solver.startswith("sklearn"):
            print(f"  {solver:15s} target {s['objective']:.6g} in {s['seconds_median']:.2f} s "
                  f"({s['ms_per_iter_median']:.1f} ms/iter, {s['gflops']:.1f} GFLOP/s)")
            continue
        gf = "" if s["gflops"] is None else f", {s['gflops']:.1f} GFLOP/s ({s['percent_of_peak']:.1f}% of peak)"
        ratio = s["time_ratio_paired_median"]
        reach = "not reached" if ratio is None else (f"reached in {s['seconds_to_target_median']:.2f} s, "
                                                     f"ratio to sklearn {ratio:.3f}")
        print(f"  {solver:15s} {reach} [{s['reached_in']}, iterations {s['iterations_to_target']}]; "
              f"{s['ms_per_iter_median']:.1f} ms/iter{gf}", flush=True)


if __name__ == "__main__":
    main()
