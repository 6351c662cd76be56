"""Feature front-ends of the odometry: where keyframe points come from and how they are found again.

- :class:`KltFrontend` (default): Shi-Tomasi corners followed frame to frame by pyramidal
  Lucas-Kanade with a forward-backward check (OpenCV). Milliseconds per frame on a CPU.
- :class:`SiftFrontend`: Kornia's SIFT (detector + RootSIFT descriptors), matched from each frame to
  the keyframe with mutual nearest neighbours and Lowe's ratio test. Robust to large motion, but
  seconds per frame on a 2-core CPU (use a GPU device).
- :class:`DiskFrontend`: Kornia's learned DISK features from a weights file the user provides,
  matched like SIFT.

The descriptor front-ends match with mutual nearest neighbours and a ratio test, or with Kornia's
LightGlue (:class:`LightGlue`) when the user gives its weights. All return pixel positions (N, 2)
float32 in the current image and a (N,) bool mask of points found.
"""
from __future__ import annotations

import math
import re

import cv2
import numpy as np
import torch

from mono_metric.config import TrackingConfig
from mono_metric.errors import InputError
from mono_metric.geometry import nearest_pixels

GEOMETRY_COLUMNS = 4  # every descriptor row ends with the keypoint's x, y (px), scale (px) and orientation (rad)


def merge_corners(carried_uv: np.ndarray, fresh_uv: np.ndarray, shape: tuple[int, ...], min_distance_px: int,
                  max_count: int) -> tuple[np.ndarray, int]:
    """Corners of a new keyframe: the carried ones first, then fresh ones away from them.

    Args:
        carried_uv: (C, 2) pixels of corners tracked into this image (kept, in order).
        fresh_uv: (F, 2) newly detected corners, best first.
        shape: image (H, W).
        min_distance_px: fresh corners closer than this to a carried one are dropped.
        max_count: fresh corners are added up to this many corners in all.

    Returns:
        (C + F', 2) float32 pixels and C.
    """
    if carried_uv.ndim != 2 or carried_uv.shape[1] != 2 or fresh_uv.ndim != 2 or fresh_uv.shape[1] != 2:
        raise ValueError(f"need (C, 2) and (F, 2) pixels, got {carried_uv.shape} and {fresh_uv.shape}")
    taken = np.zeros(shape[:2], np.uint8)
    for x, y in carried_uv:
        cv2.circle(taken, (int(round(x)), int(round(y))), min_distance_px, 255, -1)
    iv, iu = nearest_pixels(fresh_uv, shape)
    fresh = fresh_uv[taken[iv, iu] == 0][: max(max_count - len(carried_uv), 0)]
    return np.concatenate([carried_uv.astype(np.float32), fresh.astype(np.float32)]), len(carried_uv)


class KltFrontend:
    """Corners + Lucas-Kanade tracking.

    A wide LK window follows large motion robustly, but its translation-only model then tracks a
    gradient-weighted average of the window's flow, not the corner: under rotation and perspective
    change the error is systematic (on synthetic room frames 12 apart, a 21 px window under-estimated
    the rotation by 0.37 % on average, 9 px by 0.01 %; such a bias accumulates as heading drift).
    With ``refine_window_px`` each track found with the wide window is refined at full resolution
    with that small window, starting from the wide window's result, and the refined position is kept
    only where it passes its own forward-backward check. That backward pass starts at the refined
    position itself, so at full resolution it comes back only over a few pixels: in practice the
    slowly moving tracks are refined (about 10 % of them on room frames moving 22 px), the others
    keep the wide window's result. Refining every track (backward pass started at the corner) was
    measured and is worse (README, room VO).

    Args:
        max_features: corners per keyframe.
        min_distance_px: corner spacing.
        window_px: LK window.
        max_fb_error_px: forward-backward disagreement tolerated.
        refine_window_px: small window of the refinement pass (0: no refinement).
    """

    def __init__(self, max_features: int = 800, min_distance_px: int = 10, window_px: int = 21,
                 max_fb_error_px: float = 1.0, refine_window_px: int = 0):
        self.max_features, self.min_distance_px = max_features, min_distance_px
        self.window, self.max_fb_error_px = (window_px, window_px), max_fb_error_px
        self.refine_window = (refine_window_px, refine_window_px)

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, None]:
        """(N, 2) corner pixels of a keyframe (no descriptors)."""
        corners = cv2.goodFeaturesToTrack(gray, self.max_features, 0.005, self.min_distance_px, blockSize=7)
        return (np.zeros((0, 2), np.float32) if corners is None else corners[:, 0, :]), None

    def find(self, prev_gray: np.ndarray, gray: np.ndarray, prev_uv: np.ndarray, kf_desc) -> tuple[np.ndarray, np.ndarray]:
        """Follow ``prev_uv`` (positions in ``prev_gray``) into ``gray``."""
        if len(prev_uv) == 0:
            return prev_uv, np.zeros(0, bool)
        uv, good = self._track(prev_gray, gray, prev_uv, None, self.window, 3)
        if self.refine_window[0]:
            fine, fine_good = self._track(prev_gray, gray, prev_uv, uv, self.refine_window, 0)
            fine_good &= np.linalg.norm(fine - uv, axis=1) < self.max_fb_error_px
            uv = np.where(fine_good[:, None], fine, uv)  # where the small window fails, the wide one's result
        h, w = gray.shape
        good &= (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        return uv, good

    def _track(self, prev_gray, gray, prev_uv, guess, window, levels) -> tuple[np.ndarray, np.ndarray]:
        """LK from ``prev_gray`` to ``gray`` (from ``guess`` when given) with a forward-backward check."""
        flags = 0 if guess is None else cv2.OPTFLOW_USE_INITIAL_FLOW
        uv, st, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, prev_uv, None if guess is None else guess.copy(),
                                             winSize=window, maxLevel=levels, flags=flags)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, uv, None, winSize=window, maxLevel=levels)
        good = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm(back - prev_uv, axis=1) < self.max_fb_error_px)
        return uv, good


