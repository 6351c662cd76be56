"""Metric3D depth networks (official-checkpoint compatible)."""
from mono_metric.depth.metric3d.model import MODEL_SPECS, Metric3D

__all__ = ["MODEL_SPECS", "Metric3D"]
