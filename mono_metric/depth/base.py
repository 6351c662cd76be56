"""What every depth model returns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DepthPrediction:
    """Per-pixel outputs on the original image grid.

    Attributes:
        depth_m: (H, W) float32 metric depth in metres.
        confidence: (H, W) float32 model confidence (higher is more reliable; model-specific scale).
        normal: (H, W, 3) float32 unit surface normals in the camera frame, or None.
    """

    depth_m: np.ndarray
    confidence: np.ndarray
    normal: np.ndarray | None = None
