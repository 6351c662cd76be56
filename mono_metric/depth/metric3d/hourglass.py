"""Metric3D v1 decoder: a feature pyramid decoder, an hourglass (U-Net) head, depth as the expectation
over 512 log-spaced bins, and a learned residual upsampling to the input resolution.

Outputs canonical-space depth (metres for a 1000 px focal length) and a confidence map.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mono_metric.depth.metric3d import fused


class ELUConv(nn.Module):
    """Conv (3x3 with reflection padding, or 1x1) + ELU; ``double`` adds a 1x1 conv + ELU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, double: bool = False):
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)) if kernel_size == 3 \
            else nn.Conv2d(cin, cout, 1)
        self.conv_2 = nn.Conv2d(cout, cout, 1) if double else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.use_fused(x, self):  # oneDNN convolutions (PyTorch runs 1x1 ones as im2col + GEMM), ELU in place
            conv = self.conv if isinstance(self.conv, nn.Conv2d) else self.conv[1]
            if conv is not self.conv:
                x = self.conv[0](x).contiguous(memory_format=torch.channels_last)
            x = F.elu_(fused.conv(x, conv))
            return F.elu_(fused.conv(x, self.conv_2)) if self.conv_2 is not None else x
        x = F.elu(self.conv(x))
        return F.elu(self.conv_2(x)) if self.conv_2 is not None else x


class PyramidDecoder(nn.Module):
    """Fuses encoder features at strides 32, 16, 8, 4 into one map at stride 4."""

    def __init__(self, feat_channels, dec_channels):
        super().__init__()
        f, d = feat_channels, dec_channels
        self.upconv_3_0 = ELUConv(f[3], d[3], 1)
        self.upconv_3_1 = ELUConv(f[2] + d[3], d[3], 1, double=True)
        self.upconv_2_0 = ELUConv(d[3], d[2], 3)
        self.upconv_2_1 = ELUConv(f[1] + d[2], d[2], 3, double=True)
        self.upconv_1_0 = ELUConv(d[2], d[1], 3)
        self.upconv_1_1 = ELUConv(f[0] + d[1], d[1], 3, double=True)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[3]
        for level, (first, second) in zip((2, 1, 0), ((self.upconv_3_0, self.upconv_3_1),
                                                      (self.upconv_2_0, self.upconv_2_1),
                                                      (self.upconv_1_0, self.upconv_1_1))):
            x = F.interpolate(first(x), scale_factor=2, mode="nearest")
            x = second(torch.cat((x, feats[level]), 1))
        return x


