"""Fused CPU inference kernels for the ConvNeXt models (oneDNN through ``torch.ops.mkldnn``).

PyTorch's eager CPU path runs a linear layer as a bias copy plus a GEMM, then each of GELU, BatchNorm,
ReLU and residual additions as its own pass over memory. oneDNN applies the bias, an activation and an
addition inside the GEMM or convolution (the kernels ``torch.compile`` itself uses on CPU), and
BatchNorm in eval mode folds into the preceding convolution's weights. The results equal the
unfused layers up to float32 rounding (tests/test_metric3d_golden.py runs both paths).

Measured on a 2-core Xeon (AVX-512), 2 threads, ConvNeXt-Tiny at 544x1216: see docs/models.md.

Used only where it applies: float32 CPU tensors in channels-last layout, no autograd, module in eval
mode, oneDNN available, and not while exporting or compiling a graph (ONNX export sees plain ops).
:func:`reference_kernels` turns it off (tests, comparisons).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

_state = {"enabled": hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available()}
_MKL = torch.ops.mkldnn


@contextlib.contextmanager
def reference_kernels():
    """Within this context the models run their plain PyTorch layers (no fused kernels)."""
    before = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = before


def use_fused(x: torch.Tensor, module: nn.Module) -> bool:
    """Whether ``module`` may run its fused kernels on input ``x`` (see the module docstring)."""
    return (_state["enabled"] and not module.training and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_grad_enabled() and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d,
            transposed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of a convolution followed by eval-mode ``bn``, as one convolution.

    Args:
        weight: (C_out, C_in/groups, kh, kw), or (C_in, C_out, kh, kw) when ``transposed``.
        bias: (C_out,) or None.
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    w = weight * (scale.view(1, -1, 1, 1) if transposed else scale.view(-1, 1, 1, 1))
    return w, shift if bias is None else shift + bias * scale


def conv(x: torch.Tensor, conv2d: nn.Conv2d, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
         act: str = "none", add: torch.Tensor | None = None) -> torch.Tensor:
    """act(conv2d(x) [+ add]) in one oneDNN call; ``weight``/``bias`` replace the layer's (folded BN).

    Args:
        x: (B, C_in, H, W) channels-last float32 CPU tensor.
        conv2d: the layer (zero padding) whose geometry (padding, stride, dilation, groups) is used.
        act: 'none' or 'relu'.
        add: optional (B, C_out, H', W') channels-last tensor added before the activation.
    """
    w = conv2d.weight if weight is None else weight
    b = conv2d.bias if weight is None else bias
    geom = (list(conv2d.padding), list(conv2d.stride), list(conv2d.dilation), conv2d.groups)
    if add is None:
        return _MKL._convolution_pointwise(x, w, b, *geom, act, [], None)
    return _MKL._convolution_pointwise.binary(x, add, w, b, *geom, "add", None, None if act == "none" else act,
                                              [], None)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str = "none",
           add: torch.Tensor | None = None) -> torch.Tensor:
    """act(x @ weight.T + bias) ('none' or exact 'gelu'), or x @ weight.T + bias + add, in one oneDNN call.

    Args:
        x: (..., C_in) contiguous float32 CPU tensor; add: (..., C_out) contiguous.
    """
    if add is None:
        return _MKL._linear_pointwise(x, weight, bias, act, [], "none" if act == "gelu" else None)
    return _MKL._linear_pointwise.binary(x, add, weight, bias, "add")


def subpixel_conv3x3(weight: torch.Tensor, bias: torch.Tensor | None, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 convolution (zero padding 1) after ``factor``x nearest upsampling, as one 3x3 convolution on
    the low-resolution map with ``factor**2`` phases of outputs.

    Output pixel (factor*i + a, factor*j + b) of conv(upsample(x)) reads low-resolution rows/columns
    i-1..i+1 / j-1..j+1 only, so phase (a, b) is a 3x3 convolution of x whose taps sum the original
    taps that land on the same low-resolution pixel (zero padding maps onto zero padding). This removes
    the upsampled intermediate map and its factor**2 larger convolution input.

    Args:
        weight: (C_out, C_in, 3, 3); bias: (C_out,) or None.

    Returns:
        Weights (factor**2 * C_out, C_in, 3, 3) and bias (factor**2 * C_out,), channels phase-major
        (channel (a * factor + b) * C_out + o); their output, pixel-shuffled phase by phase, equals
        conv(upsample(x)).
    """
    c_out = weight.shape[0]
    a = torch.arange(factor, device=weight.device)
    k = torch.arange(3, device=weight.device)
    low = torch.div(a[:, None] + k[None, :] - 1, factor, rounding_mode="floor") + 1  # (factor, 3): low-res tap
    taps = F.one_hot(low, 3).to(weight.dtype)  # (factor, k: high-res tap, t: low-res tap)
    w = torch.einsum("akt,blu,oikl->aboitu", taps, taps, weight).reshape(factor * factor * c_out, -1, 3, 3)
    b = torch.zeros(c_out, dtype=weight.dtype, device=weight.device) if bias is None else bias
    return w.contiguous(), b.repeat(factor * factor)


def conv3x3_of_1x1(h: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, conv3x3: nn.Conv2d, w3: torch.Tensor,
                   b3: torch.Tensor) -> torch.Tensor:
    """conv3x3(conv1x1(h)) (zero padding 1, no activation between) as one 3x3 convolution of ``h``.

    The composed kernel w3 . w1 reads C_mid = ``w1.shape[1]`` channels instead of C_out1: fewer
    multiply-adds when the 1x1 layer widens. Its bias b1 reaches a pixel only through the taps inside
    the image, so the border rows and columns lose the taps that fall on the zero padding (corrected
    here by inclusion-exclusion).

    Args:
        h: (B, C_mid, H, W) channels-last input of the 1x1 layer.
        w1, b1: 1x1 layer, (C1, C_mid, 1, 1) and (C1,).
        conv3x3: the 3x3 layer (geometry: stride 1, padding 1); w3, b3: its (C3, C1, 3, 3) and (C3,)
            weights (e.g. with BatchNorm folded).

    Returns:
        (B, C3, H, W) pre-activation output of the 3x3 layer.
    """
    if conv3x3.kernel_size != (3, 3) or conv3x3.padding != (1, 1) or conv3x3.stride != (1, 1):
        raise ValueError("conv3x3_of_1x1 needs a stride-1 3x3 layer with padding 1")
    w = torch.einsum("oikl,ij->ojkl", w3, w1[:, :, 0, 0])
    wb = torch.einsum("oikl,i->okl", w3, b1)  # (C3, 3, 3): each tap's share of b1
    y = conv(h, conv3x3, w.contiguous(), b3 + wb.sum((1, 2)))
    rows, cols = wb.sum(2), wb.sum(1)  # (C3, 3): per tap row / column
    y[:, :, 0] -= rows[:, 0, None]
    y[:, :, -1] -= rows[:, 2, None]
    y[:, :, :, 0] -= cols[:, 0, None]
    y[:, :, :, -1] -= cols[:, 2, None]
    for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):  # corners lost a row and a column: add the shared tap back
        y[:, :, r, c] += wb[:, 2 if r else 0, 2 if c else 0]
    return y
