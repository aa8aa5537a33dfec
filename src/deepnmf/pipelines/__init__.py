"""Pipelines: one module per job, each a library function that a user can call from Python.

- :mod:`deepnmf.pipelines.dictionary`: learn a dictionary from audio, EMG or a matrix (``deepnmf train``);
- :mod:`deepnmf.pipelines.enhancement` and :mod:`deepnmf.pipelines.enhancement_baselines`:
  supervised speech enhancement and its baselines (``deepnmf enhance``);
- :mod:`deepnmf.pipelines.separation`: supervised source separation (``deepnmf separate``);
- :mod:`deepnmf.pipelines.synergies`: muscle synergies from EMG (``deepnmf synergies``);
- :mod:`deepnmf.pipelines.demo`: the built-in demo (``deepnmf demo``).

Pipelines take arrays or paths and return results; they never parse options.
The command line (:mod:`deepnmf.cli`) is parse -> one pipeline call -> write.
"""
