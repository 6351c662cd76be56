"""The synthetic world's camera and depth-sensor effects are rendered as specified (docs/realism.md)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from mono_metric import InputError, load_sequence
from mono_metric.datasets.synthetic import RealismConfig, SyntheticConfig, SyntheticSequence
from mono_metric.datasets.synthetic.realism import (exposure_gains, jpeg_roundtrip, kinect_depth, sensor_response,
                                                    vignetting_factor)
from mono_metric.datasets.synthetic.render import to_uint8
from mono_metric.datasets.synthetic.shutter import _warp_maps, interpolate_poses, render_exposure, row_times
from mono_metric.geometry import inv_se3, rotation_angle_rad

SMALL = dict(width=160, height=120)


def handheld(realism=None, seed=4, frames=12, **kw):
    return SyntheticSequence(SyntheticConfig(scene="handheld", seed=seed, frames=frames, noise_std=0.0,
                                             realism=realism if realism is not None else RealismConfig(),
                                             **SMALL, **kw))


def test_effects_off_is_todays_render():
    """Defaults are off for the existing scenes, and the effect chain with every effect off is the plain render."""
    for scene in ("street", "room"):
        assert not SyntheticSequence(SyntheticConfig(scene=scene, frames=2, **SMALL)).realism.enabled
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=3, frames=5, **SMALL))
    plain = seq[2]
    t = float(seq.timestamps[2])
    color, depth, samples = render_exposure(seq.renderer, seq.camera, seq.pose_at, t)
    rgb = to_uint8(sensor_response(color, RealismConfig(), 1.0, seq.camera.cx, seq.camera.cy,
                                   np.random.default_rng(0)), seq.config.noise_std, seq.config.seed * 100003 + 2)
    assert samples == 1 and np.array_equal(rgb, plain.image) and np.array_equal(depth, plain.depth_m)


def test_rolling_shutter_is_a_row_wise_render():
    """Each row equals the row of a full global-shutter render at that row's exposure time."""
    seq = handheld(RealismConfig(readout_ms=30.0))
    frame = seq[6]
    times = row_times(seq.camera.height, float(seq.timestamps[6]), 0.030)
    assert times[-1] - times[0] == pytest.approx(0.030 * (seq.camera.height - 1) / seq.camera.height)
    assert np.mean(times) == pytest.approx(seq.timestamps[6])  # the middle row is exposed at the frame time
    for r in (0, 37, 60, 119):
        rgb, depth = seq.renderer.render(seq.camera, seq.pose_at(times[r:r + 1])[0])
        assert np.abs(frame.image[r].astype(int) - rgb[r]).max() <= 1
        np.testing.assert_allclose(frame.depth_m[r], depth[r], rtol=1e-5)
    # The shutter matters at this speed: a global-shutter render differs in the first and last rows.
    glob = seq.renderer.render(seq.camera, seq.gt.T_world_cam[6])[0]
    assert np.abs(frame.image[0].astype(int) - glob[0]).mean() > 5


