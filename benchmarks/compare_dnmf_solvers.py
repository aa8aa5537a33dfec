"""DNMF's reconstruction dictionary: training divergence and time of the MU and Adam solvers, side by side.

Uses the speech and noise dictionaries an enhancement experiment cached
(``OUT/models/nmf/speech`` and ``noise-NAME``) and the experiment's training
mixtures of one noise (training speakers, the training part of the noise);
no test utterance is touched. Prints ``d(S | S_hat)`` per element before and
after 200 epochs, and the seconds.

Usage::

    python benchmarks/compare_dnmf_solvers.py --models OUT/models/nmf --noise PATH/factory2.wav
"""
from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path


def main() -> None:
    from deepnmf import load_model
    from deepnmf.datasets.paths import shared_data_dir
    from deepnmf.experiments.enhancement import EnhancementConfig, load_corpus
    from deepnmf.pipelines.enhancement_baselines import DNMFEnhancer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="an experiment's models/nmf folder")
    parser.add_argument("--noise", type=Path, required=True, help="the noise file whose model is noise-STEM")
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    timit = shared_data_dir("speech", "timit-sample")
    cfg = EnhancementConfig(train_speech=sorted(glob.glob(str(timit / "dr[1-5]-*"))),
                            test_speech=[timit / "dr6-fapb0", timit / "dr6-mbma1"], noises=[args.noise],
                            out="unused")
    corpus = load_corpus(cfg)
    speech = [x for utts in corpus.train.values() for x in utts]
    noise_train = corpus.noises[args.noise.stem][0]
    models = load_model(args.models / "speech"), load_model(args.models / f"noise-{args.noise.stem}")
    for solver in ("adam", "mu"):
        t0 = time.perf_counter()
        enh = DNMFEnhancer(*models, solver=solver, max_epochs=args.epochs).fit(speech, [noise_train],
                                                                              snr_range=(-5, 10), random_state=0)
        curve = enh.model.loss_curve_
        print(f"{solver:>4}: d(S|S_hat) per element {curve[0]:.5f} -> {curve[-1]:.5f} "
              f"in {len(curve) - 1} epochs, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
