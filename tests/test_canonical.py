import cv2
import numpy as np
import pytest
import torch

from mono_metric import Camera, InputError
from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.depth.canonical import (CANONICAL_FOCAL_PX, CONVNEXT_INPUT_HW, VIT_INPUT_HW,
                                         canonical_to_metric_depth, cstm_image, cstm_label,
                                         postprocess_depth, postprocess_normal, preprocess)


@pytest.fixture(scope="module")
def street_frame():
    seq = SyntheticSequence(SyntheticConfig(scene="street", seed=2, frames=1, width=620, height=188, noise_std=0))
    return seq[0]


@pytest.mark.parametrize("input_hw", [VIT_INPUT_HW, CONVNEXT_INPUT_HW])
def test_preprocess_geometry(street_frame, input_hw):
    info = preprocess(street_frame.image, street_frame.camera, input_hw)
    assert info.tensor.shape == (1, 3, *input_hw) and info.tensor.dtype == torch.float32
    top, bottom, left, right = info.pad
    h, w = street_frame.image.shape[:2]
    assert info.scale == pytest.approx(min(input_hw[0] / h, input_hw[1] / w))
    assert top + bottom + int(h * info.scale) == input_hw[0] and left + right + int(w * info.scale) == input_hw[1]
    assert abs(top - bottom) <= 1 and abs(left - right) <= 1
    if top:  # padding is the mean colour rounded to uint8, i.e. about zero after normalisation
        assert info.tensor[0, :, :top].abs().max() < 0.01
    assert info.camera_scaled.fx == pytest.approx(street_frame.camera.fx * info.scale)
    # Pixel (u, v) of the image lands at (u * s + left, v * s + top) of the input: compare colours.
    u, v = 300, 120
    expect = (street_frame.image[v, u].astype(np.float32) - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]
    got = info.tensor[0, :, int(round(v * info.scale)) + top, int(round(u * info.scale)) + left].numpy()
    assert np.abs(got - expect).max() < 0.6  # resampling blurs, but the colour is the same


def _ideal_canonical_prediction(frame, info):
    """What a perfect canonical-space network outputs: depth of the resized image times f_c / fx_scaled."""
    cam = info.camera_scaled
    d = cv2.resize(frame.depth_m, (cam.width, cam.height), interpolation=cv2.INTER_NEAREST)
    d = d * (CANONICAL_FOCAL_PX / cam.fx)
    top, bottom, left, right = info.pad
    return torch.from_numpy(np.pad(d, ((top, bottom), (left, right))))


def test_canonical_round_trip_gives_metres(street_frame):
    info = preprocess(street_frame.image, street_frame.camera, VIT_INPUT_HW)
    depth = postprocess_depth(_ideal_canonical_prediction(street_frame, info), info).numpy()
    gt = street_frame.depth_m
    assert depth.shape == gt.shape
    valid = gt > 0
    rel = np.abs(depth[valid] - gt[valid]) / gt[valid]
    assert np.median(rel) < 0.01  # only resampling at depth edges differs


def test_focal_length_factor_scales_metric_output(street_frame):
    cam = street_frame.camera
    canonical = torch.rand(*VIT_INPUT_HW) * 50 + 1
    d1 = postprocess_depth(canonical, preprocess(street_frame.image, cam))
    cam2 = Camera(cam.fx * 1.7, cam.fy * 1.7, cam.cx, cam.cy, cam.width, cam.height)
    d2 = postprocess_depth(canonical, preprocess(street_frame.image, cam2))
    torch.testing.assert_close(d2, (d1 * 1.7).clamp(max=300.0), rtol=1e-5, atol=1e-5)


def test_normals_are_unit_and_resized(street_frame):
    info = preprocess(street_frame.image, street_frame.camera)
    n = postprocess_normal(torch.randn(3, *VIT_INPUT_HW), info)
    assert n.shape == (*street_frame.image.shape[:2], 3)
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(n.shape[:2]), rtol=1e-4, atol=1e-4)


def test_cstm_label_round_trip():
    d = np.array([1.0, 10.0, 50.0])
    np.testing.assert_allclose(cstm_label(d, 500.0), d * 2.0)
    np.testing.assert_allclose(canonical_to_metric_depth(cstm_label(d, 718.0), 718.0), d)
    with pytest.raises(InputError):
        cstm_label(d, 0.0)


def test_cstm_image_makes_the_camera_canonical(street_frame):
    img, depth, cam = cstm_image(street_frame.image, street_frame.depth_m, street_frame.camera)
    assert img.shape == street_frame.image.shape and cam.fx == CANONICAL_FOCAL_PX
    assert (cam.cx, cam.cy) == (street_frame.camera.cx, street_frame.camera.cy)
    # A 3D point projects to corresponding pixels of both images with the same depth.
    src = street_frame.camera
    pts = src.backproject(np.array([[310.0, 100.0], [250.0, 150.0]]), np.array([12.0, 7.0]))
    uv_c, z_c = cam.project(pts)
    s = CANONICAL_FOCAL_PX / src.fx
    np.testing.assert_allclose(uv_c, s * (src.project(pts)[0] - [src.cx, src.cy]) + [src.cx, src.cy], atol=1e-9)
    # Depth values are unchanged by the zoom (compare at the principal point, a fixed point).
    u0, v0 = int(round(src.cx)), int(round(src.cy))
    assert depth[v0, u0] == pytest.approx(street_frame.depth_m[v0, u0], rel=0.02)


def test_input_hw_for_pixels_keeps_aspect_and_multiples():
    from mono_metric.depth.canonical import input_hw_for_pixels

    assert input_hw_for_pixels((376, 1241), 80_000, 32) == (160, 512)
    assert input_hw_for_pixels((480, 640), 80_000, 32) == (256, 320)
    assert input_hw_for_pixels((10, 4000), 80_000, 32) == (32, 5664)  # very wide: the height floors at one multiple
    with pytest.raises(InputError, match="positive"):
        input_hw_for_pixels((0, 640), 80_000, 32)
