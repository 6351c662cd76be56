"""Time during the exposure: continuous camera poses, rolling shutter rows and motion blur.

Timing convention: row ``r`` of an ``H``-row image is exposed around ``t0 + r * readout / H`` with
``t0 = t_frame - readout * (H - 1) / (2 H)``, so the middle row is exposed at the frame's timestamp and
the ground-truth pose of a frame is the pose at the centre of its image and of its exposure. Each row
integrates light from ``exposure / 2`` before to ``exposure / 2`` after its time.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from mono_metric.camera import Camera
from mono_metric.geometry import inv_se3, make_se3

_NOMINAL_DEPTH_M = 2.0  # depth at which the translation's image motion is counted when sampling the exposure


def interpolate_poses(times_s: np.ndarray, T_world_cam: np.ndarray, query_s: np.ndarray) -> np.ndarray:
    """Poses at ``query_s`` on a constant-velocity path through the key poses (geodesic per interval).

    Args:
        times_s: (N,) increasing key times in seconds.
        T_world_cam: (N, 4, 4) key poses.
        query_s: (M,) query times; before the first / after the last key time the first / last
            interval's motion is extrapolated.

    Returns:
        (M, 4, 4) float64 ``T_world_cam``.
    """
    query_s = np.asarray(query_s, np.float64).reshape(-1)
    if len(times_s) == 1:
        return np.repeat(np.asarray(T_world_cam, np.float64)[:1], len(query_s), axis=0)
    k = np.clip(np.searchsorted(times_s, query_s, side="right") - 1, 0, len(times_s) - 2)
    alpha = (query_s - times_s[k]) / (times_s[k + 1] - times_s[k])
    R0, R1 = T_world_cam[k, :3, :3], T_world_cam[k + 1, :3, :3]
    rotvec = Rotation.from_matrix(np.swapaxes(R0, 1, 2) @ R1).as_rotvec()
    R = R0 @ Rotation.from_rotvec(rotvec * alpha[:, None]).as_matrix()
    t = T_world_cam[k, :3, 3] * (1 - alpha[:, None]) + T_world_cam[k + 1, :3, 3] * alpha[:, None]
    return make_se3(R, t)


def row_times(height: int, t_frame_s: float, readout_s: float, pad_rows: int = 0) -> np.ndarray:
    """(height + 2 * pad_rows,) exposure-centre time of each image row (padding rows extrapolate)."""
    r = np.arange(-pad_rows, height + pad_rows, dtype=np.float64)
    return t_frame_s + (r - (height - 1) / 2.0) * readout_s / height


def _padded(camera: Camera, pad: int) -> Camera:
    return Camera(camera.fx, camera.fy, camera.cx + pad, camera.cy + pad, camera.width + 2 * pad,
                  camera.height + 2 * pad)


def _warp_maps(camera: Camera, depth_m: np.ndarray, T_cam_sub: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of a sub-exposure view lies in the (padded) rendered view.

    A pixel's point is taken at the rendered depth of the same pixel (exact for rotation; sky pixels,
    depth 0, are directions at infinity). ``T_cam_sub``: (H, 4, 4) sub-exposure pose of each row in the
    rendered pose of the same row.
    """
    H, W = depth_m.shape
    rays = camera.pixel_rays().astype(np.float32)
    R = T_cam_sub[:, :3, :3].astype(np.float32)
    t = T_cam_sub[:, :3, 3].astype(np.float32)
    p = np.matmul(rays, R.transpose(0, 2, 1))  # (H, W, 3): each row's rays rotated by its row's rotation
    finite = depth_m > 0
    p += np.where(finite[..., None], t[:, None, :] / np.where(finite, depth_m, 1.0)[..., None], 0.0)
    z = np.maximum(p[..., 2], 1e-6)
    map_x = (camera.fx * p[..., 0] / z + camera.cx + pad).astype(np.float32)
    map_y = (camera.fy * p[..., 1] / z + camera.cy + pad).astype(np.float32)
    return map_x, map_y


