"""Writing depth predictions: 16-bit PNG in millimetres, .npy in metres, a preview beside the image, a PLY cloud."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mono_metric.camera import Camera


def depth_to_png_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) metres -> uint16 millimetres (0 = invalid, saturates at 65.535 m)."""
    d = np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint16)


def save_depth_outputs(out_dir: Path, stem: str, image: np.ndarray, depth_m: np.ndarray, camera: Camera,
                       max_points: int = 500_000, range_m: tuple[float, float] | None = None) -> list[Path]:
    """Write ``stem_depth.png`` (uint16 mm), ``stem_depth.npy``, ``stem_preview.png`` (the image beside the
    depth, colour bar in metres over ``range_m``, default: from this depth) and ``stem_cloud.ply``."""
    import open3d as o3d

    from mono_metric.eval.plot import depth_range_m, save_depth_preview

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}_depth.png", out_dir / f"{stem}_depth.npy", out_dir / f"{stem}_preview.png",
             out_dir / f"{stem}_cloud.ply"]
    cv2.imwrite(str(paths[0]), depth_to_png_mm(depth_m))
    np.save(paths[1], depth_m.astype(np.float32))
    save_depth_preview(paths[2], image, depth_m, range_m or depth_range_m(depth_m), title=stem)
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