class LightGlue:
    """Kornia's LightGlue matcher with weights from a local file (nothing is downloaded).

    Args:
        features: 'sift' or 'disk': the descriptors the weights were trained for (128-D both; SIFT
            also feeds keypoint scale and orientation).
        weights: LightGlue checkpoint, e.g. the official ``sift_lightglue.pth``/``disk_lightglue.pth``
            (layer names of the original release are accepted).
        filter_threshold: smallest match confidence kept.
        device: torch device.

    Raises:
        InputError: no weights, an unreadable file, or the checkpoint of another network.
    """

    def __init__(self, features: str, weights: str | None, filter_threshold: float = 0.1, device: str = "cpu"):
        import kornia.feature as KF

        from mono_metric.depth.weights import load_into

        if weights is None:
            raise InputError(f"tracking.matcher 'lightglue' needs tracking.matcher_weights: the LightGlue checkpoint "
                             f"trained for {features} features (e.g. Kornia's {features}_lightglue.pth, "
                             "downloaded once)")
        self.net = KF.LightGlue(features=None, input_dim=128, add_scale_ori=features == "sift",
                                filter_threshold=filter_threshold)
        derived = {"confidence_thresholds": self.net.confidence_thresholds}

        def rename(state: dict) -> dict:  # the original release names layers self_attn.N / cross_attn.N
            layer = re.compile(r"^(self_attn|cross_attn)\.(\d+)\.")
            state = {layer.sub(r"transformers.\2.\1.", k): v for k, v in state.items()}
            return {**derived, **state}

        load_into(self.net, weights, model_name=f"LightGlue ({features})", rename=rename)
        self.net = self.net.to(torch.device(device)).eval()

    @torch.inference_mode()
    def match(self, rows0: torch.Tensor, rows1: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """(S, 2) long indices of matched rows of two images of size ``image_hw``.

        Args:
            rows0, rows1: (N, D + 4) descriptor rows ending with x, y, scale, orientation.
            image_hw: (H, W) of both images.
        """
        if len(rows0) < 2 or len(rows1) < 2:
            return torch.zeros((0, 2), dtype=torch.long)
        size = torch.tensor([[image_hw[1], image_hw[0]]], dtype=rows0.dtype, device=rows0.device)

        def image(rows):
            geo = rows[:, -GEOMETRY_COLUMNS:]
            return {"keypoints": geo[None, :, :2], "scales": geo[None, :, 2], "oris": geo[None, :, 3],
                    "descriptors": rows[None, :, :-GEOMETRY_COLUMNS].contiguous(), "image_size": size}

        matches0 = self.net({"image0": image(rows0), "image1": image(rows1)})["matches0"][0]
        found = matches0 > -1
        return torch.stack([torch.nonzero(found)[:, 0], matches0[found]], 1)


class _DescriptorFrontend:
    """Keypoints with descriptors, matched frame-to-keyframe (mutual nearest neighbours + ratio test, or
    LightGlue).

    Subclasses implement ``_describe(gray) -> ((N, 2) pixels, (N, D + 4) rows)``: descriptors followed
    by the keypoint geometry (:data:`GEOMETRY_COLUMNS`).
    """

    ratio: float
    lightglue: LightGlue | None

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """(N, 2) keypoint pixels and (N, D + 4) descriptor rows of a keyframe."""
        return self._describe(gray)

    @torch.inference_mode()
    def find(self, prev_gray: np.ndarray, gray: np.ndarray, prev_uv: np.ndarray,
             kf_desc: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``gray`` of the keyframe points with descriptor rows ``kf_desc`` (ignores ``prev_gray``)."""
        import kornia.feature as KF

        uv = prev_uv.copy()
        good = np.zeros(len(prev_uv), bool)
        if len(prev_uv) == 0:
            return uv, good
        cur_uv, cur_desc = self._describe(gray)
        if len(cur_uv) == 0:
            return uv, good
        if self.lightglue is not None:
            idx = self.lightglue.match(kf_desc, cur_desc, gray.shape)
        else:
            _, idx = KF.match_smnn(kf_desc[:, :-GEOMETRY_COLUMNS], cur_desc[:, :-GEOMETRY_COLUMNS], self.ratio)
        idx = idx.cpu().numpy()
        uv[idx[:, 0]] = cur_uv[idx[:, 1]]
        good[idx[:, 0]] = True
        return uv, good


def _rows(desc: torch.Tensor, uv: torch.Tensor, scale: torch.Tensor, ori: torch.Tensor) -> torch.Tensor:
    return torch.cat([desc, uv.to(desc.dtype), scale[:, None].to(desc.dtype), ori[:, None].to(desc.dtype)], 1)


class SiftFrontend(_DescriptorFrontend):
    """Kornia SIFT keypoints matched frame-to-keyframe.

    Args:
        max_features: keypoints per image.
        ratio: Lowe's ratio threshold of the mutual nearest-neighbour match.
        device: torch device of the detector.
        lightglue: match with this instead of nearest neighbours.
    """

    def __init__(self, max_features: int = 1000, ratio: float = 0.85, device: str = "cpu",
                 lightglue: LightGlue | None = None):
        import kornia.feature as KF

        self._KF = KF
        self.sift = KF.SIFTFeature(num_features=max_features, upright=True, device=torch.device(device))
        self.ratio, self.device, self.lightglue = ratio, torch.device(device), lightglue

    @torch.inference_mode()
    def _describe(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        img = torch.from_numpy(gray).to(self.device, torch.float32)[None, None] / 255.0
        lafs, _, desc = self.sift(img)
        center = self._KF.get_laf_center(lafs)[0]
        # LightGlue's SIFT convention (COLMAP keypoints): the DoG sigma (a sixth of the LAF scale) and the
        # image angle of the keypoint's x axis, the negated LAF orientation, in (-pi, pi].
        ori = -torch.deg2rad(self._KF.get_laf_orientation(lafs)[0, :, 0])
        ori = torch.where(ori <= -math.pi, ori + 2 * math.pi, ori)
        rows = _rows(desc[0], center, self._KF.get_laf_scale(lafs)[0, :, 0, 0] / 6.0, ori)
        return center.cpu().numpy().astype(np.float32), rows


class DiskFrontend(_DescriptorFrontend):
    """Learned DISK keypoints and descriptors (Kornia) from a local weights file, matched like SIFT.

    Args:
        weights: DISK checkpoint (Kornia's file, a dict with ``extractor``, or a bare state dict).
        max_features: keypoints per image.
        ratio: ratio threshold of the mutual nearest-neighbour match.
        device: torch device.
        lightglue: match with this instead of nearest neighbours.
    """

    def __init__(self, weights: str | None, max_features: int = 1000, ratio: float = 0.85, device: str = "cpu",
                 lightglue: LightGlue | None = None):
        import kornia.feature as KF

        from mono_metric.depth.weights import load_into

        if weights is None:
            raise InputError("tracking.frontend 'disk' needs tracking.feature_weights: a DISK checkpoint file "
                             "(e.g. Kornia's 'depth' DISK weights, downloaded once)")
        self.disk = KF.DISK()
        load_into(self.disk, weights, model_name="DISK")
        self.disk = self.disk.to(torch.device(device)).eval()
        self.max_features, self.ratio, self.device = max_features, ratio, torch.device(device)
        self.lightglue = lightglue

    @torch.inference_mode()
    def _describe(self, gray: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        img = torch.from_numpy(gray).to(self.device, torch.float32)[None, None].expand(1, 3, -1, -1) / 255.0
        feats = self.disk(img, n=self.max_features, pad_if_not_divisible=True)[0]
        n = len(feats.keypoints)
        rows = _rows(feats.descriptors, feats.keypoints, torch.ones(n, device=self.device),
                     torch.zeros(n, device=self.device))
        return feats.keypoints.cpu().numpy().astype(np.float32), rows


def make_frontend(config: TrackingConfig):
    """The feature front-end named by ``config.frontend``."""
    lightglue = None
    if config.matcher == "lightglue":
        lightglue = LightGlue(config.frontend, config.matcher_weights, config.lightglue_threshold, config.device)
    if config.frontend == "sift":
        return SiftFrontend(config.max_features, config.sift_ratio, config.device, lightglue)
    if config.frontend == "disk":
        return DiskFrontend(config.feature_weights, config.max_features, config.sift_ratio, config.device, lightglue)
    return KltFrontend(config.max_features, config.min_distance_px, config.klt_window_px,
                       refine_window_px=config.klt_refine_window_px)


def take_rows(desc: torch.Tensor | None, index: np.ndarray) -> torch.Tensor | None:
    """Rows of a (N, D) descriptor tensor (or None) selected by a numpy mask or index array."""
    if desc is None:
        return None
    return desc[torch.from_numpy(np.asarray(index)).to(desc.device)]
