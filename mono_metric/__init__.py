"""mono_metric: monocular metric visual odometry and dense reconstruction.

Public API.
"""
from mono_metric.camera import Camera
from mono_metric.config import load_config
from mono_metric.datasets import load_sequence
from mono_metric.depth import DepthPrediction, Metric3D
from mono_metric.errors import InputError
from mono_metric.odometry import Odometry, TrackResult
from mono_metric.pipeline import OdometryPipeline
from mono_metric.types import Frame, Trajectory

__version__ = "0.1.0"
__all__ = ["Camera", "Frame", "Trajectory", "InputError", "Metric3D", "DepthPrediction", "Odometry",
           "TrackResult", "OdometryPipeline", "load_config", "load_sequence", "__version__"]
