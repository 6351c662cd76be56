"""The fused CPU inference kernels of the ConvNeXt models against their plain PyTorch layers."""
import pytest
import torch
import torch.nn.functional as F

from golden import golden_input, golden_state_dict
from mono_metric.depth import Metric3D
from mono_metric.depth.metric3d import fused


@pytest.mark.parametrize("factor", [2, 4])
def test_subpixel_conv_equals_conv_of_upsampled(factor):
    g = torch.Generator().manual_seed(factor)
    x, w, b = torch.randn(2, 5, 7, 9, generator=g), torch.randn(3, 5, 3, 3, generator=g), torch.randn(3, generator=g)
    ref = F.conv2d(F.interpolate(x, scale_factor=factor, mode="nearest"), w, b, padding=1)
    wp, bp = fused.subpixel_conv3x3(w, b, factor)
    y = F.conv2d(x, wp, bp, padding=1)  # (B, factor**2 * C_out, h, w), phase-major
    B, _, h, ww = y.shape
    y = y.view(B, factor, factor, 3, h, ww).permute(0, 3, 4, 1, 5, 2).reshape(B, 3, h * factor, ww * factor)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_fold_bn_equals_conv_then_bn():
    g = torch.Generator().manual_seed(0)
    conv, bn = torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(t.shape, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(6, generator=g))
        x = torch.randn(2, 4, 8, 8, generator=g)
        torch.testing.assert_close(F.conv2d(x, *fused.fold_bn(conv.weight, conv.bias, bn), padding=1), bn(conv(x)))
        deconv = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, bias=False)
        bn4 = torch.nn.BatchNorm2d(4).eval()
        bn4.running_mean.copy_(torch.randn(4, generator=g))
        y = torch.randn(2, 6, 5, 5, generator=g)
        w, b = fused.fold_bn(deconv.weight, None, bn4, transposed=True)
        torch.testing.assert_close(F.conv_transpose2d(y, w, b, 2, 1, 1), bn4(deconv(y)))


@pytest.mark.parametrize("name,hw", [("metric3d_convnext_tiny", (96, 160)), ("mono_metric_tiny", (64, 192))])
def test_fused_model_equals_reference_layers(name, hw):
    model = Metric3D.build(name)
    model.load_state_dict(golden_state_dict(model.state_dict()))  # non-trivial BatchNorm statistics
    x = golden_input(hw)
    with torch.no_grad():
        assert fused.use_fused(x.contiguous(memory_format=torch.channels_last), model)
        out = model(x)
        with fused.reference_kernels():
            assert not fused.use_fused(x.contiguous(memory_format=torch.channels_last), model)
            ref = model(x)
    for key in ref:
        scale = ref[key].abs().max().item()
        torch.testing.assert_close(out[key], ref[key], rtol=1e-5, atol=1e-5 * scale)


def test_fused_kernels_only_in_inference():
    model = Metric3D.build("mono_metric_tiny")
    x = torch.zeros(1, 3, 32, 64).contiguous(memory_format=torch.channels_last)
    assert not fused.use_fused(x, model)  # autograd on
    with torch.no_grad():
        assert not fused.use_fused(x.contiguous(), model)  # not channels-last
        assert not fused.use_fused(x.double(), model)
        model.train()
        assert not fused.use_fused(x, model)  # BatchNorm uses batch statistics
    out = model(torch.rand(2, 3, 64, 96))  # training-mode forward with gradients: the plain layers
    out["depth"].mean().backward()
    assert model.depth_model.encoder.stages[0][0].pwconv1.weight.grad is not None


def test_composed_3x3_of_1x1_equals_two_convs():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, 4, 6, 7, generator=g).contiguous(memory_format=torch.channels_last)
    w1, b1 = torch.randn(8, 4, 1, 1, generator=g), torch.randn(8, generator=g)
    conv3 = torch.nn.Conv2d(8, 5, 3, padding=1)
    with torch.no_grad():
        ref = conv3(F.conv2d(h, w1, b1))
        out = fused.conv3x3_of_1x1(h, w1, b1, conv3, conv3.weight, conv3.bias)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
