"""Torch modules and pure functions: Gamma sampling/KL, VAE parts, implicit factor networks, DNNs."""