class ConvBnReLU(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.use_fused(x, self):
            return fused.conv(x, self.conv, *fused.fold_bn(self.conv.weight, None, self.bn), act="relu")
        return F.relu(self.bn(self.conv(x)))


class Hourglass(nn.Module):
    """U-Net with three stride-2 levels (128, 64, 32, 16 channels) and additive skips."""

    def __init__(self, cin: int, cout: int, width: int = 128, levels: int = 3):
        super().__init__()
        ch = [width, width // 2, width // 4, width // 8, width // 8]
        self.levels = levels
        self.conv0 = ConvBnReLU(cin, width)
        for i in range(levels):
            setattr(self, f"conv_{i}", nn.Sequential(ConvBnReLU(ch[i], ch[i + 1], stride=2),
                                                     ConvBnReLU(ch[i + 1], ch[i + 1])))
            setattr(self, f"deconv_{i}", nn.Sequential(
                nn.ConvTranspose2d(ch[i + 1], ch[i], 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(ch[i]), nn.ReLU()))
        self.prob = nn.Conv2d(width, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H, W); H, W multiples of 8."""
        return self.prob(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, width, H, W) map before the output convolution ``prob``."""
        skips = [self.conv0(x)]
        for i in range(self.levels):
            skips.append(getattr(self, f"conv_{i}")(skips[-1]))
        x = skips.pop()
        for i in reversed(range(self.levels)):
            deconv = getattr(self, f"deconv_{i}")
            if fused.use_fused(x, self):  # BatchNorm folded into the transposed conv, in-place ReLU and skip
                w, b = fused.fold_bn(deconv[0].weight, None, deconv[1], transposed=True)
                x = F.conv_transpose2d(x, w, b, 2, 1, 1).relu_().add_(skips[i])
            else:
                x = skips[i] + deconv(x)
        return x


class HourglassDecoder(nn.Module):
    """Metric3D v1 head.

    Args:
        feat_channels: encoder channels at strides 4, 8, 16, 32.
        dec_channels: decoder channels (4 values; index 1 feeds the hourglass).
        min_depth, max_depth: range of the log-spaced depth bins (canonical metres).
        num_bins: depth bins (512 in the official models).
        feat_dim: hourglass output features (256 official).
        hourglass_width: widest hourglass level (128 official).
        residual_channels: width of the upsampling residual branch (16 official).
        pixel_grid: feed absolute pixel coordinates to the residual branch (official). A model trained
            on random crops must not see them (they differ between crops and full images): False
            feeds zeros in their place (same parameters).
    """

    def __init__(self, feat_channels, dec_channels, min_depth: float = 0.3, max_depth: float = 150.0,
                 num_bins: int = 512, feat_dim: int = 256, hourglass_width: int = 128, residual_channels: int = 16,
                 pixel_grid: bool = True):
        super().__init__()
        self.pixel_grid = pixel_grid
        self.decoder_mono = PyramidDecoder(feat_channels, dec_channels)
        self.conv_out_2 = Hourglass(dec_channels[1], feat_dim + 1, width=hourglass_width)
        n, r = num_bins, residual_channels
        self.depth_regressor_2 = nn.Sequential(nn.Conv2d(feat_dim, n, 3, padding=1), nn.BatchNorm2d(n),
                                               nn.ReLU(), nn.Conv2d(n, n, 1))
        self.conv_up_2 = nn.Sequential(
            nn.Conv2d(1 + 2 + feat_dim, r, 3, padding=1), nn.BatchNorm2d(r), nn.ReLU(),
            nn.Conv2d(r, r, 3, padding=1), nn.Upsample(scale_factor=4), nn.Conv2d(r, r, 3, padding=1), nn.ReLU(),
            nn.Conv2d(r, 1, 1))
        bins = torch.exp(torch.linspace(math.log(min_depth), math.log(max_depth), n))
        self.register_buffer("depth_bins", bins, persistent=False)

    def forward(self, feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.decoder_mono(feats)
        if fused.use_fused(x, self):
            return self._forward_fused(x)
        out = self.conv_out_2(x)
        confidence, feat = out[:, -1:], out[:, :-1]
        prob = self.depth_regressor_2(feat).softmax(dim=1)
        depth = (prob * self.depth_bins.view(1, -1, 1, 1)).sum(1, keepdim=True)
        return self._upsample(depth, confidence, feat)

    def _forward_fused(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`forward` for CPU inference: the same layers with BatchNorm folded and activations fused
        (see :mod:`fused`), the hourglass output convolution split into features and confidence (no
        strided slice copies), and the bin expectation computed in place on the channels-last
        (B, H, W, bins) view of the logits (no layout conversion, no probability map)."""
        h = self.conv_out_2.features(x)
        prob_conv = self.conv_out_2.prob
        n = prob_conv.out_channels - 1
        feat = fused.conv(h, prob_conv, prob_conv.weight[:n], prob_conv.bias[:n])
        confidence = fused.conv(h, prob_conv, prob_conv.weight[n:], prob_conv.bias[n:])
        reg = self.depth_regressor_2
        w_r, b_r = fused.fold_bn(reg[0].weight, reg[0].bias, reg[1])
        if h.shape[1] < n:  # the 3x3 regressor composed with the widening 1x1 output conv reads h: fewer MACs
            y = fused.conv3x3_of_1x1(h, prob_conv.weight[:n], prob_conv.bias[:n], reg[0], w_r, b_r).relu_()
        else:
            y = fused.conv(feat, reg[0], w_r, b_r, act="relu")
        logits = fused.conv(y, reg[3])
        # softmax expectation in place on the (B, H, W, bins) view: one GEMM gives numerator and denominator
        z = logits.permute(0, 2, 3, 1)
        z.sub_(z.amax(dim=-1, keepdim=True)).exp_()
        num_den = z @ torch.stack((self.depth_bins, torch.ones_like(self.depth_bins)), 1)
        depth = (num_den[..., 0] / num_den[..., 1]).unsqueeze(1)
        return self._upsample_fused(depth, confidence, feat)

    def _upsample_fused(self, depth: torch.Tensor, confidence: torch.Tensor,
                        feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`_upsample` at stride 4: the residual branch's first convolution split into its feature
        and (depth, pixel grid) inputs (no concatenated copy), its upsampling and the convolutions after
        it as one sub-pixel convolution and a per-phase 1x1 convolution (:func:`fused.subpixel_conv3x3`),
        so that only the final one-channel depth is shuffled to the input resolution."""
        B, _, H, W = depth.shape
        up = self.conv_up_2
        f = up[4].scale_factor
        if not (isinstance(f, (int, float)) and float(f).is_integer()):
            raise ValueError(f"residual upsampling factor {f} must be an integer")
        f = int(f)
        w0, b0 = fused.fold_bn(up[0].weight, up[0].bias, up[1])
        if self.pixel_grid:
            ys, xs = torch.meshgrid(torch.arange(H, dtype=depth.dtype, device=depth.device),
                                    torch.arange(W, dtype=depth.dtype, device=depth.device), indexing="ij")
            dg = torch.cat((depth, torch.stack((xs, ys)).expand(B, 2, H, W)), 1)
            dg = fused.conv(dg.contiguous(memory_format=torch.channels_last), up[0], w0[:, :3].contiguous(), None)
        else:  # the grid's inputs are zeros: only the depth channel contributes
            dg = fused.conv(depth.contiguous(memory_format=torch.channels_last), up[0], w0[:, :1].contiguous(), None)
        x = fused.conv(feat, up[0], w0[:, 3:].contiguous(), b0, act="relu", add=dg)
        x = fused.conv(x, up[3])
        x = fused.conv(x, up[5], *fused.subpixel_conv3x3(up[5].weight, up[5].bias, f), act="relu")
        # 1x1 convolution to one channel, applied to each phase on the channels-last (B, H, W, phase, C) view
        last = up[7]
        residual = x.permute(0, 2, 3, 1).reshape(B, H, W, f * f, -1) @ last.weight.view(-1) + last.bias
        depth = torch.add(depth.view(B, H, W, 1), residual, alpha=0.1)  # (B, H, W, phase (a, b))
        depth = depth.view(B, H, W, f, f).permute(0, 1, 3, 2, 4).reshape(B, 1, H * f, W * f)
        return {"depth": depth, "confidence": F.interpolate(confidence, scale_factor=f, mode="nearest")}

    def _upsample(self, depth: torch.Tensor, confidence: torch.Tensor, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stride-4 depth (B, 1, h, w), confidence and features -> outputs at the input resolution."""
        B, _, H, W = depth.shape
        ys, xs = torch.meshgrid(torch.arange(H, dtype=depth.dtype, device=depth.device),
                                torch.arange(W, dtype=depth.dtype, device=depth.device), indexing="ij")
        grid = torch.stack((xs, ys)).expand(B, 2, H, W)
        if not self.pixel_grid:
            grid = torch.zeros_like(grid)
        residual = self.conv_up_2(torch.cat((depth, grid, feat), 1))
        depth = F.interpolate(depth, scale_factor=4, mode="nearest") + 0.1 * residual
        return {"depth": depth, "confidence": F.interpolate(confidence, scale_factor=4, mode="nearest")}
