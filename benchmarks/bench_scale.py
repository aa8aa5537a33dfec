"""Scaling: streamed training against corpus size, folder enhancement against --jobs.

1. Streamed VAE-NMF (``deepnmf train --stream``) on generated speech-like
   corpora of 1x and 10x the audio (files of 10 s), one epoch each: peak
   resident memory and frames per second, beside in-memory training
   (``deepnmf train`` without ``--stream``) on the same corpora.
2. ``deepnmf enhance DIR -o OUT --jobs N`` on a folder of noisy files with
   the shipped default models, N = 1 and 2: files per second and peak memory.

Every run is a fresh ``deepnmf`` process under GNU ``time`` (peak resident
set size of the process and the workers it waited for), so the figures are
what a user sees. Results go to ``benchmarks/results/bench_scale.json``.

Usage::

    python benchmarks/bench_scale.py [--files 12] [--scale 10] [--enhance-files 16] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
BIN = Path(sys.executable).parent / "deepnmf"


def make_corpus(folder: Path, n_files: int, seconds: float, seed: int) -> Path:
    """``n_files`` speech-like recordings of ``seconds`` each (the package's own generator)."""
    from deepnmf.datasets.synthetic import speech_like

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        path = folder / f"utt{i:04d}.wav"
        if not path.exists():
            x = speech_like(seconds, sr=SR, speaker=i % 8, seed=seed + i).audio
            sf.write(path, x.astype(np.float32), SR)
    return folder


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` under GNU time: wall seconds, peak RSS (MB), exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return {"seconds": wall, "peak_mb": int(peak.group(1)) / 1024 if peak else None}


def train_runs(root: Path, n_files: int, scale: int) -> list[dict]:
    rows = []
    for factor in (1, scale):
        corpus = make_corpus(root / f"corpus{factor}x", n_files * factor, 10.0, seed=1000 * factor)
        n_frames = n_files * factor * (10 * SR // 128 + 1)
        for stream in (True, False):
            out = root / f"model_{factor}x_{'stream' if stream else 'memory'}"
            cmd = [str(BIN), "train", str(corpus), "--model", "vae-nmf", "--rank", "20", "--max-epochs", "1",
                   "--seed", "0", "--no-figures", "-q", "-o", str(out)] + (["--stream"] if stream else [])
            r = timed(cmd)
            rows.append({"corpus": f"{factor}x", "files": n_files * factor, "audio_s": 10.0 * n_files * factor,
                         "mode": "stream" if stream else "in-memory", **r, "frames_per_s": n_frames / r["seconds"]})
            print(f"train {factor:>3}x {rows[-1]['mode']:>9}: {r['seconds']:6.1f} s  peak {r['peak_mb']:7.1f} MB  "
                  f"{rows[-1]['frames_per_s']:8.0f} frames/s", flush=True)
    return rows


def enhance_runs(root: Path, n_files: int) -> list[dict]:
    from deepnmf.audio.mixing import mix_at_snr
    from deepnmf.datasets.synthetic import noise_signal, speech_like

    noisy = root / "noisy"
    noisy.mkdir(exist_ok=True)
    for i in range(n_files):
        s = speech_like(4.0, sr=SR, speaker=i % 8, seed=500 + i).audio
        y, _, _ = mix_at_snr(s, noise_signal("machine", 4.0, sr=SR, seed=i), 0.0)
        sf.write(noisy / f"n{i:03d}.wav", y.astype(np.float32), SR)
    rows = []
    for jobs in (1, 2):
        out = root / f"enhanced_{jobs}"
        r = timed([str(BIN), "enhance", str(noisy), "-o", str(out), "--jobs", str(jobs), "-q"])
        rows.append({"jobs": jobs, "files": n_files, **r, "files_per_s": n_files / r["seconds"]})
        print(f"enhance --jobs {jobs}: {r['seconds']:6.1f} s  peak {r['peak_mb']:7.1f} MB  "
              f"{rows[-1]['files_per_s']:.2f} files/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12, help="files of 10 s in the 1x corpus")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--enhance-files", type=int, default=16)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train = train_runs(root, args.files, args.scale)
        enhance = enhance_runs(root, args.enhance_files)
    stream = {r["corpus"]: r["peak_mb"] for r in train if r["mode"] == "stream"}
    result = {"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "train": train, "enhance": enhance,
              "stream_peak_ratio": stream[f"{args.scale}x"] / stream["1x"]}
    print(f"streamed peak memory {args.scale}x / 1x: {result['stream_peak_ratio']:.3f}")
    path = Path(args.out) / "bench_scale.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
