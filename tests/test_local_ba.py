"""Local bundle adjustment with metric depth priors (analytic-Jacobian LM) on a synthetic window."""
import numpy as np
import pytest
import torch

from mono_metric.camera import Camera
from mono_metric.geometry import make_se3
from mono_metric.mapping.local_ba import (BAProblem, KeyframeWindow, _Window, keyframe_depth_scales,
                                      local_bundle_adjustment)


def _window(rng, W=3, n=40, depth_noise=0.08, pose_noise=0.05):
    cam = Camera(500.0, 500.0, 320.0, 240.0, 640, 480)
    T = np.stack([make_se3(np.eye(3), np.array([0.3 * i, 0.0, 0.5 * i])) for i in range(W)])
    host, uvh, dh, dtrue, okf, olm, ouv, od = [], [], [], [], [], [], [], []
    for k in range(W - 1):
        uv = rng.uniform([0, 0], [640, 480], (n, 2))
        d = rng.uniform(3.0, 15.0, n)
        Xw = cam.backproject(uv, d) @ T[k][:3, :3].T + T[k][:3, 3]
        uvo, z = cam.project((Xw - T[k + 1][:3, 3]) @ T[k + 1][:3, :3])
        idx = np.flatnonzero(np.isfinite(uvo).all(1))
        host += [k] * n
        uvh.append(uv)
        dtrue.append(d)
        dh.append(d * np.exp(rng.normal(0, depth_noise, n) + 0.05))  # biased, noisy network depth
        okf += [k + 1] * len(idx)
        olm += list(k * n + idx)
        ouv.append(uvo[idx] + rng.normal(0, 0.5, (len(idx), 2)))
        od.append(z[idx] * np.exp(rng.normal(0, depth_noise, len(idx)) - 0.05))
    T0 = T.copy()
    T0[1:, :3, 3] += rng.normal(0, pose_noise, (W - 1, 3))
    p = BAProblem(T0, np.array(host), np.concatenate(uvh), np.concatenate(dh), np.array(okf), np.array(olm),
                  np.concatenate(ouv), np.concatenate(od))
    return cam, T, p, np.concatenate(dtrue)


def test_bundle_adjustment_reduces_pose_and_depth_error():
    rng = np.random.default_rng(0)
    cam, T, p, d_true = _window(rng)
    refined, depth = local_bundle_adjustment(p, cam.K, steps=4)
    np.testing.assert_array_equal(refined[0], p.T_world_kf[0])  # the oldest keyframe is held fixed

    def pos_err(TT):
        return np.mean(np.linalg.norm(TT[1:, :3, 3] - T[1:, :3, 3], axis=1))

    assert pos_err(refined) < 0.3 * pos_err(p.T_world_kf)
    rel = lambda d: np.mean(np.abs(d - d_true) / d_true)  # noqa: E731
    assert rel(depth) < 0.7 * rel(p.depth_host)


def test_problem_checks_and_window():
    rng = np.random.default_rng(1)
    _, _, p, _ = _window(rng)
    bad = BAProblem(p.T_world_kf[:1], p.host, p.uv_host, p.depth_host, p.obs_kf, p.obs_lm, p.obs_uv, p.obs_depth)
    with pytest.raises(ValueError, match="W>=2"):
        bad.check()
    win = KeyframeWindow(size=3, landmarks_per_keyframe=5)
    uv = rng.uniform(0, 100, (20, 2))
    win.add(np.eye(4), uv, np.full(20, 5.0), None)
    assert win.problem() is None
    obs = (np.arange(10), uv[:10] + 1.0, np.full(10, 5.0))
    for _ in range(4):
        win.add(np.eye(4), uv, np.full(20, 5.0), obs)
    prob = win.problem()
    assert len(win.records) == 3 and len(prob.host) == 10 and set(prob.obs_kf) == {1, 2}
    win.add(np.eye(4), uv, np.full(20, 5.0), None)  # tracking broke: the window restarts
    assert len(win.records) == 1 and win.problem() is None


