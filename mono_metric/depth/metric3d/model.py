"""Metric3D models: named architectures, weights loading and ``predict(image, camera)``.

The module tree mirrors the official checkpoints (``depth_model.encoder``/``depth_model.decoder``), so
an official ``.pth`` file loads with ``strict=True``. Available here: the v1 ConvNeXt family.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mono_metric.camera import Camera
from mono_metric.depth.base import DepthPrediction
from mono_metric.depth.canonical import (CONVNEXT_INPUT_HW, postprocess_depth, postprocess_map, preprocess)
from mono_metric.depth.metric3d.convnext import CONVNEXT_SIZES, ConvNeXtEncoder
from mono_metric.depth.metric3d.hourglass import HourglassDecoder
from mono_metric.depth.weights import load_into, resolve_weights
from mono_metric.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model.

    Attributes:
        family: 'convnext' (v1).
        size: key of the family's size table.
        decoder_channels: hourglass decoder widths.
        input_hw: official network input (H, W).
        max_depth_m: clamp of metric outputs.
    """

    family: str
    size: str
    decoder_channels: tuple[int, ...]
    input_hw: tuple[int, int]
    max_depth_m: float = 300.0


MODEL_SPECS: dict[str, ModelSpec] = {
    "metric3d_convnext_tiny": ModelSpec("convnext", "tiny", (64, 64, 128, 256), CONVNEXT_INPUT_HW),
    "metric3d_convnext_large": ModelSpec("convnext", "large", (128, 128, 256, 512), CONVNEXT_INPUT_HW),
}


class DensePredictor(nn.Module):
    """Encoder + decoder, as the ``depth_model`` of the official checkpoints."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decoder(self.encoder(x))


def build_depth_model(spec: ModelSpec) -> DensePredictor:
    """The randomly initialised network of ``spec``."""
    if spec.family == "convnext":
        sizes = CONVNEXT_SIZES[spec.size]
        return DensePredictor(ConvNeXtEncoder(**sizes), HourglassDecoder(sizes["dims"], spec.decoder_channels))
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
        self.depth_model = build_depth_model(self.spec)
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

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got {tuple(x.shape)}")
        return self.depth_model(x)

    @torch.inference_mode()
    def predict(self, image, camera: Camera, input_hw: tuple[int, int] | None = None) -> DepthPrediction:
        """Metric depth for one image.

        Args:
            image: (H, W, 3) uint8 RGB array or tensor.
            camera: its intrinsics (the focal length sets the metric scale).
            input_hw: network input size; default the official one. A smaller size runs faster; the
                canonical scale follows the resize, so the output stays metric.

        Returns:
            :class:`DepthPrediction` on the image grid.
        """
        return self.predict_batch([image], camera, input_hw)[0]

    @torch.inference_mode()
    def predict_batch(self, images, camera: Camera, input_hw: tuple[int, int] | None = None) -> list[DepthPrediction]:
        """:meth:`predict` for several images of one camera in one forward pass."""
        input_hw = tuple(input_hw or self.spec.input_hw)
        if input_hw[0] % 32 or input_hw[1] % 32:
            raise InputError(f"input size {input_hw} must be multiples of 32 for {self.name}")
        infos = [preprocess(img, camera, input_hw, device=self.device) for img in images]
        out = self(torch.cat([i.tensor for i in infos]))
        preds = []
        for k, info in enumerate(infos):
            depth = postprocess_depth(out["depth"][k, 0], info, self.spec.max_depth_m)
            conf = postprocess_map(out["confidence"][k], info)[0]
            normal = out.get("normal")
            preds.append(DepthPrediction(_np(depth), _np(conf), None if normal is None else _np(normal[k])))
        return preds


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float32)
