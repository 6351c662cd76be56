"""Metric3D models: named architectures, weights loading and ``predict(image, camera)``.

The module tree mirrors the official checkpoints (``depth_model.encoder``/``depth_model.decoder``), so
an official ``.pth`` file loads with ``strict=True``: v1 (ConvNeXt + hourglass) and v2 (DINOv2 ViT +
RAFT-DPT decoder with normals).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mono_metric.camera import Camera
from mono_metric.depth.base import DepthPrediction
from mono_metric.depth.canonical import (CANONICAL_FOCAL_PX, CONVNEXT_INPUT_HW, VIT_INPUT_HW, input_hw_for_pixels,
                                         postprocess_depth, postprocess_map, postprocess_normal, preprocess)
from mono_metric.depth.metric3d.convnext import CONVNEXT_SIZES, ConvNeXtEncoder
from mono_metric.depth.metric3d.hourglass import HourglassDecoder
from mono_metric.depth.metric3d.raft_dpt import RAFTDepthNormalDecoder
from mono_metric.depth.metric3d.vit import VIT_SIZES, DinoV2Encoder
from mono_metric.depth.weights import load_into, resolve_weights
from mono_metric.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model.

    Attributes:
        family: 'convnext' (v1) or 'vit' (v2).
        size: key of the family's size table.
        decoder_channels: decoder widths.
        input_hw: official network input (H, W).
        input_pixels: for fully convolutional models trained on crops: the default input is sized per
            image to about this many pixels (aspect kept, sides multiples of the input multiple), the
            scale the model was trained at, instead of the fixed ``input_hw`` (large padding misleads such
            a model). ``input_hw`` stays the nominal size (ONNX export, benchmarks).
        feature_channels, hidden_channels, iters: v2 decoder settings.
        max_depth_m: clamp of metric outputs.
        canonical_focal_px: focal length of the canonical camera the network predicts for.
        depth_bins_range: v1 log-spaced bin range in canonical metres.
        num_bins, feat_dim, hourglass_width, residual_channels: v1 decoder head sizes.
        pixel_grid: v1 residual branch sees absolute pixel coordinates (official; off for crop-trained models).
    """

    family: str
    size: str
    decoder_channels: tuple[int, ...]
    input_hw: tuple[int, int]
    feature_channels: tuple[int, ...] = ()
    hidden_channels: tuple[int, ...] = ()
    iters: int = 0
    max_depth_m: float = 300.0
    canonical_focal_px: float = CANONICAL_FOCAL_PX
    depth_bins_range: tuple[float, float] = (0.3, 150.0)
    num_bins: int = 512
    feat_dim: int = 256
    hourglass_width: int = 128
    residual_channels: int = 16
    pixel_grid: bool = True
    input_pixels: int | None = None

    @property
    def input_multiple(self) -> int:
        """Network input sides must be multiples of this."""
        return 32 if self.family == "convnext" else 28


MODEL_SPECS: dict[str, ModelSpec] = {
    "metric3d_convnext_tiny": ModelSpec("convnext", "tiny", (64, 64, 128, 256), CONVNEXT_INPUT_HW),
    "metric3d_convnext_large": ModelSpec("convnext", "large", (128, 128, 256, 512), CONVNEXT_INPUT_HW),
    "metric3d_vit_small": ModelSpec("vit", "small", (48, 96, 192, 384, 384), VIT_INPUT_HW,
                                    (96, 192, 384, 768), (48,) * 4, iters=4),
    "metric3d_vit_large": ModelSpec("vit", "large", (128, 256, 512, 1024, 1024), VIT_INPUT_HW,
                                    (256, 512, 1024, 1024), (128,) * 4, iters=8),
    "metric3d_vit_giant2": ModelSpec("vit", "giant2", (192, 384, 768, 1536, 1536), VIT_INPUT_HW,
                                     (384, 768, 1536, 1536), (192,) * 4, iters=8),
    # Trained here on the synthetic world (configs/train_tiny.yaml, then configs/train_tiny_finetune.yaml);
    # canonical camera 300 px. Default input: ~80k pixels per image (chosen on validation seeds, README).
    "mono_metric_tiny": ModelSpec("convnext", "nano", (32, 32, 64, 128), (160, 512), input_pixels=80_000,
                                  max_depth_m=200.0, canonical_focal_px=300.0, depth_bins_range=(0.1, 200.0),
                                  num_bins=128, feat_dim=64, hourglass_width=64, residual_channels=8,
                                  pixel_grid=False),
}


