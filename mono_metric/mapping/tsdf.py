"""Dense map: TSDF fusion of metric depth with Open3D's ``VoxelBlockGrid``, a down-sampled point cloud,
and map accuracy against ground truth (Chamfer distance).

Depth in metres, poses ``T_world_cam`` (4x4, camera to world), images (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import open3d.core as o3c

from mono_metric.camera import Camera
from mono_metric.errors import InputError
from mono_metric.geometry import inv_se3


def o3d_device(device: str) -> o3c.Device:
    """'cpu' / 'cuda' / 'cuda:1' -> an Open3D device (CUDA only when this Open3D build has it)."""
    kind, _, idx = device.partition(":")
    if kind == "cuda":
        if not o3c.cuda.is_available():
            raise InputError(f"mapping device {device!r} needs an Open3D build with CUDA; use 'cpu'")
        return o3c.Device("CUDA", int(idx or 0))
    if kind != "cpu":
        raise InputError(f"unknown mapping device {device!r}; use 'cpu' or 'cuda[:N]'")
    return o3c.Device("CPU", 0)


class TSDFMap:
    """Truncated signed distance fusion of metric RGB-D frames.

    Args:
        camera: intrinsics of the frames.
        voxel_size_m: voxel edge length.
        trunc_voxels: truncation distance in voxels.
        max_depth_m: depth beyond this is not fused.
        device: 'cpu' or 'cuda[:N]'.
        block_resolution: voxels per block edge.
    """

    def __init__(self, camera: Camera, voxel_size_m: float = 0.05, trunc_voxels: float = 4.0,
                 max_depth_m: float = 5.0, device: str = "cpu", block_resolution: int = 8):
        if voxel_size_m <= 0 or trunc_voxels <= 0 or max_depth_m <= 0:
            raise InputError("TSDF voxel size, truncation and max depth must be positive")
        self.camera, self.voxel_size_m, self.trunc_voxels, self.max_depth_m = camera, voxel_size_m, trunc_voxels, max_depth_m
        self.device = o3d_device(device)
        self.grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
            attr_channels=((1,), (1,), (3,)), voxel_size=voxel_size_m, block_resolution=block_resolution,
            block_count=20000, device=self.device)
        self._K = o3c.Tensor(camera.K, o3c.float64)
        self.frames = 0
        # The grid is offset by a fraction of a voxel: a plane lying exactly on voxel centres (a floor
        # at z = 0) gives TSDF values of exactly 0 there, and marching cubes finds no sign change.
        self.grid_offset_m = voxel_size_m * np.array([0.3183, 0.2718, 0.1414])

    def integrate(self, image: np.ndarray, depth_m: np.ndarray, T_world_cam: np.ndarray) -> None:
        """Fuse one frame (depth 0, NaN or inf is skipped)."""
        self.camera.check_image(image)
        if depth_m.shape != image.shape[:2]:
            raise InputError(f"depth {depth_m.shape} and image {image.shape[:2]} differ in size")
        depth = np.nan_to_num(depth_m.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        depth[depth > self.max_depth_m] = 0.0
        if not (depth > 0).any():  # nothing within range (e.g. sky, or depth beyond max_depth_m): no block to touch
            return
        d = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth))).to(self.device)
        c = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(image, np.float32) / 255.0)).to(self.device)
        T_grid_cam = T_world_cam.copy()
        T_grid_cam[:3, 3] += self.grid_offset_m
        extrinsic = o3c.Tensor(inv_se3(T_grid_cam), o3c.float64)
        try:
            blocks = self.grid.compute_unique_block_coordinates(d, self._K, extrinsic, 1.0, self.max_depth_m,
                                                                self.trunc_voxels)
        except RuntimeError as err:  # Open3D refuses a frame whose few in-range pixels touch no block
            if "No block is touched" in str(err):
                return
            raise
        self.grid.integrate(blocks, d, c, self._K, extrinsic, 1.0, self.max_depth_m, self.trunc_voxels)
        self.frames += 1

    def save(self, path: str | Path) -> None:
        """Write the voxel grid (Open3D ``.npz``) for :meth:`load_grid`."""
        self.grid.save(str(path))

    def load_grid(self, path: str | Path, frames: int) -> None:
        """Replace the grid by one written with :meth:`save` (``frames`` fused so far)."""
        self.grid = o3d.t.geometry.VoxelBlockGrid.load(str(path)).to(self.device)
        self.frames = int(frames)

    @property
    def block_count(self) -> int:
        """Allocated voxel blocks (memory grows with this)."""
        return int(self.grid.hashmap().size())

    def mesh(self, weight_threshold: float = 0.5) -> o3d.geometry.TriangleMesh:
        """Coloured triangle mesh of the zero level set (legacy Open3D mesh, on the CPU)."""
        mesh = self.grid.extract_triangle_mesh(weight_threshold).to_legacy().translate(-self.grid_offset_m)
        mesh.vertex_colors = _unit_colors(mesh.vertex_colors)
        return mesh

    def point_cloud(self, weight_threshold: float = 0.5) -> o3d.geometry.PointCloud:
        """Coloured surface points of the TSDF."""
        cloud = self.grid.extract_point_cloud(weight_threshold).to_legacy().translate(-self.grid_offset_m)
        cloud.colors = _unit_colors(cloud.colors)
        return cloud


def _unit_colors(colors: o3d.utility.Vector3dVector) -> o3d.utility.Vector3dVector:
    """Colours clipped to [0, 1]: the fused averages of white pixels come out at 1 + 1e-7 (float32), which
    Open3D's PLY writer clamps with a warning on every run."""
    return o3d.utility.Vector3dVector(np.clip(np.asarray(colors), 0.0, 1.0))


