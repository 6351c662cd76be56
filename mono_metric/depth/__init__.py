"""Depth: canonical camera transform, Metric3D models, weights."""
from mono_metric.depth.base import DepthPrediction
from mono_metric.depth.metric3d import MODEL_SPECS, Metric3D

__all__ = ["DepthPrediction", "Metric3D", "MODEL_SPECS"]
