"""Writing depth predictions: 16-bit PNG in millimetres, .npy in metres, a coloured preview, a PLY cloud."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mono_metric.camera import Camera


def depth_to_png_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) metres -> uint16 millimetres (0 = invalid, saturates at 65.535 m)."""
    d = np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint16)


def colorize_depth(depth_m: np.ndarray, max_depth_m: float | None = None) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB preview (near = warm), scaled to the 98th percentile."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    top = max_depth_m or (float(np.percentile(depth_m[valid], 98)) if valid.any() else 1.0)
    norm = np.clip(depth_m / max(top, 1e-6), 0.0, 1.0)
    bgr = cv2.applyColorMap((255 * (1.0 - norm)).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[~valid] = 0
    return bgr[:, :, ::-1].copy()


def save_depth_outputs(out_dir: Path, stem: str, image: np.ndarray, depth_m: np.ndarray, camera: Camera,
                       max_points: int = 500_000) -> list[Path]:
    """Write ``stem_depth.png`` (uint16 mm), ``stem_depth.npy``, ``stem_preview.png`` and ``stem_cloud.ply``."""
    import open3d as o3d

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}_depth.png", out_dir / f"{stem}_depth.npy", out_dir / f"{stem}_preview.png",
             out_dir / f"{stem}_cloud.ply"]
    cv2.imwrite(str(paths[0]), depth_to_png_mm(depth_m))
    np.save(paths[1], depth_m.astype(np.float32))
    preview = np.concatenate([image, colorize_depth(depth_m)], axis=0)
    cv2.imwrite(str(paths[2]), preview[:, :, ::-1])
    points = camera.backproject_depth(depth_m).reshape(-1, 3)
    colors = image.reshape(-1, 3).astype(np.float64) / 255.0
    valid = np.isfinite(points).all(1) & (points[:, 2] > 0)
    idx = np.flatnonzero(valid)
    if len(idx) > max_points:
        idx = idx[:: int(np.ceil(len(idx) / max_points))]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[idx]))
    cloud.colors = o3d.utility.Vector3dVector(colors[idx])
    o3d.io.write_point_cloud(str(paths[3]), cloud)
    return paths