def test_keyframe_depth_scales_recover_per_keyframe_depth_bias():
    # Exact geometry, each keyframe's network depth off by its own factor: the adjusted (true) depths
    # against the network's give back 1 / factor per keyframe, from hosted and observed landmarks alike.
    rng = np.random.default_rng(3)
    cam, T, p, d_true = _window(rng, W=3, depth_noise=0.0, pose_noise=0.0)
    bias = np.array([1.1, 0.95, 1.04])
    p.depth_host = d_true * bias[p.host]
    Xw = np.concatenate([cam.backproject(p.uv_host[p.host == k], d_true[p.host == k]) @ T[k][:3, :3].T + T[k][:3, 3]
                         for k in range(2)])
    X_obs = np.einsum("nji,nj->ni", T[p.obs_kf][:, :3, :3], Xw[p.obs_lm] - T[p.obs_kf][:, :3, 3])
    p.obs_depth = X_obs[:, 2] * bias[p.obs_kf]
    p.obs_depth[::5] = 0.0  # unknown depth: not a term
    np.testing.assert_allclose(keyframe_depth_scales(p, cam.K, T, d_true), 1 / bias, rtol=1e-9)
    # A keyframe with no depth terms keeps scale 1; shapes are checked.
    p.obs_depth[p.obs_kf == 2] = 0.0
    assert keyframe_depth_scales(p, cam.K, T, d_true)[2] == 1.0
    with pytest.raises(ValueError, match="depths"):
        keyframe_depth_scales(p, cam.K, T, d_true[:-1])


def test_window_links_continued_landmarks_and_extra_priors():
    rng = np.random.default_rng(4)
    win = KeyframeWindow(size=3, landmarks_per_keyframe=100)
    uv = rng.uniform(0, 100, (6, 2))
    depth = np.arange(1.0, 7.0)

    def track(lm):  # the previous keyframe's landmarks lm seen in the new one
        return np.asarray(lm), uv[lm] + 1.0, np.full(len(lm), 4.0)

    win.add(np.eye(4), uv, depth, None)
    win.add_depth_prior(np.array([0, 0, 5]), np.log([1.1, 0.9, 6.0]))  # two priors on landmark 0, one on 5
    # Keyframe 1 continues landmarks 0 and 1 of keyframe 0 as its landmarks 2 and 3.
    win.add(np.eye(4), uv, depth, track([0, 1, 5]), parent=np.array([-1, -1, 0, 1, -1, -1]))
    win.add_depth_prior(np.array([2, 4]), np.log([3.0, 5.0]))  # 2 continues an older landmark: not used
    # Keyframe 2 sees keyframe 1's landmarks 2 (= keyframe 0's landmark 0) and 4.
    win.add(np.eye(4), uv, depth, track([2, 4]))
    p = win.problem()
    p.check()
    # Keyframe 0's landmarks 0, 1, 5 and keyframe 1's landmark 4: landmark 0 is seen by keyframes 1 and 2.
    assert list(p.host) == [0, 0, 0, 1] and np.allclose(p.depth_host, [1.0, 2.0, 6.0, 5.0])
    assert sorted(zip(p.obs_lm.tolist(), p.obs_kf.tolist())) == [(0, 1), (0, 2), (1, 1), (2, 1), (3, 2)]
    assert list(p.prior_lm) == [0, 0, 2, 3] and np.allclose(np.exp(p.prior_log_depth), [1.1, 0.9, 6.0, 5.0])
    # When keyframe 0 leaves the window, the landmark is hosted by keyframe 1 (the first that has it).
    win.add(np.eye(4), uv, depth, track([0]))
    p = win.problem()
    assert list(p.host) == [0, 0, 1] and np.allclose(p.uv_host[0], uv[2]) and list(p.obs_kf) == [1, 1, 2]
    with pytest.raises(ValueError, match="prior_lm"):
        BAProblem(p.T_world_kf, p.host, p.uv_host, p.depth_host, p.obs_kf, p.obs_lm, p.obs_uv, p.obs_depth,
                  np.array([7]), np.array([0.0])).check()


def test_extra_depth_priors_and_two_fixed_keyframes():
    # Host depths biased by 10 % with exact observations: priors at the true depth (as frames between
    # keyframes give) pull the adjusted depths toward the truth; two fixed keyframes stay where they are.
    rng = np.random.default_rng(5)
    cam, T, p, d_true = _window(rng, W=4, depth_noise=0.0, pose_noise=0.02)
    p.obs_depth[:] = 0.0
    p.depth_host = d_true * 1.1
    _, plain = local_bundle_adjustment(p, cam.K, steps=4)
    p.prior_lm = np.repeat(np.arange(len(p.host)), 2)
    p.prior_log_depth = np.log(d_true[p.prior_lm])
    refined, with_priors = local_bundle_adjustment(p, cam.K, steps=4, n_fixed=2)
    err = lambda d: np.median(np.abs(np.log(d / d_true)))  # noqa: E731
    assert err(plain) > 0.08 and err(with_priors) < 0.05
    np.testing.assert_array_equal(refined[:2], p.T_world_kf[:2])
    assert not np.allclose(refined[2:], p.T_world_kf[2:])


