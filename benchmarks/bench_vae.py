"""VAE-NMF benchmarks: training throughput against a minimal hand-written loop, and planted recovery.

1. Throughput (float32, side by side in one process, interleaved repeats,
   medians): ``VAENMF.fit`` (no validation, no early stopping, so exactly
   ``--epochs`` passes) against a minimal hand-written training loop of the
   same network (Linear-ReLU-Linear-ReLU-Linear encoder on ``[u, log1p(u)]``
   with the same log-mean/log-shape head, same Gamma sampler, ``z @ W`` decoder, Gaussian
   NLL + Gamma KL + penalty, Adam with the same settings). Reported in
   frames per second and as the ratio hand-written / deepnmf (target: at most
   1.3). A second hand-written variant uses ``torch.distributions.Gamma``'s
   ``rsample`` to show what the sampler costs.

2. Planted recovery: ``X = Z @ W_true`` (Gamma(1, 1) activations, 10 sparse
   nonnegative atoms, 64 features, 2000 samples, 1% noise); ``VAENMF`` with
   default settings apart from ``max_epochs``; mean cosine of the atoms after
   optimal matching (Hungarian) and the time of each fit, for 5 seeds
   (target: each >= 0.9 within 2 minutes).

Figures next to the JSON: ``bench_vae_throughput.png`` (frames/s per loop)
and ``bench_vae_elbo.png`` (ELBO terms of the seed-0 planted fit).

3. Real speech (``--speech``): magnitude STFT (512/128, 16 kHz) of 8 TIMIT
   sentences of speaker dr1-fvmh0 for training, its 2 other sentences for
   testing; rank 40; relative Frobenius error ``||V - H W|| / ||V||`` with
   the encoder's posterior-mean activations and with multiplicative-update
   activations against the learned dictionary, next to ``deepnmf.NMF``
   (200 iterations). Needs the real data (``DEEPNMF_DATA``).

Usage::

    python benchmarks/bench_vae.py [--repeats 5] [--epochs 3] [--device cpu|cuda]
        [--seeds 5] [--max-epochs 200] [--skip-recovery] [--speech] [--speech-epochs 60]
        [--out benchmarks/results/bench_vae.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from deepnmf import VAENMF
from deepnmf.matching import cosine_assignment
from deepnmf.nn import gamma as gamma_dist


# ----------------------------------------------------------------- data sets
def spectrogram_like(n_frames: int, n_bins: int, seed: int = 0) -> np.ndarray:
    """Nonnegative low-rank-plus-noise float32 matrix ``(n_frames, n_bins)`` with heavy-tailed activations."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.5, 1.0, size=(60, n_bins))
    H = rng.gamma(0.5, 1.0, size=(n_frames, 60))
    return (H @ W + 0.1 * rng.random((n_frames, n_bins))).astype(np.float32)


