"""Feature front-ends of the odometry: where keyframe points come from and how they are found again.

- :class:`KltFrontend` (default): Shi-Tomasi corners followed frame to frame by pyramidal
  Lucas-Kanade with a forward-backward check (OpenCV). Milliseconds per frame on a CPU.
- :class:`SiftFrontend`: Kornia's SIFT (detector + RootSIFT descriptors), matched from each frame to
  the keyframe with mutual nearest neighbours and Lowe's ratio test. Robust to large motion, but
  seconds per frame on a 2-core CPU (use a GPU device).
- :class:`DiskFrontend`: Kornia's learned DISK features from a weights file the user provides,
  matched like SIFT.

All return pixel positions (N, 2) float32 in the current image and a (N,) bool mask of points found.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from mono_metric.errors import InputError


class KltFrontend:
    """Corners + Lucas-Kanade tracking.

    Args:
        max_features: corners per keyframe.
        min_distance_px: corner spacing.
        window_px: LK window.
        max_fb_error_px: forward-backward disagreement tolerated.
    """

    def __init__(self, max_features: int = 800, min_distance_px: int = 10, window_px: int = 21,
                 max_fb_error_px: float = 1.0):
        self.max_features, self.min_distance_px = max_features, min_distance_px
        self.window, self.max_fb_error_px = (window_px, window_px), max_fb_error_px

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, None]:
        """(N, 2) corner pixels of a keyframe (no descriptors)."""
        corners = cv2.goodFeaturesToTrack(gray, self.max_features, 0.005, self.min_distance_px, blockSize=7)
        return (np.zeros((0, 2), np.float32) if corners is None else corners[:, 0, :]), None

    def find(self, prev_gray: np.ndarray, gray: np.ndarray, prev_uv: np.ndarray, kf_desc) -> tuple[np.ndarray, np.ndarray]:
        """Follow ``prev_uv`` (positions in ``prev_gray``) into ``gray``."""
        if len(prev_uv) == 0:
            return prev_uv, np.zeros(0, bool)
        uv, st, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, prev_uv, None, winSize=self.window, maxLevel=3)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, uv, None, winSize=self.window, maxLevel=3)
        h, w = gray.shape
        good = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back - prev_uv, axis=1) < self.max_fb_error_px)
        good &= (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        return uv, good


class _DescriptorFrontend:
    """Keypoints with descriptors, matched frame-to-keyframe (mutual nearest neighbours + ratio test).

    Subclasses implement ``_describe(gray) -> ((N, 2) pixels, (N, D) descriptors)``.
    """

    ratio: float

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """(N, 2) keypoint pixels and (N, D) descriptors of a keyframe."""
        return self._describe(gray)

    @torch.inference_mode()
    def find(self, prev_gray: np.ndarray, gray: np.ndarray, prev_uv: np.ndarray, kf_desc: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``gray`` of the keyframe points with descriptors ``kf_desc`` (ignores ``prev_gray``)."""
        import kornia.feature as KF

        uv = prev_uv.copy()
        good = np.zeros(len(prev_uv), bool)
        if len(prev_uv) == 0:
            return uv, good
        cur_uv, cur_desc = self._describe(gray)
        if len(cur_uv) == 0:
            return uv, good
        _, idx = KF.match_smnn(kf_desc, cur_desc, self.ratio)
        idx = idx.cpu().numpy()
        uv[idx[:, 0]] = cur_uv[idx[:, 1]]
        good[idx[:, 0]] = True
        return uv, good


class SiftFrontend(_DescriptorFrontend):
    """Kornia SIFT keypoints matched frame-to-keyframe.

    Args:
        max_features: keypoints per image.
        ratio: Lowe's ratio threshold of the mutual nearest-neighbour match.
        device: torch device of the detector.
    """

    def __init__(self, max_features: int = 1000, ratio: float = 0.85, device: str = "cpu"):
        import kornia.feature as KF

        self._KF = KF
        self.sift = KF.SIFTFeature(num_features=max_features, upright=True, device=torch.device(device))
        self.ratio, self.device = ratio, torch.device(device)

    @torch.inference_mode()
    def _describe(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        img = torch.from_numpy(gray).to(self.device, torch.float32)[None, None] / 255.0
        lafs, _, desc = self.sift(img)
        uv = self._KF.get_laf_center(lafs)[0].cpu().numpy().astype(np.float32)
        return uv, desc[0]


class DiskFrontend(_DescriptorFrontend):
    """Learned DISK keypoints and descriptors (Kornia) from a local weights file, matched like SIFT.

    Args:
        weights: DISK checkpoint (Kornia's file, a dict with ``extractor``, or a bare state dict).
        max_features: keypoints per image.
        ratio: ratio threshold of the mutual nearest-neighbour match.
        device: torch device.
    """

    def __init__(self, weights: str | None, max_features: int = 1000, ratio: float = 0.85, device: str = "cpu"):
        import kornia.feature as KF

        from mono_metric.depth.weights import load_state_dict

        if weights is None:
            raise InputError("tracking.frontend 'disk' needs tracking.feature_weights: a DISK checkpoint file "
                             "(e.g. Kornia's 'depth' DISK weights, downloaded once)")
        self.disk = KF.DISK()
        self.disk.load_state_dict(load_state_dict(weights), strict=True)
        self.disk = self.disk.to(torch.device(device)).eval()
        self.max_features, self.ratio, self.device = max_features, ratio, torch.device(device)

    @torch.inference_mode()
    def _describe(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        img = torch.from_numpy(gray).to(self.device, torch.float32)[None, None].expand(1, 3, -1, -1) / 255.0
        feats = self.disk(img, n=self.max_features, pad_if_not_divisible=True)[0]
        return feats.keypoints.cpu().numpy().astype(np.float32), feats.descriptors
