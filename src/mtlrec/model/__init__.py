"""Model: text encoder, feature spec, bottoms (shared_bottom, mmoe, ple), towers, losses."""

from mtlrec.model.inputs import FeatureSpec, ModelInputs, TensorFrame, read_schema
from mtlrec.model.losses import LossWeighting, Targets, compute_losses
from mtlrec.model.multitask import MultiTaskModel, TaskOutputs
from mtlrec.model.predict import LoadedModel, load, predict, save_model
from mtlrec.model.tasks import TASKS, TaskSpec

__all__ = [
    "TASKS",
    "FeatureSpec",
    "LoadedModel",
    "LossWeighting",
    "ModelInputs",
    "MultiTaskModel",
    "Targets",
    "TaskOutputs",
    "TaskSpec",
    "TensorFrame",
    "compute_losses",
    "load",
    "predict",
    "read_schema",
    "save_model",
]