class PointCloudAccumulator:
    """Back-projected depth of many frames on a voxel grid: the first point (and colour) per voxel is kept.

    Memory and time per frame grow with the area mapped only: each frame's points are reduced to one
    per voxel and only voxels not seen before are added.

    Args:
        camera: intrinsics.
        voxel_size_m: voxel edge of the grid.
        max_depth_m: farther depth is skipped.
        pixel_stride: use every n-th pixel in each direction.
    """

    def __init__(self, camera: Camera, voxel_size_m: float = 0.05, max_depth_m: float = 20.0, pixel_stride: int = 2):
        self.camera, self.voxel_size_m, self.max_depth_m, self.stride = camera, voxel_size_m, max_depth_m, pixel_stride
        self._keys = np.zeros(0, np.int64)  # sorted voxel codes
        self._points: list[np.ndarray] = []  # chunks, joined on demand
        self._colors: list[np.ndarray] = []

    def _codes(self, xyz: np.ndarray) -> np.ndarray:
        ijk = np.floor(xyz / self.voxel_size_m).astype(np.int64) + (1 << 20)  # +-1e6 voxels per axis
        return (ijk[:, 0] << 42) | (ijk[:, 1] << 21) | ijk[:, 2]

    def add(self, image: np.ndarray, depth_m: np.ndarray, T_world_cam: np.ndarray) -> None:
        s = self.stride
        d = depth_m[::s, ::s]
        v, u = np.nonzero(np.isfinite(d) & (d > 0) & (d < self.max_depth_m))
        z = d[v, u].astype(np.float64)
        xyz = self.camera.backproject(np.stack([u * s, v * s], 1).astype(np.float64), z)
        xyz = xyz @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]
        codes, first = np.unique(self._codes(xyz), return_index=True)
        pos = np.searchsorted(self._keys, codes)
        new = (pos >= len(self._keys)) | (self._keys[np.minimum(pos, len(self._keys) - 1)] != codes) \
            if len(self._keys) else np.ones(len(codes), bool)
        keep = first[new]
        self._keys = np.sort(np.concatenate([self._keys, codes[new]]), kind="stable")  # merges two sorted runs
        self._points.append(xyz[keep])
        self._colors.append(image[::s, ::s][v, u][keep].astype(np.float64) / 255.0)

    @property
    def points(self) -> np.ndarray:
        """(N, 3) points in metres (world frame)."""
        self._points = [np.concatenate(self._points)] if self._points else [np.zeros((0, 3))]
        return self._points[0]

    @property
    def colors(self) -> np.ndarray:
        """(N, 3) RGB in [0, 1]."""
        self._colors = [np.concatenate(self._colors)] if self._colors else [np.zeros((0, 3))]
        return self._colors[0]

    @property
    def cloud(self) -> o3d.geometry.PointCloud:
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(self.points))
        pc.colors = o3d.utility.Vector3dVector(self.colors)
        return pc

    def restore(self, points: np.ndarray, colors: np.ndarray) -> None:
        """Continue from saved points and colours (N, 3)."""
        self._points, self._colors = [np.asarray(points, np.float64)], [np.asarray(colors, np.float64)]
        self._keys = np.sort(self._codes(self._points[0]))

    def result(self) -> o3d.geometry.PointCloud:
        return self.cloud


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray) -> dict[str, float]:
    """Mean nearest-neighbour distances between two (N, 3) point sets in metres.

    Returns:
        accuracy (a -> b), completeness (b -> a) and chamfer (their mean).
    """
    pa = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points_a, np.float64)))
    pb = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points_b, np.float64)))
    if not len(pa.points) or not len(pb.points):
        raise ValueError("Chamfer distance needs two non-empty point sets")
    acc = float(np.mean(pa.compute_point_cloud_distance(pb)))
    comp = float(np.mean(pb.compute_point_cloud_distance(pa)))
    return {"accuracy_m": acc, "completeness_m": comp, "chamfer_m": 0.5 * (acc + comp)}