def planted(seed: int, n: int = 2000, k: int = 10, f: int = 64, noise: float = 0.01):
    """``X = Z @ W_true`` + 1% Gaussian noise (absolute value), Gamma(1, 1) activations, sparse atoms."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(size=(k, f)) * (rng.uniform(size=(k, f)) < 0.5)
    Z = rng.gamma(1.0, 1.0, size=(n, k))
    X = Z @ W
    return np.abs(X + noise * X.std() * rng.standard_normal(X.shape)).astype(np.float32), W


def matched_cosine(W: np.ndarray, W_true: np.ndarray) -> float:
    """Mean cosine of the learned atoms to the true ones after optimal one-to-one matching."""
    return float(cosine_assignment(W_true, W)[2].mean())


# ------------------------------------------------------- hand-written baseline
class MinimalVAE(torch.nn.Module):
    """The same network written plainly: no buffers, no options, no bookkeeping."""

    def __init__(self, n_features: int, k: int, x_mean: float):
        super().__init__()
        self.enc = torch.nn.Sequential(
            torch.nn.Linear(2 * n_features, 400), torch.nn.ReLU(),
            torch.nn.Linear(400, 400), torch.nn.ReLU(),
            torch.nn.Linear(400, 2 * k),
        )
        self.V = torch.nn.Parameter(torch.rand(k, n_features))
        self.k, self.x_mean, self.w_scale = k, x_mean, 10 * x_mean / k

    def loss(self, x, gen, sampler, noise_var):
        u = x / self.x_mean
        out = self.enc(torch.cat([u, torch.log1p(u)], dim=-1)).clamp(-15, 15)
        log_mean, log_shape = out.split(self.k, dim=-1)
        alpha = 0.05 + log_shape.exp()
        beta = alpha * (-log_mean).exp()
        if sampler == "torch":
            z = torch.distributions.Gamma(alpha, beta).rsample()
        else:
            z = gamma_dist.rsample(alpha, beta, generator=gen, validate=False)
        W = self.w_scale * self.V
        nll = 0.5 * (x - z @ W).square().sum(-1) / noise_var + 0.5 * x.shape[1] * math.log(2 * math.pi * noise_var)
        kl = gamma_dist.kl(alpha, beta, 1.0, 1.0).sum(-1)
        penalty = 50.0 * (10 * self.V).clamp(max=0).square().sum()
        return nll.mean() + kl.mean() + penalty


def hand_written_fit(X: torch.Tensor, k: int, epochs: int, sampler: str, seed: int) -> float:
    """Seconds for ``epochs`` passes of a minimal Adam loop over ``X`` ``(n, F)``."""
    gen = torch.Generator(device=X.device).manual_seed(seed)
    model = MinimalVAE(X.shape[1], k, float(X.mean())).to(X.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    noise_var = float(X.var())
    _sync(X.device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0], generator=gen, device=X.device)
        for i in range(0, X.shape[0], 128):
            loss = model.loss(X[perm[i : i + 128]], gen, sampler, noise_var)
            opt.zero_grad()
            loss.backward()
            opt.step()
    _sync(X.device)
    return time.perf_counter() - t0


def deepnmf_fit(X: torch.Tensor, k: int, epochs: int, seed: int, sampler: str = "marsaglia-tsang") -> tuple[float, float]:
    """(loop seconds, whole fit() seconds) of ``VAENMF`` for exactly ``epochs`` passes."""
    model = VAENMF(k, max_epochs=epochs, validation_fraction=0.0, early_stopping=False, random_state=seed,
                   device=str(X.device), sampler=sampler)
    _sync(X.device)
    t0 = time.perf_counter()
    model.fit(X)
    _sync(X.device)
    return model.fit_seconds_, time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(args) -> dict:
    X = torch.from_numpy(spectrogram_like(args.frames, args.bins)).to(args.device)
    n = X.shape[0] * args.epochs
    runs = {"deepnmf_loop": [], "deepnmf_fit": [], "hand_written": [], "hand_written_torch_gamma": []}
    deepnmf_fit(X, args.rank, 1, 0)  # warm-up
    hand_written_fit(X, args.rank, 1, "deepnmf", 0)
    for r in range(args.repeats):  # interleaved so that machine load hits all variants alike
        loop, whole = deepnmf_fit(X, args.rank, args.epochs, r)
        runs["deepnmf_loop"].append(loop)
        runs["deepnmf_fit"].append(whole)
        runs["hand_written"].append(hand_written_fit(X, args.rank, args.epochs, "deepnmf", r))
        runs["hand_written_torch_gamma"].append(hand_written_fit(X, args.rank, args.epochs, "torch", r))
    med = {k: float(np.median(v)) for k, v in runs.items()}
    fps = {k: n / v for k, v in med.items()}
    return {
        "data": {"frames": args.frames, "bins": args.bins, "rank": args.rank, "epochs": args.epochs, "batch": 128},
        "median_seconds": med,
        "frames_per_second": fps,
        "ratio_hand_written_over_deepnmf_loop": fps["hand_written"] / fps["deepnmf_loop"],
        "ratio_hand_written_over_deepnmf_fit": fps["hand_written"] / fps["deepnmf_fit"],
        "all_seconds": runs,
    }


def recovery(args) -> dict:
    from deepnmf.plotting.vae import plot_elbo

    rows = []
    for seed in range(args.seeds):
        X, W_true = planted(seed)
        t0 = time.perf_counter()
        model = VAENMF(10, max_epochs=args.max_epochs, random_state=seed, device=args.device).fit(X)
        seconds = time.perf_counter() - t0
        cos = matched_cosine(model.components_, W_true)
        if seed == 0:
            plot_elbo(model.history_, args.out.with_name("bench_vae_elbo.png"),
                      title=f"VAE-NMF on planted data (seed 0): cosine {cos:.4f}")
        rows.append({"seed": seed, "cosine": cos, "seconds": seconds, "epochs": model.n_iter_,
                     "best_epoch": model.best_epoch_})
        print(f"  seed {seed}: mean matched cosine {cos:.4f}, {model.n_iter_} epochs, {seconds:.1f} s", flush=True)
    return {"max_epochs": args.max_epochs, "runs": rows,
            "min_cosine": min(r["cosine"] for r in rows), "max_seconds": max(r["seconds"] for r in rows)}


def _relative_error(V: np.ndarray, model, H: np.ndarray) -> float:
    return float(np.linalg.norm(V - model.inverse_transform(H)) / np.linalg.norm(V))


def speech(args) -> dict:
    from deepnmf import NMF
    from deepnmf.audio.frames import load_matrix
    from deepnmf.datasets.paths import shared_data_dir

    files = sorted(shared_data_dir("speech", "timit-sample", "dr1-fvmh0").glob("*.wav"))
    V_train, _ = load_matrix(files[:8], sr=16000, n_fft=512, hop=128, power=1.0)
    V_test, _ = load_matrix(files[8:], sr=16000, n_fft=512, hop=128, power=1.0)
    rows = []
    nmf = NMF(40, max_iter=200, random_state=0)
    t0 = time.perf_counter()
    nmf.fit(V_train)
    rows.append({"model": "NMF (frobenius, 200 it)", "seconds": time.perf_counter() - t0,
                 "train_encoder": None, "test_encoder": None,
                 "train_mu": _relative_error(V_train, nmf, nmf.transform(V_train)),
                 "test_mu": _relative_error(V_test, nmf, nmf.transform(V_test))})
    for likelihood in ("gaussian", "poisson", "exponential"):
        t0 = time.perf_counter()
        vae = VAENMF(40, likelihood=likelihood, max_epochs=args.speech_epochs, random_state=0).fit(V_train)
        seconds = time.perf_counter() - t0
        frozen = NMF.from_components(vae.components_, max_iter=200)
        rows.append({"model": f"VAENMF ({likelihood}, {vae.n_iter_} ep)", "seconds": seconds,
                     "train_encoder": _relative_error(V_train, vae, vae.transform(V_train)),
                     "test_encoder": _relative_error(V_test, vae, vae.transform(V_test)),
                     "train_mu": _relative_error(V_train, frozen, frozen.transform(V_train)),
                     "test_mu": _relative_error(V_test, frozen, frozen.transform(V_test))})
    for r in rows:
        cells = [f"{r[k]:.3f}" if r[k] is not None else "  -  " for k in ("train_encoder", "test_encoder", "train_mu", "test_mu")]
        print(f"  {r['model']:30s} enc train/test {cells[0]}/{cells[1]}  MU train/test {cells[2]}/{cells[3]}  "
              f"{r['seconds']:.0f} s", flush=True)
    return {"train_frames": int(V_train.shape[0]), "test_frames": int(V_test.shape[0]), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--bins", type=int, default=257)
    parser.add_argument("--rank", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--speech", action="store_true")
    parser.add_argument("--speech-epochs", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_vae.json"))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available on this machine; run with --device cpu")
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": args.device,
                    "load_average": os.getloadavg()},
    }
    if not args.skip_throughput:
        print(f"throughput: {args.frames} x {args.bins} float32, rank {args.rank}, {args.epochs} epochs, "
              f"{args.repeats} interleaved repeats on {args.device}", flush=True)
        report["throughput"] = tp = throughput(args)
        from deepnmf.plotting.vae import plot_throughput

        plot_throughput(tp["frames_per_second"], args.out.with_name("bench_vae_throughput.png"),
                        title=f"float32 training, {args.frames} x {args.bins}, rank {args.rank} ({args.device})")
        for name, fps in tp["frames_per_second"].items():
            print(f"  {name:26s} {fps:10.0f} frames/s")
        print(f"  ratio hand-written / deepnmf loop: {tp['ratio_hand_written_over_deepnmf_loop']:.3f} "
              f"(whole fit(): {tp['ratio_hand_written_over_deepnmf_fit']:.3f})")
    if not args.skip_recovery:
        print(f"planted recovery (default settings, max_epochs={args.max_epochs}):", flush=True)
        report["recovery"] = rec = recovery(args)
        print(f"  min cosine {rec['min_cosine']:.4f}, max time {rec['max_seconds']:.1f} s")
    if args.speech:
        print(f"real speech (TIMIT dr1-fvmh0, rank 40, relative error ||V - HW|| / ||V||):", flush=True)
        report["speech"] = speech(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
