"""Evaluation: a probability cache built by one Ray Data model pass, per-threshold metrics on CPU,
Ray Tune threshold sweeps logged to MLflow, and ``compare`` across checkpoints.

Import the submodules (``directsam.evaluation.evaluate``, ``.sweep``, ``.compare``); this package
imports nothing heavy.
"""