def render_exposure(renderer, camera: Camera, pose_at, t_frame_s: float, readout_s: float = 0.0,
                    exposure_s: float = 0.0, blur_step_px: float = 1.0, blur_max_samples: int = 16,
                    distortion: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Render a frame with a rolling shutter and motion blur.

    The rolling shutter is exact: every row is ray-cast from its own pose. Motion blur is the mean of
    ``S`` sub-exposure views at times ``row_time + ((s + 0.5) / S - 0.5) * exposure``; each is warped from
    the rendered view with its depth (exact for rotation, first order in translation over the depth),
    rendered with a margin so the warps see past the image border. The warps of the exposure's start and
    end are computed from the poses, those between on the quadratic through start, centre and end.
    ``S`` grows with the image motion during the exposure (rotation at the image corners plus translation
    seen at 2 m): about one sample per ``blur_step_px`` of the largest displacement, at most
    ``blur_max_samples``; a camera that does not move gets ``S = 1``, the plain render.

    Args:
        renderer: a :class:`~mono_metric.datasets.synthetic.render.Renderer`.
        camera: intrinsics and size of the output image.
        pose_at: function (M,) times in seconds -> (M, 4, 4) ``T_world_cam``.
        t_frame_s: the frame's timestamp (centre row, centre of the exposure).
        readout_s: time from the first to the last row (0: global shutter).
        exposure_s: exposure time of each row (0: no blur).
        blur_step_px, blur_max_samples: sampling of the exposure.
        distortion: lens distortion of the render (not combined with motion blur).

    Returns:
        color: (H, W, 3) float32 linear colour (1 = white).
        depth_m: (H, W) float32 z-depth at the rows' exposure-centre poses, 0 where nothing is hit.
        samples: number of sub-exposure views averaged.
    """
    H, W = camera.height, camera.width
    if exposure_s > 0 and distortion is not None:
        raise ValueError("motion blur is not implemented for distorted renders; set exposure_ms 0 or no distortion")
    # Margin: the largest image motion of a corner during half the exposure, in pixels.
    corners = np.array([[0, 0], [W - 1, 0], [0, H - 1], [W - 1, H - 1]], np.float64)
    times = row_times(H, t_frame_s, readout_s)
    span = 0.0
    if exposure_s > 0:
        rows = np.array([0, H - 1, 0, H - 1])
        T_mid = pose_at(times[rows])
        T_a, T_b = pose_at(times[rows] - exposure_s / 2), pose_at(times[rows] + exposure_s / 2)
        rays = np.column_stack([(corners - [camera.cx, camera.cy]) / [camera.fx, camera.fy], np.ones(4)])
        for T_end in (T_a, T_b):  # rotation-only estimate of the corner motion (translation adds little)
            R = np.swapaxes(T_mid[:, :3, :3], 1, 2) @ T_end[:, :3, :3]
            q = np.einsum("nij,nj->ni", R, rays)
            uv = q[:, :2] / np.maximum(q[:, 2:], 1e-6) * [camera.fx, camera.fy] + [camera.cx, camera.cy]
            shift = np.linalg.norm(T_end[:, :3, 3] - T_mid[:, :3, 3], axis=1).max() * camera.fx / _NOMINAL_DEPTH_M
            span = max(span, float(np.abs(uv - corners).max()) + shift)
    samples = int(np.clip(np.ceil(2 * span / blur_step_px), 1, blur_max_samples)) if span > 1e-3 else 1
    pad = int(np.ceil(span * 1.25)) + 2 if samples > 1 else 0
    render_cam = _padded(camera, pad) if pad else camera
    if readout_s > 0:
        T_rows = pose_at(row_times(H, t_frame_s, readout_s, pad))
        color, depth = renderer.render_linear(render_cam, T_rows, distortion)
    else:
        T_rows = np.repeat(pose_at(np.array([t_frame_s])), H + 2 * pad, axis=0)
        color, depth = renderer.render_linear(render_cam, T_rows[0], distortion)
    if samples == 1:
        return color, depth, 1
    inner_depth = depth[pad:pad + H, pad:pad + W]
    T_cam_world = inv_se3(T_rows[pad:pad + H])
    # Exact warps at the start, centre (the render itself) and end of the exposure; the samples between
    # follow the quadratic through them (the error is third order in the exposure, far below a pixel).
    start = _warp_maps(camera, inner_depth, T_cam_world @ pose_at(times - exposure_s / 2), pad)
    end = _warp_maps(camera, inner_depth, T_cam_world @ pose_at(times + exposure_s / 2), pad)
    v, u = np.mgrid[pad:pad + H, pad:pad + W].astype(np.float32)
    acc = np.zeros((H, W, 3), np.float32)
    for s in range(samples):
        a = np.float32(2 * (s + 0.5) / samples - 1)  # -1 at the start of the exposure, +1 at the end
        maps = [c + a * (e - b) / 2 + a * a * (e + b - 2 * c) / 2 for c, b, e in zip((u, v), start, end)]
        acc += cv2.remap(color, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return acc / np.float32(samples), np.ascontiguousarray(inner_depth), samples
