"""The model registry: versions, files (skops, ONNX, pickle), signatures and aliases."""

from trenches.models.formats import OnnxModel, Signature
from trenches.models.registry import AliasMove, Models, ModelVersion

__all__ = ["AliasMove", "ModelVersion", "Models", "OnnxModel", "Signature"]
