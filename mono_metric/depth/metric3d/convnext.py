"""ConvNeXt encoder (Liu et al. 2022) returning the four stage features, with Metric3D's parameter names.

Parameter names follow the original ConvNeXt release (``downsample_layers``, ``stages``, ``dwconv``,
``pwconv1``, ``gamma``...), which Metric3D v1 checkpoints use. Inference only: no stochastic depth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mono_metric.depth.metric3d import fused


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, H, W) tensors (eps 1e-6).

    Runs ``F.layer_norm`` on the (B, H, W, C) view: no copy for channels-last input, one fused kernel
    instead of the eight passes of the written-out mean/variance formula (same result up to rounding).
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, MLP (4x) with GELU, layer scale, residual.

    In CPU inference (:func:`fused.use_fused`) the layer scale is folded into the second linear layer
    and the residual added in its GEMM. Where there are at least 4 pixels per weight row (4 * C * C
    values) both GEMMs run in oneDNN with the bias, GELU and residual fused; on the small deep maps
    (ConvNeXt-Tiny stage 4, Large stages 3-4) MKL's GEMMs were faster (e.g. 646 x 1536 MLP: 177 vs
    274 ms, 1 thread), so those keep PyTorch's linear layers.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        if fused.use_fused(x, self):
            w2, b2 = self.gamma[:, None] * self.pwconv2.weight, self.gamma * self.pwconv2.bias
            C = x.shape[1]
            if y.numel() >= 4 * C * C:  # many pixels per channel: oneDNN's fused GEMMs are faster
                y = fused.linear(self.norm(y), self.pwconv1.weight, self.pwconv1.bias, "gelu")
                return fused.linear(y, w2, b2, add=x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            # few pixels, wide layers (stride-16/32 stages): MKL's GEMMs are faster; residual and
            # layer scale still enter the second GEMM's accumulator (no separate passes)
            y = self.act(self.pwconv1(self.norm(y)))
            out = torch.addmm((x.permute(0, 2, 3, 1) + b2).reshape(-1, C), y.reshape(-1, y.shape[-1]), w2.t())
            return out.view(x.shape[0], x.shape[2], x.shape[3], C).permute(0, 3, 1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXtEncoder(nn.Module):
    """ConvNeXt backbone.

    Args:
        depths: blocks per stage.
        dims: channels per stage.

    Input (B, 3, H, W) with H, W multiples of 32; output four maps at strides 4, 8, 16, 32.
    """

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...]):
        super().__init__()
        self.dims = tuple(dims)
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))]
            + [nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
               for i in range(3)])
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtBlock(dims[i]) for _ in range(depths[i])]) for i in range(4))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
            feats.append(x)
        return feats


CONVNEXT_SIZES = {
    "nano": dict(depths=(2, 2, 4, 2), dims=(32, 64, 128, 256)),
    "tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "large": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
}