def points_to_mesh_distance(points: np.ndarray, mesh: o3d.geometry.TriangleMesh) -> np.ndarray:
    """(N,) exact distances in metres from (N, 3) points to the triangles of ``mesh``."""
    if not len(mesh.triangles):
        raise ValueError("the mesh is empty")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    return scene.compute_distance(o3c.Tensor(np.asarray(points, np.float32))).numpy()


def mesh_chamfer(mesh: o3d.geometry.TriangleMesh, gt_points: np.ndarray, samples: int = 300_000) -> dict[str, float]:
    """Chamfer distance between a mesh and an observed ground-truth point set (metres).

    Accuracy is the mean distance from points sampled on the mesh to the nearest GT point; completeness
    the mean exact distance from each GT point to the mesh surface (not to mesh samples, whose spacing
    would dominate on large maps); Chamfer is their mean.
    """
    acc = chamfer_distance(np.asarray(mesh.sample_points_uniformly(samples).points), gt_points)["accuracy_m"]
    comp = float(points_to_mesh_distance(gt_points, mesh).mean())
    return {"accuracy_m": acc, "completeness_m": comp, "chamfer_m": 0.5 * (acc + comp)}


def mesh_accuracy(mesh: o3d.geometry.TriangleMesh, gt_mesh: o3d.geometry.TriangleMesh,
                  T_gt_est: np.ndarray = np.eye(4), samples: int = 200_000) -> dict[str, float]:
    """Distance from a reconstructed mesh to the ground-truth surface.

    Args:
        mesh: reconstruction in the estimate's world frame.
        gt_mesh: ground-truth surface in the ground-truth world frame.
        T_gt_est: (4, 4) estimate-world to ground-truth-world transform.
        samples: points sampled uniformly on ``mesh``.

    Returns:
        accuracy_m (mean), accuracy_median_m and accuracy_p90_m.
    """
    if not len(mesh.triangles):
        raise ValueError("the reconstructed mesh is empty")
    pts = np.asarray(mesh.sample_points_uniformly(samples).points)
    d = points_to_mesh_distance(pts @ T_gt_est[:3, :3].T + T_gt_est[:3, 3], gt_mesh)
    return {"accuracy_m": float(d.mean()), "accuracy_median_m": float(np.median(d)),
            "accuracy_p90_m": float(np.percentile(d, 90))}


def save_geometry(path: str | Path, geometry) -> Path:
    """Write a mesh or point cloud (format by extension, e.g. .ply); colours are clipped to [0, 1] in a copy
    (TSDF meshes interpolate colours slightly out of range, which Open3D would clamp with a warning)."""
    path = Path(path)
    is_mesh = isinstance(geometry, o3d.geometry.TriangleMesh)
    colors = np.asarray(geometry.vertex_colors if is_mesh else geometry.colors)
    if colors.size and (colors.min() < 0 or colors.max() > 1):
        geometry = o3d.geometry.TriangleMesh(geometry) if is_mesh else o3d.geometry.PointCloud(geometry)
        if is_mesh:
            geometry.vertex_colors = _unit_colors(geometry.vertex_colors)
        else:
            geometry.colors = _unit_colors(geometry.colors)
    ok = (o3d.io.write_triangle_mesh(str(path), geometry) if is_mesh
          else o3d.io.write_point_cloud(str(path), geometry))
    if not ok:
        raise InputError(f"cannot write {path}; check that the folder exists and is writable")
    return path
