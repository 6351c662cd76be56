"""Feature front-ends of the odometry: where keyframe points come from and how they are found again.

- :class:`KltFrontend` (default): Shi-Tomasi corners followed frame to frame by pyramidal
  Lucas-Kanade with a forward-backward check (OpenCV). Milliseconds per frame on a CPU.
- :class:`SiftFrontend`: Kornia's SIFT (detector + RootSIFT descriptors), matched from each frame to
  the keyframe with mutual nearest neighbours and Lowe's ratio test. Robust to large motion, but
  seconds per frame on a 2-core CPU (use a GPU device).

Both return pixel positions (N, 2) float32 in the current image and a (N,) bool mask of points found.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch


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


class SiftFrontend:
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

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """(N, 2) keypoint pixels and (N, 128) descriptors of a keyframe."""
        return self._describe(gray)

    @torch.inference_mode()
    def find(self, prev_gray: np.ndarray, gray: np.ndarray, prev_uv: np.ndarray, kf_desc: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``gray`` of the keyframe points with descriptors ``kf_desc`` (ignores ``prev_gray``)."""
        uv = prev_uv.copy()
        good = np.zeros(len(prev_uv), bool)
        if len(prev_uv) == 0:
            return uv, good
        cur_uv, cur_desc = self._describe(gray)
        if len(cur_uv) == 0:
            return uv, good
        _, idx = self._KF.match_smnn(kf_desc, cur_desc, self.ratio)
        idx = idx.cpu().numpy()
        uv[idx[:, 0]] = cur_uv[idx[:, 1]]
        good[idx[:, 0]] = True
        return uv, good
