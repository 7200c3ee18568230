"""DirectSAM on Ray: class-agnostic boundary prediction, pseudo-labeling and self-training."""

__version__ = "0.1.0"
