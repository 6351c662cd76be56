import numpy as np
import pytest
import torch

from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.train.losses import (LossWeights, log_l1_loss, normals_from_depth, pwn_loss, rpnl_loss,
                                      silog_loss, total_loss, vnl_loss)


@pytest.fixture(scope="module")
def batch():
    """Two synthetic room frames with exact depth; some pixels made invalid (0, NaN, inf)."""
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=3, frames=2, width=96, height=72))
    gt = torch.from_numpy(np.stack([f.depth_m for f in seq]))[:, None].float()
    gt[0, 0, :5, :10] = 0.0
    gt[1, 0, 10:12, 20:30] = float("nan")
    gt[1, 0, 40, 40] = float("inf")
    mask = torch.ones_like(gt, dtype=torch.bool)
    K = torch.from_numpy(seq.camera.K).float().expand(2, 3, 3).clone()
    return gt, mask, K


def _gen():
    return torch.Generator().manual_seed(0)


def _perfect(gt):
    return torch.nan_to_num(gt, nan=1.0, posinf=1.0).clamp_min(0.1)


def test_perfect_prediction_gives_zero(batch):
    gt, mask, K = batch
    pred = _perfect(gt)
    assert silog_loss(pred, gt, mask) < 1e-5
    assert rpnl_loss(pred, gt, mask, generator=_gen()) < 1e-6
    assert vnl_loss(pred, gt, mask, K, generator=_gen()) < 1e-4
    assert pwn_loss(pred, gt, mask, K, generator=_gen()) < 1e-5
    assert log_l1_loss(pred, gt, mask) < 1e-6
    total, parts = total_loss(pred, gt, mask, K, generator=_gen())
    assert total < 1e-4 and set(parts) == {"silog", "rpnl", "vnl", "pwn"}


def test_scale_behaviour(batch):
    gt, mask, K = batch
    pred = _perfect(gt)
    s = 1.7
    # SILog: invariant with full variance focus; keeps sqrt(1 - lambda) * |log s| otherwise.
    assert silog_loss(pred * s, gt, mask, variance_focus=1.0) < 1e-3
    assert silog_loss(pred * s, gt, mask, variance_focus=0.85) == pytest.approx(np.sqrt(0.15) * np.log(s), rel=1e-3)
    # log-L1: sees a global scale exactly.
    assert log_l1_loss(pred * s, gt, mask) == pytest.approx(np.log(s), rel=1e-4)
    # RPNL: invariant to scale and shift.
    assert rpnl_loss(pred * s + 0.3, gt, mask, generator=_gen()) < 1e-5
    # VNL and PWN: normals do not change under a global scale of the points.
    assert vnl_loss(pred * s, gt, mask, K, generator=_gen()) < 1e-4
    assert pwn_loss(pred * s, gt, mask, K, generator=_gen()) < 1e-5
    # ...but they do see a wrong shape.
    warped = pred * (1.0 + 0.5 * torch.linspace(0, 1, pred.shape[-1]))
    assert vnl_loss(warped, gt, mask, K, generator=_gen()) > 0.05
    assert pwn_loss(warped, gt, mask, K, generator=_gen()) > 0.01
    assert rpnl_loss(warped, gt, mask, generator=_gen()) > 0.01


def test_gradients_finite_with_invalid_pixels(batch):
    gt, mask, K = batch
    pred = (_perfect(gt) * 1.2 + 0.1 * torch.rand_like(gt)).requires_grad_(True)
    total, _ = total_loss(pred, gt, mask, K, LossWeights(1.0, 1.0, 1.0, 1.0, 1.0), generator=_gen())
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(pred.grad).all()
    invalid = ~torch.isfinite(gt) | (gt <= 0)
    assert (pred.grad[invalid] == 0).all()  # invalid ground truth never pulls the prediction


def test_normals_from_depth_of_a_plane():
    K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]])
    depth = torch.full((1, 1, 48, 64), 3.0)  # fronto-parallel wall
    n = normals_from_depth(depth, K)
    torch.testing.assert_close(n[0, :, 10, 10].abs(), torch.tensor([0.0, 0.0, 1.0]), atol=1e-5, rtol=0)


def test_shape_errors(batch):
    gt, mask, _ = batch
    with pytest.raises(ValueError, match="B, 1, H, W"):
        silog_loss(gt[:, 0], gt[:, 0], mask[:, 0])
