"""deepnmf.NMF against scikit-learn's NMF(solver="mu"), side by side in one process.

Data: a 513 x 10000 nonnegative float32 matrix (a spectrogram-shaped
low-rank-plus-noise matrix), rank 40, 100 iterations with ``tol=0``, both from
the same nndsvda initialisation. Runs are interleaved and the median of
``--repeats`` runs is reported, for Frobenius and KL, with

- seconds per iteration and the speed ratio (deepnmf / scikit-learn);
- achieved GFLOP/s (matrix-product flops only) against a measured float32
  matrix-multiply peak of this machine;
- the final objective of each;
- (Frobenius) the time deepnmf needs to reach the objective that
  scikit-learn's default ``cd`` solver reaches in 200 iterations.

Usage::

    python benchmarks/bench_nmf.py [--repeats 5] [--device cpu|cuda] [--out benchmarks/results/bench_nmf.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _beta_divergence, _initialize_nmf

from deepnmf import NMF
from deepnmf.solvers.mu import multiplicative_updates

N_SAMPLES, N_FEATURES, RANK, N_ITER = 513, 10000, 40, 100


def make_data(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.5, 1.0, size=(N_SAMPLES, 60))
    H = rng.gamma(0.5, 1.0, size=(60, N_FEATURES))
    return (W @ H + 0.1 * rng.random((N_SAMPLES, N_FEATURES))).astype(np.float32)


def matmul_peak() -> dict[str, float]:
    """Best float32 GFLOP/s of a 2000^3 product with numpy and with torch."""
    rng = np.random.default_rng(0)
    A = rng.random((2000, 2000), dtype=np.float32)
    out = {}
    for name, fn in (("numpy", lambda: A @ A), ("torch", lambda t=torch.from_numpy(A): t @ t)):
        fn()
        best = min(_timed(fn) for _ in range(5))
        out[name] = 2 * 2000**3 / best / 1e9
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops_per_iter(beta: float) -> float:
    n, m, k = N_SAMPLES, N_FEATURES, RANK
    if beta == 2:  # X H^T, W^T X  +  small Gram products
        return 4 * n * m * k + 4 * n * k * k + 4 * m * k * k
    return 8 * n * m * k  # W H twice, two gradient products


def run_sklearn(X, W0, H0, beta, n_iter=N_ITER):
    est = SklearnNMF(RANK, solver="mu", beta_loss=beta, init="custom", max_iter=n_iter, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
        elapsed = time.perf_counter() - t0
    return elapsed, float(_beta_divergence(X, W, est.components_, beta))


def run_deepnmf(X, W0, H0, beta, device, n_iter=N_ITER):
    est = NMF(RANK, beta_loss=beta, init="custom", max_iter=n_iter, tol=0, device=device)
    Xd = torch.from_numpy(X).to(device)
    W0d, H0d = torch.from_numpy(W0).to(device), torch.from_numpy(H0).to(device)
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    W = est.fit_transform(Xd, W=W0d, H=H0d)
    if device != "cpu":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return elapsed, float(_beta_divergence(X, W.cpu().numpy().astype(np.float64), est.components_.cpu().numpy().astype(np.float64), beta))


def time_to_reach(X, W0, H0, target: float, device: str, max_iter: int = 3000) -> dict:
    """Seconds and iterations deepnmf (Frobenius) needs to reach ``target``."""
    Xd = torch.from_numpy(X).to(device)
    W, H = torch.from_numpy(W0.copy()).to(device), torch.from_numpy(H0.copy()).to(device)
    hit = {}
    t0 = time.perf_counter()

    def cb(info):
        if info.loss <= target:
            hit.update(iterations=info.epoch, seconds=time.perf_counter() - t0, objective=info.loss)
            return True
        return None

    res = multiplicative_updates(Xd, W, H, beta=2.0, max_iter=max_iter, tol=0, callback=cb)
    return hit or {"iterations": None, "seconds": None, "objective_after_max_iter": res.losses[-1],
                   "note": f"not reached in {max_iter} iterations ({time.perf_counter() - t0:.1f} s)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/bench_nmf.json")
    args = parser.parse_args()

    X = make_data()
    W0, H0 = _initialize_nmf(X, RANK, init="nndsvda", random_state=0)
    W0, H0 = W0.astype(np.float32), H0.astype(np.float32)
    peak = matmul_peak()
    peak_best = max(peak.values())
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"float32 matmul peak (2000^3): numpy {peak['numpy']:.0f} GFLOP/s, torch {peak['torch']:.0f} GFLOP/s")
    report = {"shape": [N_SAMPLES, N_FEATURES], "rank": RANK, "iterations": N_ITER, "dtype": "float32",
              "device": args.device, "peak_gflops": peak, "load_average": os.getloadavg()[0], "losses": {}}
    for name, beta in (("frobenius", 2.0), ("kullback-leibler", 1.0)):
        times = {"deepnmf": [], "sklearn-mu": []}
        finals = {}
        for _ in range(args.repeats):  # interleaved
            t, finals["sklearn-mu"] = run_sklearn(X, W0, H0, beta)
            times["sklearn-mu"].append(t)
            t, finals["deepnmf"] = run_deepnmf(X, W0, H0, beta, args.device)
            times["deepnmf"].append(t)
        med = {k: float(np.median(v)) / N_ITER for k, v in times.items()}
        gflops = {k: flops_per_iter(beta) / v / 1e9 for k, v in med.items()}
        ratio = med["deepnmf"] / med["sklearn-mu"]
        # the machine's speed drifts (shared host): runs adjacent in time are compared pairwise too
        paired = np.asarray(times["deepnmf"]) / np.asarray(times["sklearn-mu"])
        print(f"\n[{name}] {N_ITER} iterations, median of {args.repeats}")
        for k in med:
            print(f"  {k:11s} {med[k] * 1e3:8.2f} ms/iter  {gflops[k]:6.1f} GFLOP/s "
                  f"({100 * gflops[k] / peak_best:4.1f}% of peak)  final objective {finals[k]:.6g}")
        print(f"  time ratio deepnmf / scikit-learn = {ratio:.3f} (ratio of medians); "
              f"paired runs: median {np.median(paired):.3f}, range {paired.min():.3f}-{paired.max():.3f}")
        report["losses"][name] = {"ms_per_iter": {k: v * 1e3 for k, v in med.items()}, "gflops": gflops,
                                  "ratio": ratio, "paired_ratios": paired.tolist(),
                                  "final_objective": finals,
                                  "relative_objective_gap": abs(finals["deepnmf"] - finals["sklearn-mu"]) / finals["sklearn-mu"]}
    cd = SklearnNMF(RANK, solver="cd", init="custom", max_iter=200, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        Wcd = cd.fit_transform(X, W=W0.copy(), H=H0.copy())
        t_cd = time.perf_counter() - t0
    target = float(_beta_divergence(X, Wcd, cd.components_, 2.0))
    reach = time_to_reach(X, W0, H0, target, args.device)
    print(f"\n[frobenius] scikit-learn cd: objective {target:.6g} after 200 iterations in {t_cd:.2f} s")
    if reach.get("iterations") is None:
        print(f"  deepnmf mu: {reach['note']}; objective then {reach['objective_after_max_iter']:.6g}")
    else:
        print(f"  deepnmf mu reaches it after {reach['iterations']} iterations in {reach['seconds']:.2f} s")
    report["cd_target"] = {"objective": target, "cd_seconds": t_cd, "deepnmf": reach}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