class DensePredictor(nn.Module):
    """Encoder + decoder, as the ``depth_model`` of the official checkpoints."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        return self.decoder(*feats) if isinstance(feats, tuple) else self.decoder(feats)


def build_depth_model(spec: ModelSpec) -> DensePredictor:
    """The randomly initialised network of ``spec``."""
    if spec.family == "convnext":
        sizes = CONVNEXT_SIZES[spec.size]
        decoder = HourglassDecoder(sizes["dims"], spec.decoder_channels, *spec.depth_bins_range, spec.num_bins,
                                   spec.feat_dim, spec.hourglass_width, spec.residual_channels, spec.pixel_grid)
        return DensePredictor(ConvNeXtEncoder(**sizes), decoder)
    if spec.family == "vit":
        sizes = VIT_SIZES[spec.size]
        decoder = RAFTDepthNormalDecoder(sizes["dim"], spec.feature_channels, spec.decoder_channels,
                                         spec.hidden_channels, spec.iters)
        return DensePredictor(DinoV2Encoder(**sizes), decoder)
    raise InputError(f"unknown model family {spec.family!r}")


class Metric3D(nn.Module):
    """A Metric3D depth network with its canonical-camera pre- and post-processing.

    Build with :meth:`from_pretrained` (weights) or :meth:`build` (random init). ``forward`` maps a
    normalised (B, 3, H_in, W_in) batch to canonical depth and confidence; :meth:`predict` takes an
    RGB image and its camera and returns metric depth on the image grid.
    """

    def __init__(self, name: str):
        super().__init__()
        if name not in MODEL_SPECS:
            raise InputError(f"unknown depth model {name!r}; available: {', '.join(MODEL_SPECS)}")
        self.name, self.spec = name, MODEL_SPECS[name]
        # channels-last convolutions run faster on CPU (oneDNN) and GPU; results differ only by rounding.
        self.depth_model = build_depth_model(self.spec).to(memory_format=torch.channels_last)
        self.autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16: mixed precision on CUDA
        self.eval()

    @classmethod
    def build(cls, name: str, device: str | torch.device = "cpu") -> "Metric3D":
        """Randomly initialised model (for training or key checks; ``device='meta'`` allocates nothing)."""
        with torch.device(device):
            return cls(name)

    @classmethod
    def from_pretrained(cls, name: str, weights: str | Path | None = None, device: str | torch.device = "cpu",
                        allow_download: bool = True) -> "Metric3D":
        """Model ``name`` with weights from ``weights`` (a local file) or the cache/official URL."""
        model = cls(name)
        path = resolve_weights(name, weights, allow_download=allow_download)
        load_into(model, path, model_name=name)
        return model.to(device).eval()

    def set_attention(self, mode: str) -> None:
        """ViT models: 'sdpa' (fused, default) or 'plain' (reference softmax(q k^T) v)."""
        if isinstance(self.depth_model.encoder, DinoV2Encoder):
            self.depth_model.encoder.set_attention(mode)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got {tuple(x.shape)}")
        return self.depth_model(x.contiguous(memory_format=torch.channels_last))

    def default_input_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The network input size :meth:`predict` uses for images of ``image_hw`` by default."""
        if self.spec.input_pixels is None:
            return self.spec.input_hw
        return input_hw_for_pixels(image_hw, self.spec.input_pixels, self.spec.input_multiple)

    @torch.inference_mode()
    def predict(self, image, camera: Camera, input_hw: tuple[int, int] | None = None) -> DepthPrediction:
        """Metric depth for one image.

        Args:
            image: (H, W, 3) uint8 RGB array or tensor.
            camera: its intrinsics (the focal length sets the metric scale).
            input_hw: network input size; default :meth:`default_input_hw`. A smaller size runs faster; the
                canonical scale follows the resize, so the output stays metric.

        Returns:
            :class:`DepthPrediction` on the image grid.
        """
        return self.predict_batch([image], camera, input_hw)[0]

    @torch.inference_mode()
    def predict_batch(self, images, camera: Camera, input_hw: tuple[int, int] | None = None) -> list[DepthPrediction]:
        """:meth:`predict` for several images of one camera in one forward pass."""
        input_hw = tuple(input_hw or self.default_input_hw((camera.height, camera.width)))
        m = self.spec.input_multiple
        if input_hw[0] % m or input_hw[1] % m:
            raise InputError(f"input size {input_hw} must be multiples of {m} for {self.name}")
        infos = [preprocess(img, camera, input_hw, self.device, self.spec.canonical_focal_px) for img in images]
        amp = self.autocast_dtype is not None and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=self.autocast_dtype) if amp else contextlib.nullcontext():
            out = self(torch.cat([i.tensor for i in infos]))
        return [to_prediction(out, k, info, self.spec.max_depth_m) for k, info in enumerate(infos)]


def to_prediction(out: dict[str, torch.Tensor], k: int, info, max_depth_m: float) -> DepthPrediction:
    """Item ``k`` of a network output batch (depth, confidence[, normal]) as a metric prediction on the
    image grid of ``info`` (a :class:`~mono_metric.depth.canonical.CanonicalInput`)."""
    depth = postprocess_depth(out["depth"][k, 0], info, max_depth_m)
    conf = postprocess_map(out["confidence"][k], info)[0]
    normal = out.get("normal")
    normal = None if normal is None else _np(postprocess_normal(normal[k, :3], info))
    return DepthPrediction(_np(depth), _np(conf), normal)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float32)
