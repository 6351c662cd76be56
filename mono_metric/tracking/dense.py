"""Direct (photometric) pose refinement against a keyframe with depth, DVO style.

The keyframe's high-gradient pixels with usable depth are lifted to 3D once per pyramid level
(:class:`DenseReference`); a frame's pose relative to the keyframe is then refined coarse to fine by
Gauss-Newton on the intensity differences at those points, with Huber weights and an affine brightness
model (gain ``a``, offset ``b``: ``I_cur(w(u)) = a * I_ref(u) + b``), so exposure changes are absorbed.
Only the keyframe needs depth, as for the PnP. Pure numpy + OpenCV sampling (``cv2.remap``).

Poses are ``T_cur_ref`` (points of the keyframe camera to the current camera); intensities 0-255.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mono_metric.geometry import depth_at_pixels, inv_se3, rotation_angle_rad


@dataclass
class DenseLevel:
    """One pyramid level of a :class:`DenseReference`: (N, 3) points (m, keyframe camera), (N,) their
    intensities, and the level's intrinsics (fx, fy, cx, cy)."""

    points: np.ndarray
    intensity: np.ndarray
    intrinsics: tuple[float, float, float, float]


@dataclass
class DenseReference:
    """A keyframe prepared for :func:`photometric_refine`: one :class:`DenseLevel` per level, finest first."""

    levels: list[DenseLevel]

    @classmethod
    def build(cls, gray: np.ndarray, depth_m: np.ndarray, K: np.ndarray, levels: int = 3, max_points: int = 3000,
              min_gradient: float = 8.0, max_depth_jump: float = 0.08, max_depth_m: float = 80.0) -> "DenseReference":
        """Select and lift the keyframe's pixels.

        Args:
            gray: (H, W) uint8 keyframe image.
            depth_m: (H, W) metric depth of it (0 = invalid), e.g. median-filtered sensor or network depth.
            K: (3, 3) intrinsics of the full image.
            levels: pyramid levels (1 = full resolution only; each next one halves the size).
            max_points: at most this many pixels per level (a fixed random subset of the candidates).
            min_gradient: smallest intensity gradient (per pixel of that level, 0-255 scale) of a used pixel.
            max_depth_jump: relative depth spread tolerated around a pixel (depth edges are skipped).
            max_depth_m: farther depth is not used.
        """
        if gray.ndim != 2 or depth_m.shape != gray.shape:
            raise ValueError(f"need (H, W) image and depth of the same size, got {gray.shape} and {depth_m.shape}")
        rng = np.random.default_rng(0)
        out, img = [], gray.astype(np.float32)
        depth32 = np.asarray(depth_m, dtype=np.float32)
        for level in range(levels):
            if level:
                img = cv2.pyrDown(img)
            s = 2.0 ** level
            fx, fy, cx, cy = K[0, 0] / s, K[1, 1] / s, (K[0, 2] + 0.5) / s - 0.5, (K[1, 2] + 0.5) / s - 0.5
            gx, gy = _gradients(img)
            v, u = np.nonzero(np.hypot(gx, gy)[1:-1, 1:-1] >= min_gradient)
            u, v = u + 1, v + 1
            if len(u) > 4 * max_points:  # thin out before the depth look-up
                keep = rng.choice(len(u), 4 * max_points, replace=False)
                u, v = u[keep], v[keep]
            uv_full = np.stack([(u + 0.5) * s - 0.5, (v + 0.5) * s - 0.5], 1)
            z, ok = depth_at_pixels(depth32, uv_full, max_depth_jump)
            ok &= (z > 0.05) & (z < max_depth_m)
            u, v, z = u[ok], v[ok], z[ok].astype(np.float64)
            if len(u) > max_points:
                keep = rng.choice(len(u), max_points, replace=False)
                u, v, z = u[keep], v[keep], z[keep]
            pts = np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], 1)
            out.append(DenseLevel(pts, img[v, u].astype(np.float64), (fx, fy, cx, cy)))
        return cls(out)


@dataclass
class DenseResult:
    """Outcome of :func:`photometric_refine`.

    Attributes:
        T_cur_ref: (4, 4) refined pose.
        gain, offset: affine brightness ``I_cur = gain * I_ref + offset``.
        cost_init, cost_final: mean Huber cost (intensity units squared) at the finest level used, at
            the initial and the refined pose, over the points visible in both.
        points: points used at that level.
    """

    T_cur_ref: np.ndarray
    gain: float
    offset: float
    cost_init: float
    cost_final: float
    points: int


