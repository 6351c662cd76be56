"""DINOv2 vision transformer with register tokens, as the Metric3D v2 encoder.

Parameter names follow the DINOv2 release inside Metric3D checkpoints (``blocks.0.<i>`` because the
blocks form one chunk, ``ls1.gamma`` layer scales, ``mlp.w12``/``mlp.w3`` for SwiGLU). Attention runs
either through ``torch.nn.functional.scaled_dot_product_attention`` (default, fused and memory-lean) or
as the plain softmax(q k^T) v reference; both give the same result to float32 rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.mode = "sdpa"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.mode == "plain":
            attn = (q * (C // self.num_heads) ** -0.5) @ k.transpose(-2, -1)
            out = attn.softmax(dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8  # DINOv2's fused SwiGLU width
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim, 4 * dim) if ffn == "swiglu" else Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


VIT_SIZES = {
    "small": dict(dim=384, depth=12, heads=6, ffn="mlp", intermediate=False),
    "large": dict(dim=1024, depth=24, heads=16, ffn="mlp", intermediate=False),
    "giant2": dict(dim=1536, depth=40, heads=24, ffn="swiglu", intermediate=True),
}


class DinoV2Encoder(nn.Module):
    """DINOv2 ViT/14 with 4 registers, pretrained at 518 px (37 x 37 position grid).

    Args:
        dim, depth, heads, ffn: width, blocks, attention heads, 'mlp' or 'swiglu'.
        intermediate: return the un-normalised tokens after each quarter of the blocks (giant2);
            otherwise the final normalised tokens four times (small, large), as Metric3D does.

    Input (B, 3, H, W); returns (four (B, 1 + 4 + h*w, dim) token tensors, (h, w) patch grid).
    """

    patch = 14
    num_register_tokens = 4
    pos_grid = 37
    interpolate_offset = 0.1

    def __init__(self, dim: int, depth: int, heads: int, ffn: str, intermediate: bool):
        super().__init__()
        self.dim, self.intermediate = dim, intermediate
        self.patch_embed = PatchEmbed(dim, self.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid**2 + 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, self.num_register_tokens, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList([nn.ModuleList(Block(dim, heads, ffn) for _ in range(depth))])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def set_attention(self, mode: str) -> None:
        """'sdpa' (fused) or 'plain' (reference) attention."""
        if mode not in ("sdpa", "plain"):
            raise ValueError(f"attention mode must be 'sdpa' or 'plain', got {mode!r}")
        for m in self.modules():
            if isinstance(m, Attention):
                m.mode = mode

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h*w, dim): the 37x37 grid resampled bicubically to h x w patches."""
        pos = self.pos_embed.float()
        n = self.pos_grid
        if h * w == n * n and h == w:
            return self.pos_embed
        grid = pos[:, 1:].reshape(1, n, n, self.dim).permute(0, 3, 1, 2)
        # DINOv2 resamples with a scale factor (not a size) padded by a 0.1 offset; keep that exactly.
        scale = ((h + self.interpolate_offset) / n, (w + self.interpolate_offset) / n)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        if grid.shape[-2:] != (h, w):
            raise RuntimeError(f"position grid resampled to {tuple(grid.shape[-2:])}, expected {(h, w)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, self.dim)
        return torch.cat((pos[:, :1], grid), dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        B, _, H, W = x.shape
        pad_h, pad_w = (-H) % self.patch, (-W) % self.patch
        if pad_h or pad_w:
            x = F.interpolate(x, (H + pad_h, W + pad_w), mode="bilinear")
        h, w = x.shape[2] // self.patch, x.shape[3] // self.patch
        tokens = torch.cat((self.cls_token.expand(B, -1, -1), self.patch_embed(x)), dim=1)
        tokens = tokens + self.position_embedding(h, w)
        tokens = torch.cat((tokens[:, :1], self.register_tokens.expand(B, -1, -1), tokens[:, 1:]), dim=1)
        blocks = self.blocks[0]
        feats = []
        quarter = len(blocks) // 4
        for i, blk in enumerate(blocks):
            tokens = blk(tokens)
            if self.intermediate and (i + 1) % quarter == 0:
                feats.append(tokens)
        if not self.intermediate:
            feats = [self.norm(tokens)] * 4
        return feats, (h, w)

