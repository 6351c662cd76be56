"""The canonical camera space transform (CSTM) of Metric3D, as pure, shape-checked functions.

A Metric3D network predicts depth for a *canonical* camera of focal length 1000 px. Inference:
:func:`preprocess` resizes the image (keeping aspect) to fit the network input, pads it centred with
the mean colour and normalises it; :func:`postprocess_depth` removes the padding, resizes back to the
original size and converts canonical depth to metres with ``fx_scaled / 1000``. Training uses either
:func:`cstm_label` (scale the depth labels by ``f_c / f``) or :func:`cstm_image` (zoom the image by
``f_c / f`` around the principal point, keeping its size, so the camera becomes canonical).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mono_metric.camera import Camera
from mono_metric.errors import InputError

CANONICAL_FOCAL_PX = 1000.0
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
VIT_INPUT_HW = (616, 1064)
CONVNEXT_INPUT_HW = (544, 1216)


@dataclass(frozen=True)
class CanonicalInput:
    """A network-ready image and what is needed to undo its geometry.

    Attributes:
        tensor: (1, 3, H_in, W_in) float32, ImageNet-normalised RGB.
        scale: resize factor applied to the original image.
        pad: (top, bottom, left, right) padding in pixels of the network input.
        camera_scaled: intrinsics of the resized (un-padded) image.
        original_hw: (h, w) of the original image.
        canonical_focal_px: focal length of the model's canonical camera.
    """

    tensor: torch.Tensor
    scale: float
    pad: tuple[int, int, int, int]
    camera_scaled: Camera
    original_hw: tuple[int, int]
    canonical_focal_px: float = CANONICAL_FOCAL_PX

    @property
    def canonical_to_metric(self) -> float:
        """Factor from canonical depth to metres: ``fx_scaled / canonical_focal_px``."""
        return self.camera_scaled.fx / self.canonical_focal_px


def _as_uint8_rgb(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:
            image = np.moveaxis(image, 0, -1)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be HxWx3 RGB (or a 3xHxW tensor), got shape {image.shape}")
    if image.dtype != np.uint8:
        if not np.isfinite(image).all():
            raise InputError("image contains NaN or inf values")
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def fit_scale(original_hw: tuple[int, int], input_hw: tuple[int, int]) -> float:
    """Largest resize factor that fits an image of ``original_hw`` inside ``input_hw``."""
    return min(input_hw[0] / original_hw[0], input_hw[1] / original_hw[1])


def input_hw_for_pixels(original_hw: tuple[int, int], pixels: int, multiple: int) -> tuple[int, int]:
    """Network input (H, W) of about ``pixels`` pixels with the aspect of ``original_hw``, sides rounded
    to multiples of ``multiple`` (at least one multiple)."""
    h, w = original_hw
    if h <= 0 or w <= 0 or pixels <= 0 or multiple <= 0:
        raise InputError(f"need positive sizes, got image {original_hw}, {pixels} pixels, multiple {multiple}")
    s = (pixels / (h * w)) ** 0.5
    return max(multiple, round(h * s / multiple) * multiple), max(multiple, round(w * s / multiple) * multiple)


def preprocess(image, camera: Camera, input_hw: tuple[int, int] = VIT_INPUT_HW,
               device: str | torch.device = "cpu", canonical_focal_px: float = CANONICAL_FOCAL_PX) -> CanonicalInput:
    """Resize keeping aspect, pad centred with the mean colour, normalise.

    Args:
        image: (h, w, 3) uint8 RGB numpy array, or a (3, h, w)/(h, w, 3) tensor in [0, 255].
        camera: intrinsics of ``image``.
        input_hw: network input size (H_in, W_in).
        device: where the returned tensor lives.
        canonical_focal_px: the model's canonical focal length (1000 px for the official models).

    Returns:
        :class:`CanonicalInput` with a (1, 3, H_in, W_in) tensor.
    """
    rgb = _as_uint8_rgb(image)
    camera.check_image(rgb)
    h, w = rgb.shape[:2]
    scale = fit_scale((h, w), input_hw)
    new_w, new_h = int(w * scale), int(h * scale)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_h, pad_w = input_hw[0] - new_h, input_hw[1] - new_w
    pad = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
    padded = cv2.copyMakeBorder(resized, pad[0], pad[1], pad[2], pad[3], cv2.BORDER_CONSTANT,
                                value=IMAGENET_MEAN_255)
    t = torch.from_numpy(padded).to(device=device, dtype=torch.float32).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN_255, device=t.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD_255, device=t.device).view(3, 1, 1)
    cam_scaled = Camera(camera.fx * scale, camera.fy * scale, camera.cx * scale, camera.cy * scale,
                        max(new_w, 1), max(new_h, 1))
    return CanonicalInput(((t - mean) / std)[None], scale, pad, cam_scaled, (h, w), canonical_focal_px)


def _unpad_resize(x: torch.Tensor, info: CanonicalInput) -> torch.Tensor:
    """(C, H_in, W_in) -> (C, h, w): crop the padding, bilinear resize to the original size."""
    top, bottom, left, right = info.pad
    x = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
    return F.interpolate(x[None], size=info.original_hw, mode="bilinear", align_corners=False)[0]


def postprocess_depth(depth_canonical: torch.Tensor, info: CanonicalInput, max_depth_m: float = 300.0) -> torch.Tensor:
    """Canonical depth on the network input -> metric depth on the original image.

    Args:
        depth_canonical: (H_in, W_in) or (1, H_in, W_in) canonical depth.
        info: the :class:`CanonicalInput` of that image.
        max_depth_m: clamp of the model's range.

    Returns:
        (h, w) depth in metres.
    """
    d = depth_canonical.reshape(1, *depth_canonical.shape[-2:]).float()
    if d.shape[-2:] != info.tensor.shape[-2:]:
        raise ValueError(f"depth {tuple(d.shape[-2:])} does not match the input {tuple(info.tensor.shape[-2:])}")
    return (_unpad_resize(d, info)[0] * info.canonical_to_metric).clamp(0.0, max_depth_m)


def postprocess_map(values: torch.Tensor, info: CanonicalInput) -> torch.Tensor:
    """Un-pad and resize a (C, H_in, W_in) map (confidence, normals) to (C, h, w)."""
    return _unpad_resize(values.float(), info)


def postprocess_normal(normal: torch.Tensor, info: CanonicalInput) -> torch.Tensor:
    """(3, H_in, W_in) normals -> (h, w, 3) unit normals on the original image."""
    n = F.normalize(postprocess_map(normal[:3], info), dim=0)
    return n.permute(1, 2, 0)


def cstm_label(depth_m: np.ndarray | torch.Tensor, fx: float, canonical_focal_px: float = CANONICAL_FOCAL_PX):
    """CSTM_label: metric depth labels to canonical ones, ``depth * f_c / fx``."""
    if fx <= 0:
        raise InputError(f"focal length must be positive, got {fx}")
    return depth_m * (canonical_focal_px / fx)


def canonical_to_metric_depth(depth_canonical, fx: float, canonical_focal_px: float = CANONICAL_FOCAL_PX):
    """Inverse of :func:`cstm_label`: ``depth * fx / f_c``."""
    if fx <= 0:
        raise InputError(f"focal length must be positive, got {fx}")
    return depth_canonical * (fx / canonical_focal_px)


def cstm_image(image: np.ndarray, depth_m: np.ndarray | None, camera: Camera,
               canonical_focal_px: float = CANONICAL_FOCAL_PX) -> tuple[np.ndarray, np.ndarray | None, Camera]:
    """CSTM_image: zoom the image by ``f_c / fx`` around the principal point, keeping its size.

    The zoomed image is what a camera with focal length ``f_c`` at the same place would see, so depth
    values are unchanged (only resampled, nearest neighbour). Areas outside the original image are the
    mean colour and depth 0. Non-square pixels keep their aspect (fy is scaled by the same factor).

    Args:
        image: (H, W, 3) uint8.
        depth_m: optional (H, W) depth in metres.
        camera: intrinsics of ``image``.
        canonical_focal_px: target focal length ``f_c``.

    Returns:
        image, depth and the canonical camera (fx = f_c, same principal point and size).
    """
    camera.check_image(image)
    s = canonical_focal_px / camera.fx
    M = np.array([[s, 0.0, (1.0 - s) * camera.cx], [0.0, s, (1.0 - s) * camera.cy]])
    size = (camera.width, camera.height)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, M, size, flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=IMAGENET_MEAN_255)
    out_depth = None
    if depth_m is not None:
        out_depth = cv2.warpAffine(depth_m.astype(np.float32), M, size, flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    cam = Camera(canonical_focal_px, camera.fy * s, camera.cx, camera.cy, camera.width, camera.height)
    return out, out_depth, cam