def photometric_refine(ref: DenseReference, gray: np.ndarray, T_cur_ref_init: np.ndarray, finest_level: int = 0,
                       iterations: int = 8, huber: float = 10.0, affine: bool = True, depth_scale: float = 1.0
                       ) -> DenseResult:
    """Coarse-to-fine Gauss-Newton on the photometric error of ``ref``'s points in ``gray``.

    Args:
        ref: the keyframe (:meth:`DenseReference.build`).
        gray: (H, W) uint8 current image (same camera).
        T_cur_ref_init: (4, 4) initial pose, e.g. from PnP.
        finest_level: stop at this level (0: full resolution; 1: half, ...).
        iterations: Gauss-Newton steps per level.
        huber: Huber threshold on the intensity residual.
        affine: estimate gain and offset (else fixed at 1 and 0).
        depth_scale: the keyframe's depth is multiplied by this (its scale as re-estimated since, e.g. by
            the local bundle adjustment).

    Returns:
        :class:`DenseResult`.
    """
    if not 0 <= finest_level < len(ref.levels):
        raise ValueError(f"finest_level must be in [0, {len(ref.levels) - 1}], got {finest_level}")
    if depth_scale != 1.0:
        ref = DenseReference([DenseLevel(lv.points * depth_scale, lv.intensity, lv.intrinsics) for lv in ref.levels])
    pyramid = [gray.astype(np.float32)]
    for _ in range(len(ref.levels) - 1):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    T = np.asarray(T_cur_ref_init, dtype=np.float64).copy()
    ab = np.array([1.0, 0.0])
    cost_init = cost_final = float("nan")
    n_used = 0
    fine = ref.levels[finest_level]
    if len(fine.points) >= 20:
        gx, gy = _gradients(pyramid[finest_level])
        ab0 = _brightness(fine, pyramid[finest_level], T) if affine else ab
        r = _linearise(fine, pyramid[finest_level], gx, gy, T, ab0, huber, False)[0]
        cost_init = _huber_cost(r, huber) if r is not None else float("nan")
    for level in range(len(ref.levels) - 1, finest_level - 1, -1):
        lev, img = ref.levels[level], pyramid[level]
        if len(lev.points) < 20:
            continue
        gx, gy = _gradients(img)
        for it in range(iterations):
            r, J, w, _ = _linearise(lev, img, gx, gy, T, ab, huber, affine)
            if r is None:
                break
            H = (J * w[:, None]).T @ J
            g = (J * w[:, None]).T @ r
            n = 8 if affine else 6
            try:
                delta = -np.linalg.solve(H[:n, :n] + 1e-6 * np.eye(n), g[:n])
            except np.linalg.LinAlgError:
                break
            T = _exp_se3(delta[:6]) @ T
            if affine:
                ab = ab + delta[6:8]
            if np.abs(delta[:6]).max() < 1e-6:
                break
        if level == finest_level:
            r, _, _, n_used = _linearise(lev, img, gx, gy, T, ab, huber, affine)
            cost_final = _huber_cost(r, huber) if r is not None else float("nan")
    return DenseResult(T, float(ab[0]), float(ab[1]), cost_init, cost_final, n_used)


