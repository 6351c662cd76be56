"""Deterministic synthetic weights for regression tests against reference outputs.

Every tensor is drawn from a generator seeded by its own key, so the weights do not depend on the
order in which modules are built. ``tests/data/metric3d_golden.npz`` holds the outputs of the
official Metric3D implementation for these weights and the input below (generated once, offline, with
the official code; it is not part of this repository).
"""
from __future__ import annotations

import zlib

import torch

GOLDEN_INPUTS = {"metric3d_convnext_tiny": (64, 96), "metric3d_vit_small": (56, 84)}


def golden_state_dict(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of the shapes in ``reference``, a pure function of each key."""
    out = {}
    for key, ref in reference.items():
        if not ref.dtype.is_floating_point:
            out[key] = torch.zeros_like(ref, device="cpu")
            continue
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        r = torch.randn(ref.shape, generator=g)
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "running_var":
            out[key] = 0.5 + torch.rand(ref.shape, generator=g)
        elif leaf in ("running_mean", "bias"):
            out[key] = 0.1 * r
        elif leaf == "gamma":
            out[key] = 0.3 * r
        elif ref.ndim == 1:  # norm weights
            out[key] = 1.0 + 0.1 * r
        elif key.endswith(("pos_embed", "mask_token")):
            out[key] = 0.02 * r
        elif key.endswith(("cls_token", "register_tokens")):
            out[key] = r
        else:  # conv / linear weights: unit-variance outputs
            fan_in = max(1, ref[0].numel() if ref.ndim > 1 else 1)
            if "ConvTranspose" in key:
                fan_in = ref.shape[0]
            out[key] = r / fan_in**0.5
    return out


def golden_input(hw: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(12345)
    return torch.randn((1, 3, *hw), generator=g)
