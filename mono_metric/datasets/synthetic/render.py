"""CPU ray-casting renderer (Open3D ``RaycastingScene``) with procedural, position-locked textures."""
from __future__ import annotations

import numpy as np
import open3d as o3d

from mono_metric.camera import Camera
from mono_metric.datasets.synthetic.scene import MATERIAL_NAMES, MATERIALS, Scene

_SUN = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
_SKY_HORIZON = np.array([0.80, 0.86, 0.92])
_SKY_ZENITH = np.array([0.35, 0.52, 0.82])


def _hash2(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic integer lattice hash to floats in [0, 1)."""
    h = ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + salt * 1442695041
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float32) / np.float32(0x1000000)


def value_noise(u: np.ndarray, v: np.ndarray, salt: int) -> np.ndarray:
    """Smooth 2D value noise in [0, 1) with unit lattice spacing."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int64), iv.astype(np.int64)
    a, b = _hash2(iu, iv, salt), _hash2(iu + 1, iv, salt)
    c, d = _hash2(iu, iv + 1, salt), _hash2(iu + 1, iv + 1, salt)
    return (a + (b - a) * fu) * (1 - fv) + (c + (d - c) * fu) * fv


def fbm(u: np.ndarray, v: np.ndarray, salt: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, normalised to about [0, 1)."""
    out, amp, norm = np.zeros_like(u), 1.0, 0.0
    for k in range(octaves):
        out += amp * value_noise(u * 2**k, v * 2**k, salt + 7 * k)
        norm += amp
        amp *= 0.5
    return out / norm


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, size: tuple[float, float], salt: int) -> np.ndarray:
    """(N, 3) multiplicative colour of a pattern at texture coordinates (u, v) in metres."""
    pu, pv = size
    cu, cv = np.floor(u / pu), np.floor(v / pv)
    fu, fv = u / pu - cu, v / pv - cv
    one = np.ones((len(u), 3), np.float32)
    if kind == "blotches":
        n = fbm(u / pu, v / pv, salt)
        return one * (0.75 + 0.9 * np.clip((n - 0.5) * 3.0, -0.3, 0.3))[:, None]
    if kind == "tiles":
        cell = 0.8 + 0.35 * _hash2(cu, cv, salt)
        grout = (fu < 0.05) | (fv < 0.05)
        return one * np.where(grout, 0.45, cell)[:, None]
    if kind == "windows":
        lit = _hash2(cu, cv, salt)
        window = (fu > 0.22) & (fu < 0.78) & (fv > 0.3) & (fv < 0.8) & (v > 1.0)
        glass = np.stack([0.22 + 0.25 * lit, 0.26 + 0.25 * lit, 0.34 + 0.2 * lit], 1)
        frame = (fu > 0.18) & (fu < 0.82) & (fv > 0.26) & (fv < 0.84) & (v > 1.0) & ~window
        out = np.where(window[:, None], glass / 0.7, one)
        return np.where(frame[:, None], 1.25, out)
    if kind == "car":
        glass = (v > 1.12) & (v < 1.5)
        out = np.where(glass[:, None], 0.25, one)
        return np.where((v < 0.42)[:, None], 0.18, out)
    if kind == "wallpaper":
        checker = ((cu + cv) % 2).astype(np.float32)
        return one * (0.85 + 0.18 * checker + 0.25 * (fbm(u / 0.3, v / 0.3, salt) - 0.5))[:, None]
    if kind == "planks":
        shift = _hash2(cu, np.zeros_like(cu), salt) * pv
        row = np.floor((v + shift) / pv)
        seam = (fu < 0.06) | (((v + shift) / pv - row) < 0.02)
        tone = 0.75 + 0.5 * _hash2(cu, row, salt + 1)
        grain = 0.85 + 0.3 * value_noise(u / 0.02, v / 0.3, salt + 2)
        return one * np.where(seam, 0.4, tone * grain)[:, None]
    if kind == "checker":
        return one * np.where(((cu + cv) % 2) == 0, 0.55, 1.25)[:, None]
    if kind == "poster":
        return np.stack([_hash2(cu, cv, salt + k) for k in range(3)], 1) * 1.9 + 0.1
    raise ValueError(f"unknown pattern {kind!r}")


def to_uint8(color: np.ndarray, noise_std: float = 0.0, noise_seed: int = 0) -> np.ndarray:
    """(H, W, 3) float colour (1 = white) to uint8, with additive Gaussian noise of ``noise_std`` 8-bit levels."""
    if noise_std > 0:
        color = color + np.random.default_rng(noise_seed).standard_normal(
            color.shape, np.float32) * np.float32(noise_std / 255.0)
    return (np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class Renderer:
    """Renders RGB and z-depth of a :class:`Scene` for pinhole cameras.

    Args:
        scene: the scene to render.
        seed: salts the texture noise so different seeds give different looks.
    """

    def __init__(self, scene: Scene, seed: int = 0):
        self.scene = scene
        self.seed = int(seed)
        self._rc = o3d.t.geometry.RaycastingScene()
        self._rc.add_triangles(o3d.core.Tensor(scene.vertices, o3d.core.float32),
                               o3d.core.Tensor(scene.triangles, o3d.core.uint32))
        self._normals = scene.normals
        self._tangent, self._bitangent = scene.texture_basis()
        self._rays_cache: tuple | None = None

    def _camera_rays(self, camera: Camera, distortion: tuple[float, ...] | None) -> np.ndarray:
        """(H*W, 3) float32 camera-frame rays with z = 1, cached for the last camera."""
        key = (camera, tuple(distortion) if distortion is not None else None)
        if self._rays_cache is None or self._rays_cache[0] != key:
            rays = camera.pixel_rays().reshape(-1, 3)
            if distortion is not None:  # a distorted pixel sees along the ray of its pinhole position
                from mono_metric.undistort import undistort_points

                uv = undistort_points(rays[:, :2] * [camera.fx, camera.fy] + [camera.cx, camera.cy], camera, distortion)
                rays = np.column_stack([(uv - [camera.cx, camera.cy]) / [camera.fx, camera.fy], np.ones(len(uv))])
            self._rays_cache = (key, rays.astype(np.float32))
        return self._rays_cache[1]

    def render(self, camera: Camera, T_world_cam: np.ndarray, noise_std: float = 0.0,
               noise_seed: int = 0, distortion: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Render one view.

        Args:
            camera: intrinsics and image size.
            T_world_cam: (4, 4) camera pose, or (H, 4, 4) one pose per image row (rolling shutter).
            noise_std: std of additive Gaussian image noise in 8-bit levels.
            noise_seed: seed of that noise.
            distortion: OpenCV coefficients k1, k2, p1, p2[, k3]: render the distorted image.

        Returns:
            rgb: (H, W, 3) uint8.
            depth_m: (H, W) float32 z-depth in metres, 0 where a ray hits nothing (sky).
        """
        color, depth = self.render_linear(camera, T_world_cam, distortion)
        return to_uint8(color, noise_std, noise_seed), depth

    def render_linear(self, camera: Camera, T_world_cam: np.ndarray,
                      distortion: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free float colour and depth of one view (see :meth:`render` for the arguments).

        Returns:
            color: (H, W, 3) float32 radiance in [0, ~1.3] (1 = white level of the 8-bit image).
            depth_m: (H, W) float32 z-depth in metres, 0 where a ray hits nothing (sky).
        """
        H, W = camera.height, camera.width
        cam_rays = self._camera_rays(camera, distortion)  # camera rays have z = 1, so the hit parameter is z-depth
        T = np.asarray(T_world_cam)
        rays = np.empty((len(cam_rays), 6), np.float32)
        if T.shape == (4, 4):
            R, t = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
            dirs = cam_rays @ R.T
            rays[:, :3] = t
        elif T.shape == (H, 4, 4):
            R = T[:, :3, :3].astype(np.float32)
            dirs = np.matmul(cam_rays.reshape(H, W, 3), R.transpose(0, 2, 1)).reshape(-1, 3)
            t = np.repeat(T[:, :3, 3].astype(np.float32), W, axis=0)
            rays[:, :3] = t
        else:
            raise ValueError(f"T_world_cam must be (4, 4) or ({H}, 4, 4) per image row, got {T.shape}")
        rays[:, 3:] = dirs
        hit = self._rc.cast_rays(o3d.core.Tensor(rays))
        t_hit = hit["t_hit"].numpy()
        prim = hit["primitive_ids"].numpy().astype(np.int64)
        valid = np.isfinite(t_hit)
        color = np.empty((H * W, 3), np.float32)
        unit = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        if self.scene.has_sky:
            up = np.clip(unit[~valid, 2] * 3.0, 0.0, 1.0)[:, None]
            color[~valid] = _SKY_HORIZON * (1 - up) + _SKY_ZENITH * up
        if valid.any():
            origin = t if t.ndim == 1 else t[valid]
            color[valid] = self._shade(prim[valid], origin + dirs[valid] * t_hit[valid, None], unit[valid],
                                       t_hit[valid])
        depth = np.where(valid, t_hit, 0.0).astype(np.float32).reshape(H, W)
        return color.reshape(H, W, 3), depth

    def _shade(self, prim: np.ndarray, points: np.ndarray, view_dir: np.ndarray, depth: np.ndarray) -> np.ndarray:
        mat = self.scene.material[prim]
        u = np.einsum("ij,ij->i", points, self._tangent[prim])
        v = np.einsum("ij,ij->i", points, self._bitangent[prim])
        order = np.argsort(mat.astype(np.int8), kind="stable")  # shade each material over one contiguous slice
        mats, starts = np.unique(mat[order], return_index=True)
        albedo = np.empty((len(prim), 3), np.float32)
        for m, lo, hi in zip(mats, starts, [*starts[1:], len(order)]):
            base, kind, size, noise_m = MATERIALS[MATERIAL_NAMES[m]]
            sel = order[lo:hi]
            us, vs = u[sel], v[sel]
            salt = self.seed * 101 + int(m) * 13
            grime = 0.8 + 0.4 * fbm(us / noise_m, vs / noise_m, salt + 3)
            albedo[sel] = np.asarray(base, np.float32) * _pattern(kind, us, vs, size, salt) * grime[:, None]
        n = self._normals[prim]
        n = np.where((np.einsum("ij,ij->i", n, view_dir) > 0)[:, None], -n, n)
        if self.scene.has_sky:
            light = 0.42 + 0.62 * np.clip(n @ _SUN, 0.0, 1.0)
            haze = (1.0 - np.exp(-depth / 350.0))[:, None]
            return (albedo * light[:, None]) * (1 - haze) + _SKY_HORIZON * haze
        light = 0.5 + 0.45 * np.abs(n @ np.array([0.3, 0.5, 0.81]))
        return albedo * light[:, None]