def _multiview(rng, W=4):
    """A window whose landmarks are observed in every later keyframe, with gaps in the observed depth and
    extra priors: every residual type and pose pairing of the BA."""
    cam, T, p, _ = _window(rng, W=W, n=15)
    first = p.host == 0
    Xw = cam.backproject(p.uv_host[first], p.depth_host[first]) @ T[0][:3, :3].T + T[0][:3, 3]
    okf, olm, ouv, od = [], [], [], []
    for k in range(1, W):
        uv, z = cam.project((Xw - T[k][:3, 3]) @ T[k][:3, :3])
        for i in np.flatnonzero(np.isfinite(uv).all(1)):
            okf.append(k), olm.append(np.flatnonzero(first)[i]), ouv.append(uv[i]), od.append(z[i])
    p.obs_kf = np.r_[p.obs_kf, okf]
    p.obs_lm = np.r_[p.obs_lm, olm]
    p.obs_uv = np.r_[p.obs_uv, np.array(ouv) + rng.normal(0, 2.0, (len(ouv), 2))]
    p.obs_depth = np.r_[p.obs_depth, np.array(od) * 1.05]
    p.obs_depth[::4] = 0.0
    p.prior_lm = rng.integers(0, len(p.host), 30)
    p.prior_log_depth = np.log(p.depth_host[p.prior_lm]) + rng.normal(0, 0.1, 30)
    p.check()
    return cam, T, p


@pytest.mark.parametrize("n_fixed", [1, 2])
def test_analytic_jacobian_matches_autograd(n_fixed):
    rng = np.random.default_rng(6)
    cam, _, p = _multiview(rng)
    win = _Window(p, cam.K, pixel_sigma=0.7, depth_sigma_log=0.15, n_fixed=n_fixed)
    T = torch.as_tensor(p.T_world_kf)
    log_depth = win.log_depth_host + torch.as_tensor(rng.normal(0, 0.05, len(p.host)))
    r, J = win.residuals(T, log_depth, jacobian=True)
    F = len(T) - n_fixed
    assert J.shape == (len(r), 6 * F + len(p.host))

    def f(x):
        return win.residuals(*win.update(T, log_depth, x))

    x0 = torch.zeros(J.shape[1], dtype=torch.float64)
    J_auto = torch.autograd.functional.jacobian(f, x0)
    torch.testing.assert_close(f(x0), r)
    torch.testing.assert_close(J, J_auto, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("damping", [1e-6, 1.0])
def test_schur_step_equals_the_dense_solve(damping):
    from mono_metric.mapping.local_ba import _NormalEquations, _huber_weights

    rng = np.random.default_rng(7)
    cam, _, p = _multiview(rng)  # continued landmarks, observed depth and extra priors: every residual kind
    win = _Window(p, cam.K, pixel_sigma=0.7, depth_sigma_log=0.15, n_fixed=1)
    log_depth = win.log_depth_host + torch.as_tensor(rng.normal(0, 0.05, len(p.host)))
    r, J = win.residuals(torch.as_tensor(p.T_world_kf), log_depth, jacobian=True)
    w = _huber_weights(r, 2 * len(p.obs_kf), 2.0)
    assert (w < 1).any()  # the robust weights take part
    A, g = J.T @ (w[:, None] * J), J.T @ (w * r)
    dense = torch.linalg.solve(A + torch.diag(A.diagonal().clamp(1e-6, 1e32) * damping), -g)
    step = _NormalEquations(J, w, r, win.row_landmark, 6 * win.n_free).solve(damping)
    torch.testing.assert_close(step, dense, rtol=1e-7, atol=1e-9)


def test_huber_kernel_resists_outlier_observations():
    # A fifth of the observations moved by 20-40 px: least squares drags the poses, Huber keeps them.
    rng = np.random.default_rng(7)
    cam, T, p = _multiview(rng)
    p.obs_depth[:] = 0.0

    def pos_err(TT):
        return np.mean(np.linalg.norm(TT[1:, :3, 3] - T[1:, :3, 3], axis=1))

    clean, _ = local_bundle_adjustment(p, cam.K, steps=10)
    bad = rng.random(len(p.obs_kf)) < 0.2
    p.obs_uv[bad] += rng.choice([-1, 1], (bad.sum(), 2)) * rng.uniform(20, 40, (bad.sum(), 2))
    plain, _ = local_bundle_adjustment(p, cam.K, steps=10)
    robust, _ = local_bundle_adjustment(p, cam.K, steps=10, huber=2.0)
    assert pos_err(plain) > 1.5 * pos_err(clean)
    assert pos_err(robust) < 0.5 * pos_err(plain) and pos_err(robust) < 1.3 * pos_err(clean)
