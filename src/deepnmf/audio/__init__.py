"""Audio front end: file I/O and resampling (``io``), STFT/ISTFT and TF representations (``tf``)."""
