"""Training: the resumable multi-task training loop behind the `train` stage."""

from mtlrec.training.train import TrainResult, run

__all__ = ["TrainResult", "run"]
