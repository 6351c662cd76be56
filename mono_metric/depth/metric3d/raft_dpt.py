"""Metric3D v2 decoder: DPT-style reassembly of ViT tokens, depth-bin regression and surface normals at
1/4 resolution, then RAFT-style refinement with a three-level ConvGRU and convex upsampling.

The refined state has 6 channels: normalised depth (1), depth confidence (1), normal + concentration (4).
Outputs canonical depth in [min_depth, max_depth], confidence, and unit normals with concentration.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _interp(x: torch.Tensor, size=None, scale_factor=None, mode="bilinear") -> torch.Tensor:
    kw = {"align_corners": True} if mode == "bilinear" else {}
    return F.interpolate(x.float(), size=size, scale_factor=scale_factor, mode=mode, **kw)


def normalize_normal(x: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) raw normal + concentration -> unit normal and kappa = elu(k) + 1.01."""
    n, kappa = x[:, :3], x[:, 3:4]
    n = n / (torch.sqrt((n**2).sum(1, keepdim=True)) + 1e-10)
    return torch.cat((n, F.elu(kappa) + 1.0 + 0.01), dim=1)


class Readout(nn.Module):
    """Patch tokens plus a projection of the class and register tokens, GELU."""

    def __init__(self, dim: int, num_prefix_tokens: int):
        super().__init__()
        self.project_patch = nn.Linear(dim, dim)
        self.project_learn = nn.Linear(num_prefix_tokens * dim, dim, bias=False)
        self.act = nn.GELU()

    def forward(self, patches: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        return self.act(self.project_patch(patches) + self.project_learn(prefix))


class Token2Feature(nn.Module):
    """Tokens (B, h, w, C) -> feature map at ``scale`` times the patch grid."""

    def __init__(self, dim: int, out_ch: int, scale: float, num_prefix_tokens: int):
        super().__init__()
        self.scale = scale
        self.readoper = Readout(dim, num_prefix_tokens)
        if scale == 1:
            self.sample = nn.Identity()
        elif float(scale).is_integer():
            self.sample = nn.ConvTranspose2d(dim, out_ch, kernel_size=int(scale), stride=int(scale))
        else:
            self.sample = nn.Sequential(nn.Conv2d(dim, out_ch, 1))

    def forward(self, patches: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        x = self.readoper(patches, prefix).permute(0, 3, 1, 2).contiguous()
        if not float(self.scale).is_integer():
            x = _interp(x, scale_factor=self.scale, mode="nearest")
        return self.sample(x)


class EncoderFeature(nn.Module):
    """Four token maps -> features at 1/14, 1/14, 1/7 and 1/4 of the input."""

    def __init__(self, dim: int, channels, num_prefix_tokens: int):
        super().__init__()
        self.read_3 = Token2Feature(dim, channels[3], 1, num_prefix_tokens)
        self.read_2 = Token2Feature(dim, channels[2], 1, num_prefix_tokens)
        self.read_1 = Token2Feature(dim, channels[1], 2, num_prefix_tokens)
        self.read_0 = Token2Feature(dim, channels[0], 7 / 2, num_prefix_tokens)

    def forward(self, tokens: list[tuple[torch.Tensor, torch.Tensor]]):
        return (self.read_3(*tokens[3]), self.read_2(*tokens[2]), self.read_1(*tokens[1]), self.read_0(*tokens[0]))


class ResConv(nn.Module):
    """relu(x) + conv(relu(conv(relu(x)))).

    The skip carries relu(x): the released model applies an in-place ReLU to x before the convs, so
    its skip connection sees the rectified input. Reproduced here for identical outputs.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class FuseBlock(nn.Module):
    def __init__(self, cin: int, cout: int, fuse: bool = True, scale: float | None = 2.0):
        super().__init__()
        self.scale = scale
        self.way_trunk = ResConv(cin)
        self.way_branch = ResConv(cin) if fuse else None
        self.out_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.way_branch(skip)
        x = self.way_trunk(x)
        if self.scale is not None:
            x = _interp(x, scale_factor=self.scale)
        return self.out_conv(x)


class DecoderFeature(nn.Module):
    """1/14 -> 1/7 -> 1/4 fusion; the last two output channels are depth and normal confidences."""

    def __init__(self, ch):
        super().__init__()
        self.upconv_3 = FuseBlock(ch[4], ch[3], fuse=False, scale=None)
        self.upconv_2 = FuseBlock(ch[3], ch[2])
        self.upconv_1 = FuseBlock(ch[2], ch[1] + 2, scale=7 / 4)

    def forward(self, x, x2, x1, x0):
        return self.upconv_1(self.upconv_2(self.upconv_3(x), x2), x1)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with channel LayerNorm, and a 1x1 projection when the width changes."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm1, self.norm2 = LayerNorm2d(cout), LayerNorm2d(cout)
        if cin != cout:
            self.norm3 = LayerNorm2d(cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1), self.norm3)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        return F.relu((self.downsample(x) if self.downsample is not None else x) + y)


class ContextFeatureEncoder(nn.Module):
    """Hidden-state and context features at 1/4, 1/7, 1/14 from the reassembled encoder features."""

    def __init__(self, in_ch, hidden):
        super().__init__()
        for name, k in (("outputs04", 0), ("outputs08", 1), ("outputs16", 2)):
            setattr(self, name, nn.ModuleList(
                nn.Sequential(ResidualBlock(in_ch[k], hidden[k]), nn.Conv2d(hidden[k], hidden[k], 3, padding=1))
                for _ in range(2)))

    def forward(self, x4, x8, x16):
        return [[f(x) for f in level] for x, level in ((x4, self.outputs04), (x8, self.outputs08), (x16, self.outputs16))]


class ConvGRU(nn.Module):
    def __init__(self, hidden: int, inp: int):
        super().__init__()
        self.convz = nn.Conv2d(hidden + inp, hidden, 3, padding=1)
        self.convr = nn.Conv2d(hidden + inp, hidden, 3, padding=1)
        self.convq = nn.Conv2d(hidden + inp, hidden, 3, padding=1)

    def forward(self, h, cz, cr, cq, *inputs):
        x = torch.cat(inputs, dim=1)
        hx = torch.cat((h, x), dim=1)
        z = torch.sigmoid(self.convz(hx) + cz)
        r = torch.sigmoid(self.convr(hx) + cr)
        q = torch.tanh(self.convq(torch.cat((r * h, x), dim=1)) + cq)
        return (1 - z) * h + z * q


class FlowHead(nn.Module):
    """State update: 2 depth channels (depth, confidence) and 4 normal channels."""

    def __init__(self, hidden: int):
        super().__init__()
        self.conv1d, self.conv2d = nn.Conv2d(hidden, hidden, 3, padding=1), nn.Conv2d(hidden, 2, 3, padding=1)
        self.conv1n, self.conv2n = nn.Conv2d(hidden, hidden, 3, padding=1), nn.Conv2d(hidden, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.conv2d(F.relu(self.conv1d(x))), self.conv2n(F.relu(self.conv1n(x)))), dim=1)


def _pool2x(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


class MultiUpdateBlock(nn.Module):
    """Three-level ConvGRU (1/4, 1/7, 1/14), flow head and convex-upsampling mask."""

    def __init__(self, hidden, factor: int = 4, state_ch: int = 6):
        super().__init__()
        self.gru08 = ConvGRU(hidden[2], state_ch + hidden[1])
        self.gru16 = ConvGRU(hidden[1], hidden[0] + hidden[2])
        self.gru32 = ConvGRU(hidden[0], hidden[1])
        self.flow_head = FlowHead(hidden[2])
        self.mask = nn.Sequential(nn.Conv2d(hidden[2], hidden[2], 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(hidden[2], factor * factor * 9, 1))

    def step(self, net, inp, flow=None, iter16: bool = True, iter08: bool = True):
        net[2] = self.gru32(net[2], *inp[2], _pool2x(net[1]))
        if iter16:
            net[1] = self.gru16(net[1], *inp[1], _interp(_pool2x(net[0]), size=net[1].shape[2:]),
                                _interp(net[2], size=net[1].shape[2:]))
        if iter08:
            net[0] = self.gru08(net[0], *inp[0], flow, _interp(net[1], size=net[0].shape[2:]))
        return net


class RAFTDepthNormalDecoder(nn.Module):
    """Metric3D v2 head.

    Args:
        dim: ViT width.
        feature_channels, decoder_channels, hidden_channels: widths as in the official configs.
        iters: GRU refinement iterations (4 for small, 8 for large and giant2).
        min_depth, max_depth: canonical depth range of the 256 log-spaced bins.
    """

    num_bins = 256
    regress_scale = 100.0
    factor = 4

    def __init__(self, dim: int, feature_channels, decoder_channels, hidden_channels, iters: int,
                 num_prefix_tokens: int = 5, min_depth: float = 0.1, max_depth: float = 200.0):
        super().__init__()
        self.iters, self.min_depth, self.max_depth = iters, min_depth, max_depth
        self.num_prefix_tokens = num_prefix_tokens
        c = decoder_channels[1]
        self.token2feature = EncoderFeature(dim, feature_channels, num_prefix_tokens)
        self.decoder_mono = DecoderFeature(decoder_channels)
        self.depth_regressor = nn.Sequential(nn.Conv2d(c, self.num_bins, 3, padding=1), nn.ReLU(),
                                             nn.Conv2d(self.num_bins, self.num_bins, 1))
        self.normal_predictor = nn.Sequential(nn.Conv2d(c, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 128, 1),
                                              nn.ReLU(), nn.Conv2d(128, 128, 1), nn.ReLU(), nn.Conv2d(128, 3, 1))
        self.context_feature_encoder = ContextFeatureEncoder(feature_channels, hidden_channels)
        self.context_zqr_convs = nn.ModuleList(nn.Conv2d(hidden_channels[i], hidden_channels[i] * 3, 3, padding=1)
                                               for i in range(3))
        self.update_block = MultiUpdateBlock(hidden_channels, self.factor)
        bins = torch.exp(torch.linspace(math.log(min_depth), math.log(max_depth), self.num_bins))
        self.register_buffer("depth_bins", bins, persistent=False)

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(self.min_depth, self.max_depth)

    def upsample_convex(self, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, D, H, W) -> (N, D, 4H, 4W): each fine pixel a softmax-weighted 3x3 neighbourhood."""
        N, D, H, W = flow.shape
        f = self.factor
        mask = torch.softmax(mask.view(N, 1, 9, f, f, H, W), dim=2)
        patches = F.unfold(flow, [3, 3], padding=1).view(N, D, 9, 1, 1, H, W)
        up = (mask * patches).sum(dim=2).permute(0, 1, 4, 2, 5, 3)
        return up.reshape(N, D, f * H, f * W)

    def forward(self, tokens: list[torch.Tensor], grid_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        h, w = grid_hw
        p = self.num_prefix_tokens
        split = [(t[:, p:].reshape(t.shape[0], h, w, -1), t[:, :p].reshape(t.shape[0], 1, 1, -1)) for t in tokens]
        feats = self.token2feature(split)  # 1/14, 1/14, 1/7, 1/4
        ref = self.decoder_mono(*feats)
        fmap, depth_conf, normal_conf = ref[:, :-2], ref[:, -2:-1], ref[:, -1:]
        prob = self.depth_regressor(fmap).softmax(dim=1)
        depth = (prob * self.depth_bins.view(1, -1, 1, 1)).sum(1, keepdim=True)
        depth = (self.clamp(depth) - self.max_depth) / self.regress_scale
        normal = normalize_normal(torch.cat((self.normal_predictor(fmap), normal_conf), dim=1))
        state = torch.cat((depth, depth_conf, normal), dim=1)
        # The released model's in-place ReLUs in decoder_mono rectify the 1/7 and 1/14 maps before the
        # context encoder reads them; the 1/4 map is not touched. Same here, explicitly.
        ctx = self.context_feature_encoder(feats[3], F.relu(feats[2]), F.relu(feats[1]))
        net = [torch.tanh(c[0]) for c in ctx]
        inp = [list(conv(F.relu(c[1])).split(conv.out_channels // 3, dim=1))
               for c, conv in zip(ctx, self.context_zqr_convs)]
        for _ in range(self.iters):
            net = self.update_block.step(net, inp, iter16=False, iter08=False)
            net = self.update_block.step(net, inp, iter16=True, iter08=False)
            net = self.update_block.step(net, inp, flow=state, iter16=True, iter08=True)
            state = state + self.update_block.flow_head(net[0])
        # Only the last iteration's upsampling is an output, so the mask and the convex upsampling run
        # once (the released code repeats them every iteration for its training losses).
        up = self.upsample_convex(state, 0.25 * self.update_block.mask(net[0]))
        return {"depth": self.clamp(up[:, :1] * self.regress_scale + self.max_depth),
                "confidence": up[:, 1:2],
                "normal": normalize_normal(up[:, 2:])}
