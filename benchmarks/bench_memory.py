"""Memory under load: the enhancement and separation pipelines over many files in one process.

Each pipeline processes ``--files`` small generated recordings (harmonic
notes plus noise, ``--seconds`` each, 16 kHz) one after the other in this
process, the way a batch job does: read the file, run the pipeline, write
the result. The resident set size (``VmRSS`` from ``/proc/self/status``) is
sampled after every file. Reported per pipeline: the RSS after the first
file, the median over files 11-20 and over the last 10, the growth between
those two medians and that growth per file. A leak (a cache that grows,
tensors kept per call) shows as a steady growth per file; allocator noise as
a few MiB up and down.

Pipelines:

- ``enhance-file``: :func:`deepnmf.pipelines.enhancement.enhance_file` with a
  saved enhancer folder (speech and noise NMF dictionaries, multiplicative
  updates), so each file also loads the model folder again;
- ``enhance-object``: one :class:`~deepnmf.pipelines.enhancement.Enhancer`
  in memory, ``enhance`` per file;
- ``separate``: :func:`deepnmf.pipelines.separation.separate` of each
  mixture with two fixed NMF source dictionaries.

Usage::

    python benchmarks/bench_memory.py [--files 100] [--seconds 1.0] [--out benchmarks/results/bench_memory.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

SR = 16000


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def make_files(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` noisy recordings of harmonic notes (a different seed each)."""
    from deepnmf.audio.io import save_audio
    from deepnmf.datasets.synthetic import harmonic_notes

    files = []
    for i in range(n):
        rng = np.random.default_rng(i)
        x = harmonic_notes(3, duration=max(seconds, 1.0), sr=SR, seed=i).audio[: int(seconds * SR)]
        x = 0.5 * x / max(np.abs(x).max(), 1e-9) + 0.05 * rng.standard_normal(x.size)
        files.append(save_audio(folder / f"noisy-{i:03d}.wav", x, SR))
    return files


def build_models(folder: Path):
    """Speech and noise NMF dictionaries (KL, rank 8) and the saved enhancer folder."""
    from deepnmf.audio.tf import magnitude
    from deepnmf.datasets.synthetic import harmonic_notes
    from deepnmf.models import make_estimator
    from deepnmf.pipelines.enhancement import Enhancer, STFTSettings

    stft = STFTSettings(sr=SR)
    speech = harmonic_notes(4, duration=4.0, sr=SR, seed=100).audio
    noise = 0.1 * np.random.default_rng(100).standard_normal(4 * SR)
    fit = lambda x: make_estimator("nmf", 8, beta_loss="kullback-leibler", max_iter=50,  # noqa: E731
                                   random_state=0).fit(magnitude(stft.stft(x), 1.0).double().numpy())
    speech_model, noise_model = fit(speech), fit(noise)
    enh = Enhancer(speech_model, noise_model, activations="mu", max_iter=30)
    return enh, enh.save(folder / "enhancer"), (speech_model, noise_model)


def run(name: str, files: list[Path], step: Callable[[Path, int], None]) -> dict:
    """Run ``step`` on every file and sample the RSS after each; the summary."""
    samples, start = [], time.perf_counter()
    for i, path in enumerate(files):
        step(path, i)
        samples.append(rss_mib())
    early = statistics.median(samples[10:20]) if len(samples) >= 20 else samples[0]
    late = statistics.median(samples[-10:])
    n_between = max(len(samples) - 15 - 5, 1)  # files between the middles of the two windows
    summary = {"pipeline": name, "files": len(files), "rss_first_mib": round(samples[0], 1),
               "rss_median_11_20_mib": round(early, 1), "rss_median_last10_mib": round(late, 1),
               "growth_mib": round(late - early, 2), "growth_per_file_kib": round((late - early) * 1024 / n_between, 1),
               "seconds": round(time.perf_counter() - start, 1), "rss_mib": [round(v, 1) for v in samples]}
    print(f"{name:15s} first {samples[0]:7.1f} MiB | median 11-20 {early:7.1f} | last 10 {late:7.1f} | "
          f"growth {late - early:+6.2f} MiB ({summary['growth_per_file_kib']:+.1f} KiB/file) | "
          f"{summary['seconds']:.1f} s")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_memory.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Maximum number of iterations")  # 30 updates per file, on purpose

    from deepnmf.audio.io import load_audio, save_audio
    from deepnmf.pipelines.enhancement import enhance_file
    from deepnmf.pipelines.separation import separate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "out").mkdir()
        files = make_files(tmp, args.files, args.seconds)
        enh, folder, sources = build_models(tmp)
        print(f"{args.files} files of {args.seconds:g} s; RSS after setup {rss_mib():.1f} MiB")

        def enhance_from_folder(path: Path, i: int) -> None:
            result = enhance_file(path, model=folder)
            save_audio(tmp / "out" / f"enh-{i:03d}.wav", result.enhanced, result.sr)

        def enhance_in_memory(path: Path, i: int) -> None:
            x, _ = load_audio(path, sr=SR)
            save_audio(tmp / "out" / f"obj-{i:03d}.wav", enh.enhance(x), SR)

        def separate_file(path: Path, i: int) -> None:
            x, _ = load_audio(path, sr=SR)
            estimates = separate(x, list(sources), sr=SR, n_fft=512, power=1.0, max_iter=30)
            for j, est in enumerate(estimates):
                save_audio(tmp / "out" / f"sep-{i:03d}-{j}.wav", est, SR)

        results = [run("enhance-file", files, enhance_from_folder),
                   run("enhance-object", files, enhance_in_memory),
                   run("separate", files, separate_file)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"files": args.files, "seconds_per_file": args.seconds, "results": results},
                                   indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
