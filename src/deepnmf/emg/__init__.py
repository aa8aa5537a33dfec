"""Multichannel EMG: loaders, preprocessing, muscle-synergy extraction."""
