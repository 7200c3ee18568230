"""DirectSAM on Ray: class-agnostic boundary prediction, pseudo-labeling and self-training."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy: `import directsam` stays free of torch/mlflow; `directsam.tokenize` loads on use.
    if name == "tokenize":
        from directsam.delivery.tokens import tokenize

        return tokenize
    raise AttributeError(f"module 'directsam' has no attribute {name!r}")
