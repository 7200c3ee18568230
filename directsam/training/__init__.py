"""Stages 1 and 3: distributed training of the boundary model with Ray Train (V2).

``config`` (typed job configs), ``schedule`` (``lr_at``), ``loss`` (HF's num_labels=1 BCE),
``data`` (Ray Datasets of image + target), ``loop`` (the worker body), ``step`` (one optimizer
step and its meter), ``hooks`` (step hooks tests install), ``state`` (resumable
checkpoints), ``validation``, ``track`` (MLflow on driver / rank 0), ``trainer``
(``run_training``) and ``cli`` (``directsam pretrain | self-train``; targets are built on the fly, see docs/TRAINING.md).
Importing this package loads neither torch nor Ray.
"""

from directsam.training.config import PretrainConfig, SelfTrainConfig, TrainConfig
from directsam.training.schedule import lr_at

__all__ = ["PretrainConfig", "SelfTrainConfig", "TrainConfig", "lr_at"]