def test_motion_blur_is_the_mean_of_sub_exposure_renders():
    seq = handheld(seed=5)
    cam, t = seq.camera, float(seq.timestamps[7])
    exposure = 0.03
    color, _, samples = render_exposure(seq.renderer, cam, seq.pose_at, t, exposure_s=exposure)
    w = rotation_angle_rad(seq.pose_at(np.array([t - exposure / 2]))[0, :3, :3].T
                           @ seq.pose_at(np.array([t + exposure / 2]))[0, :3, :3]) * cam.fx
    assert w > 2.0 and samples >= 2  # the camera turns by a few pixels during the exposure
    offsets = ((np.arange(samples) + 0.5) / samples - 0.5) * exposure
    mean = np.mean([seq.renderer.render_linear(cam, T)[0] for T in seq.pose_at(t + offsets)], axis=0)
    sharp = seq.renderer.render_linear(cam, seq.pose_at(np.array([t]))[0])[0]
    err, blur = np.abs(color - mean).mean(), np.abs(sharp - mean).mean()
    # About 1.7 levels of 255 left: bilinear warps of a point-sampled (aliased) texture; the blur is 7 levels.
    assert err < 0.3 * blur and err < 0.01
    # Each warp is the view from its sub-exposure pose (a sign error would survive the symmetric mean).
    T_c, T_s = seq.pose_at(np.array([t, t + exposure / 2]))
    sub = seq.renderer.render_linear(cam, T_s)[0]
    map_x, map_y = _warp_maps(cam, seq.renderer.render_linear(cam, T_c)[1],
                              np.repeat((inv_se3(T_c) @ T_s)[None], cam.height, axis=0), 0)
    warped = cv2.remap(sharp, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(warped - sub)[inner].mean() < 0.3 * np.abs(sharp - sub)[inner].mean()
    # A camera that does not move: one sample, the plain render.
    still = lambda times: np.repeat(seq.gt.T_world_cam[3:4], len(times), axis=0)  # noqa: E731
    c_still, d_still, n_still = render_exposure(seq.renderer, cam, still, t, readout_s=0.03, exposure_s=0.02)
    c_ref, d_ref = seq.renderer.render_linear(cam, seq.gt.T_world_cam[3])
    assert n_still == 1 and np.array_equal(c_still, c_ref) and np.array_equal(d_still, d_ref)


def test_exposure_gain_is_linear_and_seeded():
    cfg = RealismConfig(gain_log_std=0.15, gain_period_s=2.0)
    g = exposure_gains(cfg, 3000, 30.0, seed=7)
    assert np.array_equal(g, exposure_gains(cfg, 3000, 30.0, seed=7))
    assert not np.allclose(g, exposure_gains(cfg, 3000, 30.0, seed=8))
    assert np.std(np.log(g)) == pytest.approx(0.15, rel=0.2)
    seq = handheld(cfg, seed=7)
    off = handheld(seed=7)
    for i in (2, 9):
        a, b = seq[i].image.astype(float), off[i].image.astype(float)
        ok = (b > 5) & (b * seq.gains[i] < 250)
        assert np.abs(a[ok] - seq.gains[i] * b[ok]).max() <= 1.0 + 0.5 * seq.gains[i]  # both rounded to levels
    assert np.array_equal(seq[4].image, handheld(cfg, seed=7)[4].image)


def test_vignetting_falls_off_as_specified():
    h, w, cx, cy = 120, 160, 79.5, 59.5
    v = vignetting_factor(h, w, cx, cy, 0.4)
    assert v[60, 80] == pytest.approx(1.0, abs=1e-3) and v[0, 0] == pytest.approx(0.6, abs=1e-6)
    rho2 = ((40 - cx) ** 2 + (30 - cy) ** 2) / (cx ** 2 + cy ** 2)
    assert v[30, 40] == pytest.approx(1 - 0.4 * rho2, abs=1e-6)
    flat = np.full((h, w, 3), 0.5, np.float32)
    out = sensor_response(flat, RealismConfig(vignetting=0.4), 1.0, cx, cy, np.random.default_rng(0))
    np.testing.assert_allclose(out[..., 1], 0.5 * v, rtol=1e-6)


@pytest.mark.parametrize("level", [0.1, 0.4, 0.8])
def test_sensor_noise_statistics(level):
    cfg = RealismConfig(shot_noise=0.06, read_noise=2.0)
    flat = np.full((200, 300, 3), level, np.float32)
    out = sensor_response(flat, cfg, 1.0, 150, 100, np.random.default_rng(1)) * 255.0
    expected = np.sqrt(0.06 * level * 255 + 2.0 ** 2)
    assert out.mean() == pytest.approx(level * 255, abs=0.05)
    assert out.std() == pytest.approx(expected, rel=0.02)
    again = sensor_response(flat, cfg, 1.0, 150, 100, np.random.default_rng(1))
    assert np.array_equal(out, again * 255.0)


def test_jpeg_round_trip_psnr():
    img = handheld(seed=2)[5].image

    def psnr(q):
        diff = jpeg_roundtrip(img, q).astype(float) - img
        return 10 * np.log10(255.0 ** 2 / np.mean(diff ** 2))

    p95, p60, p20 = psnr(95), psnr(60), psnr(20)
    assert 29 < p95 < 45 and 24 < p60 < 36 and 20 < p20 < 32  # measured 31.5, 27.1, 24.9 dB on this frame
    assert p95 > p60 > p20
    seq = handheld(RealismConfig(jpeg_quality=60), seed=2)
    assert np.array_equal(seq[5].image, jpeg_roundtrip(img, 60))


def test_kinect_depth_noise_grows_with_z_squared():
    z = np.repeat(np.array([1.0, 2.0, 3.0, 4.0], np.float32), 20000).reshape(4, 20000)
    color = np.ones((*z.shape, 3), np.float32)
    cfg = RealismConfig(depth_noise=1.5e-3)
    noisy = kinect_depth(z, color, 525.0, cfg, np.random.default_rng(3))
    for row, zi in zip(noisy, (1.0, 2.0, 3.0, 4.0)):
        assert row.std() == pytest.approx(1.5e-3 * zi ** 2, rel=0.05)
        assert row.mean() == pytest.approx(zi, abs=3e-4 * zi ** 2)
    # Disparity quantisation: every depth is fx * baseline / (k * step).
    q = kinect_depth(z, color, 525.0, RealismConfig(depth_noise=1.5e-3, depth_disparity_step_px=0.125),
                     np.random.default_rng(3))
    k = 525.0 * 0.075 / q / 0.125
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert len(np.unique(q[3])) < 20  # 4 m: steps of about 6 cm


def test_depth_holes():
    h, w = 120, 160
    z = np.full((h, w), 2.0, np.float32)
    z[:, 80:] = 3.0  # a depth edge between columns 79 and 80
    z[:10, :10] = 6.0
    color = np.full((h, w, 3), 0.5, np.float32)
    color[100:, :20] = 0.02
    rng = np.random.default_rng(0)
    keep = kinect_depth(z, color, 500.0, RealismConfig(depth_max_m=5.0, hole_edge_px=2, hole_dark_level=0.05), rng) > 0
    assert not keep[:10, :10].any() and not keep[100:, :20].any()
    assert not keep[20:90, 78:82].any() and keep[20:90, 30:76].all() and keep[20:90, 84:150].all()
    cfg = RealismConfig(hole_dropout=0.07, hole_blob_px=6)
    fractions = [np.mean(kinect_depth(z, color, 500.0, cfg, np.random.default_rng(s)) == 0) for s in range(3)]
    np.testing.assert_allclose(fractions, 0.07, atol=0.003)
    holes = kinect_depth(z, color, 500.0, cfg, np.random.default_rng(0)) == 0
    assert np.mean(holes[1:] & holes[:-1]) > 0.5 * 0.07  # blobs, not isolated pixels


def test_sensor_depth_of_a_sequence():
    """The 'tum' preset's depth against the same frame's exact depth: z^2 noise with 1/8 px steps, 2-7 % holes."""
    seq = SyntheticSequence(SyntheticConfig(scene="handheld", seed=1, frames=4))  # 640x480: edge bands of 2 px
    fx = seq.realism
    assert fx.depth_noise == 1.5e-3 and fx.depth_disparity_step_px == 0.125
    no_sensor = replace(fx, depth_noise=0.0, depth_disparity_step_px=0.0, depth_min_m=0.0, depth_max_m=0.0,
                        hole_edge_px=0, hole_dark_level=0.0, hole_dropout=0.0)
    exact = SyntheticSequence(SyntheticConfig(scene="handheld", seed=1, frames=4, realism=no_sensor))
    d, e = seq[2].depth_m, exact[2].depth_m
    assert np.array_equal(seq[2].image, exact[2].image)  # the depth sensor leaves the image alone
    both = (d > 0) & (e > 0)
    assert 0.93 < both.mean() < 0.98 and not (d[e == 0] > 0).any()
    rel = (d[both] - e[both]) / e[both] ** 2
    step = 0.125 / (seq.camera.fx * fx.depth_baseline_m)  # one disparity step in depth / z^2
    assert np.std(rel) == pytest.approx(np.hypot(1.5e-3, step / np.sqrt(12)), rel=0.15)


def test_realism_options_in_specs(tmp_path):
    seq = load_sequence("synthetic:room?seed=2&frames=3&realism=phone&jpeg_quality=70&readout_ms=10")
    assert seq.realism.jpeg_quality == 70 and seq.realism.readout_ms == 10.0 and seq.realism.exposure_ms == 16.0
    assert seq.name == "synthetic_room_seed2_realism"
    assert load_sequence("synthetic:handheld?frames=2").realism.depth_noise > 0
    assert not load_sequence("synthetic:handheld?frames=2&realism=off").realism.enabled
    assert load_sequence("synthetic:street?frames=2&vignetting=0.3").realism == RealismConfig(vignetting=0.3)
    with pytest.raises(InputError, match=r"realism\.jpeg_quality=150 is out of range"):
        load_sequence("synthetic:room?frames=2&jpeg_quality=150")
    with pytest.raises(InputError, match=r"realism\.jpeg_quality=70.5 has the wrong type"):
        load_sequence("synthetic:room?frames=2&jpeg_quality=70.5")
    with pytest.raises(InputError, match="pinhole frames only"):
        load_sequence("synthetic:room?frames=2&exposure_ms=10&k1=0.1")
    with pytest.raises(InputError, match="unknown realism preset 'kinect'"):
        load_sequence("synthetic:room?frames=2&realism=kinect")
    path = tmp_path / "mine.yaml"
    path.write_text("readout_ms: 12\nhole_dropout: 0.01\n")
    assert load_sequence(f"synthetic:room?frames=2&realism={path}").realism == RealismConfig(readout_ms=12.0,
                                                                                             hole_dropout=0.01)
    path.write_text("readout: 12\n")
    with pytest.raises(InputError, match="unknown config key realism.readout"):
        load_sequence(f"synthetic:room?frames=2&realism={path}")


def test_handheld_motion_is_a_fast_pan():
    seq = load_sequence("synthetic:handheld?seed=11&frames=900&realism=off")
    T = seq.gt.T_world_cam
    omega = rotation_angle_rad(np.swapaxes(T[:-1, :3, :3], 1, 2) @ T[1:, :3, :3]) * 30.0
    speed = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1) * 30.0
    assert 0.4 < omega.mean() < 1.0 and 1.5 < omega.max() < 2.6
    assert speed.mean() == pytest.approx(0.3, rel=0.15)
    assert np.all(np.abs(T[:, :2, 3]) < 1.0) and np.all(np.abs(T[:, 2, 3] - 1.4) < 0.3)
    np.testing.assert_allclose(seq.pose_at(seq.timestamps[[0, 5, 899]]), T[[0, 5, 899]])
    # The room's poses between frames: constant-velocity interpolation through the frame poses.
    room = SyntheticSequence(SyntheticConfig(scene="room", frames=6, **SMALL))
    np.testing.assert_allclose(room.pose_at(room.timestamps), room.gt.T_world_cam, atol=1e-9)
    mid = interpolate_poses(room.timestamps, room.gt.T_world_cam, np.array([room.timestamps[2] + 0.5 / 30]))[0]
    np.testing.assert_allclose(mid[:3, 3], room.gt.T_world_cam[2:4, :3, 3].mean(0), atol=1e-9)
