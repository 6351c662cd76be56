"""Small SE(3) helpers on 4x4 numpy matrices; quaternion maths delegated to pypose.

Poses are named by frame: ``T_a_b`` maps points from frame b to frame a (p_a = T_a_b @ p_b).
Quaternions are (qx, qy, qz, qw), as in the TUM format and pypose.
"""
from __future__ import annotations

import cv2
import numpy as np
import pypose as pp
import torch
from scipy.spatial.transform import Rotation


def check_poses(T: np.ndarray, name: str = "poses") -> np.ndarray:
    """Return ``T`` as a float64 (N, 4, 4) array, raising ``ValueError`` on a bad shape or NaN."""
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"{name} must have shape (N, 4, 4), got {T.shape}")
    if not np.isfinite(T).all():
        raise ValueError(f"{name} contain NaN or inf")
    return T


def inv_se3(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms, (..., 4, 4) -> (..., 4, 4)."""
    T = np.asarray(T, dtype=np.float64)
    R, t = T[..., :3, :3], T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def make_se3(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Stack rotations (..., 3, 3) and translations (..., 3) into (..., 4, 4) transforms."""
    R, t = np.asarray(R, dtype=np.float64), np.asarray(t, dtype=np.float64)
    out = np.zeros(R.shape[:-2] + (4, 4))
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def quat_to_rotmat(q_xyzw: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (x, y, z, w), normalised here, to (N, 3, 3) rotation matrices."""
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(-1, 4)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return pp.SO3(torch.from_numpy(q)).matrix().numpy()


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices to (N, 4) unit quaternions (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    q = pp.mat2SO3(torch.from_numpy(R), check=False).tensor().numpy()
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.where(q[:, 3:4] < 0, -q, q)


def rotation_angle_rad(R: np.ndarray) -> np.ndarray:
    """Rotation angle in radians of (..., 3, 3) rotation matrices (clamped arccos of the trace)."""
    R = np.asarray(R, dtype=np.float64)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0]),
            roll_rad: float = 0.0) -> np.ndarray:
    """``T_world_cam`` (4, 4) of an OpenCV camera at ``eye`` looking at ``target`` with world ``up``."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    if roll_rad:
        c, s = np.cos(roll_rad), np.sin(roll_rad)
        x, y = c * x + s * y, -s * x + c * y
    return make_se3(np.stack([x, y, z], axis=1), eye)


def repose_points(xyz_world: np.ndarray, T_old: np.ndarray, T_new: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(N, 3) points attached to a camera moved from pose ``T_old`` to ``T_new`` (both (4, 4) T_world_cam),
    their depths multiplied by ``scale``."""
    return scale * (xyz_world - T_old[:3, 3]) @ T_old[:3, :3] @ T_new[:3, :3].T + T_new[:3, 3]


def scale_translation(T: np.ndarray, scale: float) -> np.ndarray:
    """(4, 4) pose with its translation multiplied by ``scale``."""
    out = T.copy()
    out[:3, 3] *= scale
    return out


def nearest_pixels(uv: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) index arrays of the pixels nearest to (N, 2) ``uv`` in an image of ``shape``, clipped."""
    iu = np.clip(np.round(uv[:, 0]).astype(int), 0, shape[1] - 1)
    iv = np.clip(np.round(uv[:, 1]).astype(int), 0, shape[0] - 1)
    return iv, iu


def median_filtered_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float32 depth (m), 5x5 median-filtered against per-pixel noise; NaN/inf become 0 (invalid)."""
    return cv2.medianBlur(np.nan_to_num(np.asarray(depth_m, np.float32), nan=0.0, posinf=0.0, neginf=0.0), 5)


def depth_at_pixels(depth_m: np.ndarray, uv: np.ndarray, max_jump: float) -> tuple[np.ndarray, np.ndarray]:
    """Depth at the pixels nearest to ``uv``, and whether it is consistent around them.

    Corners often sit on depth edges, where a rounded pixel may read the background: a depth counts as
    consistent when the 3x3 maximum around the pixel is within ``1 + max_jump`` times the minimum.

    Args:
        depth_m: (H, W) float32 depth (m), 0 = invalid.
        uv: (N, 2) pixels.
        max_jump: relative depth spread tolerated.

    Returns:
        (N,) float64 depths (m) and (N,) bool consistency.
    """
    iv, iu = nearest_pixels(uv, depth_m.shape)
    kernel = np.ones((3, 3), np.uint8)
    ratio = cv2.dilate(depth_m, kernel)[iv, iu] / np.maximum(cv2.erode(depth_m, kernel)[iv, iu], 1e-6)
    return depth_m[iv, iu].astype(np.float64), ratio < 1.0 + max_jump


def _skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def log_se3(T: np.ndarray) -> np.ndarray:
    """(6,) twist (rho, phi) of a (4, 4) rigid transform, pypose's convention, in closed form (a pypose call
    costs ~1 ms, this ~20 us; pypose's first call also costs 0.4 s of CPU: torch imports SymPy then)."""
    phi = Rotation.from_matrix(T[:3, :3]).as_rotvec()
    theta = float(np.linalg.norm(phi))
    W = _skew(phi)
    c = 1.0 / 12.0 if theta < 1e-4 else (1.0 - theta * np.sin(theta) / (2.0 * (1.0 - np.cos(theta)))) / theta ** 2
    return np.concatenate([(np.eye(3) - 0.5 * W + c * W @ W) @ T[:3, 3], phi])


def exp_se3(xi: np.ndarray) -> np.ndarray:
    """(4, 4) rigid transform of a (6,) twist (rho, phi) (inverse of :func:`log_se3`)."""
    phi = xi[3:]
    theta = float(np.linalg.norm(phi))
    W = _skew(phi)
    if theta < 1e-4:
        V = np.eye(3) + 0.5 * W + W @ W / 6.0
    else:
        V = np.eye(3) + (1 - np.cos(theta)) / theta ** 2 * W + (theta - np.sin(theta)) / theta ** 3 * W @ W
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(phi).as_matrix()
    T[:3, 3] = V @ xi[:3]
    return T


def interpolate_se3(T_a_b: np.ndarray, fraction: float) -> np.ndarray:
    """``T_a_b`` raised to ``fraction`` on SE(3) (the same screw motion, scaled): ``Exp(fraction * Log(T_a_b))``.

    Args:
        T_a_b: (4, 4) rigid transform.
        fraction: 0 gives the identity, 1 gives ``T_a_b``, -1 its inverse; any real number.

    Returns:
        (4, 4) float64 rigid transform.
    """
    return exp_se3(float(fraction) * log_se3(np.asarray(T_a_b, np.float64)))


def warp_depth(depth_m: np.ndarray, K: np.ndarray, T_dst_src: np.ndarray) -> np.ndarray:
    """Depth map of the same pinhole camera moved by ``T_dst_src`` (forward splat, nearest surface wins).

    Used to bring a depth image taken at another instant than its colour image to the colour image's
    pose: every valid pixel is lifted, moved into the destination frame, and written to its nearest pixel
    there; where several land on one pixel the nearest surface is kept; a pixel nothing lands on between two
    that have depth (left and right, or above and below) takes the nearer of them, other empty ones are 0.

    Args:
        depth_m: (H, W) depth (m) in the source frame, 0 / NaN / inf = invalid.
        K: (3, 3) intrinsics of both views.
        T_dst_src: (4, 4) maps source-frame points into the destination frame.

    Returns:
        (H, W) float32 depth (m) in the destination frame, 0 = unknown.
    """
    d = np.nan_to_num(np.asarray(depth_m, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if d.ndim != 2 or K.shape != (3, 3) or np.shape(T_dst_src) != (4, 4):
        raise ValueError(f"warp_depth: depth (H, W), K (3, 3), T (4, 4) expected; got {d.shape}, {K.shape}, "
                         f"{np.shape(T_dst_src)}")
    H, W = d.shape
    v, u = np.nonzero(d > 0)
    z = d[v, u].astype(np.float64)
    rays = np.linalg.solve(K, np.stack([u, v, np.ones_like(u)]).astype(np.float64))
    p = T_dst_src[:3, :3] @ (rays * z) + T_dst_src[:3, 3:4]
    front = p[2] > 1e-6
    uvw = K @ p[:, front]
    iu, iv = np.round(uvw[0] / uvw[2]).astype(int), np.round(uvw[1] / uvw[2]).astype(int)
    inside = (iu >= 0) & (iu < W) & (iv >= 0) & (iv < H)
    out = np.full(H * W, np.inf)
    np.minimum.at(out, iv[inside] * W + iu[inside], p[2, front][inside])
    out = out.reshape(H, W).astype(np.float32)
    # One-pixel gaps between splats (a slight zoom or rotation): the nearer of the two pixels either side.
    gap = ~np.isfinite(out)
    for a, b in ((out[1:-1, :-2], out[1:-1, 2:]), (out[:-2, 1:-1], out[2:, 1:-1])):
        inner = gap[1:-1, 1:-1] & np.isfinite(a) & np.isfinite(b)
        out[1:-1, 1:-1][inner] = np.minimum(a, b)[inner]
        gap[1:-1, 1:-1] &= ~inner
    out[~np.isfinite(out)] = 0.0
    return out


def depth_at_image_time(depth_m: np.ndarray, K: np.ndarray, T_world_prev: np.ndarray, T_world_cur: np.ndarray,
                        t_prev_s: float, t_cur_s: float, t_depth_s: float) -> np.ndarray:
    """A depth image taken at ``t_depth_s`` moved to the pose of the colour image at ``t_cur_s``.

    The motion at ``t_depth_s`` is interpolated (or extrapolated) at constant velocity from the previous
    frame's pose to the current one; the depth is then re-projected with :func:`warp_depth`.

    Args:
        depth_m: (H, W) depth (m) taken at ``t_depth_s``, pixel-registered to the colour camera.
        K: (3, 3) intrinsics.
        T_world_prev, T_world_cur: (4, 4) poses of the previous and the current colour image.
        t_prev_s, t_cur_s, t_depth_s: their time stamps and the depth's (s); ``t_cur_s > t_prev_s``.

    Returns:
        (H, W) float32 depth (m) at the current colour image's pose (the input unchanged when the
        times agree to 0.1 ms).
    """
    if abs(t_depth_s - t_cur_s) < 1e-4:
        return np.asarray(depth_m, np.float32)
    if not t_cur_s > t_prev_s:
        raise ValueError(f"depth_at_image_time: t_cur_s {t_cur_s} must follow t_prev_s {t_prev_s}")
    T_prev_cur = inv_se3(T_world_prev) @ T_world_cur
    T_cur_depth = interpolate_se3(T_prev_cur, (t_depth_s - t_cur_s) / (t_cur_s - t_prev_s))
    return warp_depth(depth_m, K, T_cur_depth)
