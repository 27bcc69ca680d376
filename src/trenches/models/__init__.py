"""The model registry: versions, files (skops, ONNX, XGBoost, LightGBM, pickle,
endpoints), signatures and aliases."""

from trenches.models.endpoints import Endpoint, EndpointFailed
from trenches.models.formats import OnnxModel, Signature
from trenches.models.registry import Models
from trenches.models.versions import AliasMove, ModelVersion

__all__ = [
    "AliasMove",
    "Endpoint",
    "EndpointFailed",
    "ModelVersion",
    "Models",
    "OnnxModel",
    "Signature",
]