def _linearise(lev: DenseLevel, img, gx, gy, T, ab, huber, affine):
    """Residuals (M,), Jacobian (M, 8) over pose (v, w) and (gain, offset), Huber weights (M,), M."""
    fx, fy, cx, cy = lev.intrinsics
    P = lev.points @ T[:3, :3].T + T[:3, 3]
    z = P[:, 2]
    h, w = img.shape
    front = z > 1e-3
    zs = np.where(front, z, 1.0)
    u, v = fx * P[:, 0] / zs + cx, fy * P[:, 1] / zs + cy
    inside = front & (u >= 1) & (u < w - 2) & (v >= 1) & (v < h - 2)
    if inside.sum() < 20:
        return None, None, None, 0
    P, z, u, v, i_ref = P[inside], z[inside], u[inside], v[inside], lev.intensity[inside]
    mx, my = u.astype(np.float32).reshape(-1, 1), v.astype(np.float32).reshape(-1, 1)
    sample = [cv2.remap(a, mx, my, cv2.INTER_LINEAR)[:, 0].astype(np.float64) for a in (img, gx, gy)]
    i_cur, dx, dy = sample
    r = i_cur - (ab[0] * i_ref + ab[1])
    x, y = P[:, 0], P[:, 1]
    ju = np.stack([fx / z, np.zeros_like(z), -fx * x / z ** 2], 1)  # d u / d P
    jv = np.stack([np.zeros_like(z), fy / z, -fy * y / z ** 2], 1)
    jp = dx[:, None] * ju + dy[:, None] * jv  # d I / d P (M, 3)
    # Left perturbation P' = exp(xi) P: dP/dv = I, dP/dw = -[P]x  ->  dI/dw = P x dI/dP.
    J = np.zeros((len(r), 8))
    J[:, :3], J[:, 3:6] = jp, np.cross(P, jp)
    if affine:
        J[:, 6], J[:, 7] = -i_ref, -1.0
    a = np.abs(r)
    wts = np.where(a <= huber, 1.0, huber / np.maximum(a, 1e-12))
    return r, J, wts, len(r)


def _brightness(lev: DenseLevel, img: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Least-squares (gain, offset) of the points' intensities at pose ``T`` (for a fair initial cost)."""
    fx, fy, cx, cy = lev.intrinsics
    P = lev.points @ T[:3, :3].T + T[:3, 3]
    z = np.where(P[:, 2] > 1e-3, P[:, 2], np.nan)
    u, v = fx * P[:, 0] / z + cx, fy * P[:, 1] / z + cy
    h, w = img.shape
    ok = np.isfinite(z) & (u >= 1) & (u < w - 2) & (v >= 1) & (v < h - 2)
    if ok.sum() < 20:
        return np.array([1.0, 0.0])
    i_cur = cv2.remap(img, u[ok].astype(np.float32).reshape(-1, 1), v[ok].astype(np.float32).reshape(-1, 1),
                      cv2.INTER_LINEAR)[:, 0]
    A = np.stack([lev.intensity[ok], np.ones(ok.sum())], 1)
    return np.linalg.lstsq(A, i_cur.astype(np.float64), rcond=None)[0]


def _huber_cost(r: np.ndarray, huber: float) -> float:
    a = np.abs(r)
    return float(np.mean(np.where(a <= huber, 0.5 * a ** 2, huber * (a - 0.5 * huber))))


def _gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference intensity gradients (per pixel), float32."""
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    return gx, gy


def _exp_se3(xi: np.ndarray) -> np.ndarray:
    """(6,) (v, w) -> (4, 4): rotation exp(w), translation v (a first-order retraction for GN steps)."""
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(xi[3:6], dtype=np.float64).reshape(3, 1))[0]
    T[:3, 3] = xi[:3]
    return T


def refine_against_keyframe(ref: DenseReference, gray: np.ndarray, T_cam_world: np.ndarray, T_world_kf: np.ndarray,
                            cfg, depth_scale: float = 1.0) -> np.ndarray:
    """A feature pose refined photometrically against its keyframe, with the ``dense_*`` settings of a
    :class:`~mono_metric.config.TrackingConfig` ``cfg``.

    Args:
        ref: the keyframe's pixels (:meth:`DenseReference.build`).
        gray: (H, W) uint8 current image.
        T_cam_world: (4, 4) feature pose of the current image.
        T_world_kf: (4, 4) pose of the keyframe.
        depth_scale: scale applied to the keyframe's depth.

    Returns:
        (4, 4) ``T_cam_world``: the refined pose where it lowers the photometric cost and stays within
        ``dense_max_change_m`` / ``dense_max_change_deg`` of the feature pose, else the feature pose.
    """
    res = photometric_refine(ref, gray, T_cam_world @ T_world_kf, cfg.dense_finest_level, cfg.dense_iterations,
                             cfg.dense_huber, depth_scale=depth_scale)
    change = inv_se3(T_cam_world @ T_world_kf) @ res.T_cur_ref
    if not (res.cost_final < res.cost_init and np.linalg.norm(change[:3, 3]) < cfg.dense_max_change_m
            and np.degrees(rotation_angle_rad(change[:3, :3])) < cfg.dense_max_change_deg):
        return T_cam_world
    return res.T_cur_ref @ inv_se3(T_world_kf)
