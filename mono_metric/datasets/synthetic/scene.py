"""Procedural scenes made of boxes: a KITTI-like street and an indoor room.

A :class:`Scene` is a triangle mesh whose triangles each carry a material index and a planar
texture basis, so the renderer can texture any hit point deterministically from its world position.
World frame: z up, metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Material table: name -> (base RGB in [0, 1], pattern, pattern size in metres (u, v), noise scale m)
MATERIALS: dict[str, tuple[tuple[float, float, float], str, tuple[float, float], float]] = {
    "asphalt": ((0.36, 0.36, 0.38), "blotches", (1.5, 1.5), 0.35),
    "sidewalk": ((0.62, 0.60, 0.56), "tiles", (1.0, 1.0), 0.5),
    "facade_a": ((0.72, 0.58, 0.45), "windows", (2.6, 3.0), 0.8),
    "facade_b": ((0.60, 0.62, 0.66), "windows", (3.2, 3.2), 0.8),
    "facade_c": ((0.78, 0.74, 0.62), "windows", (2.2, 2.8), 0.8),
    "car_red": ((0.62, 0.12, 0.10), "car", (1.0, 1.0), 0.3),
    "car_blue": ((0.14, 0.22, 0.55), "car", (1.0, 1.0), 0.3),
    "car_white": ((0.85, 0.85, 0.84), "car", (1.0, 1.0), 0.3),
    "car_dark": ((0.20, 0.21, 0.22), "car", (1.0, 1.0), 0.3),
    "wall": ((0.80, 0.78, 0.72), "wallpaper", (0.45, 0.45), 0.25),
    "floor": ((0.55, 0.38, 0.22), "planks", (0.18, 1.2), 0.3),
    "ceiling": ((0.90, 0.90, 0.88), "tiles", (0.6, 0.6), 0.6),
    "wood": ((0.50, 0.33, 0.18), "planks", (0.12, 0.9), 0.2),
    "fabric": ((0.30, 0.42, 0.38), "checker", (0.15, 0.15), 0.15),
    "poster": ((0.5, 0.5, 0.5), "poster", (0.12, 0.12), 0.1),
}
MATERIAL_NAMES = list(MATERIALS)

# Box triangles: 8 corners (unit cube centred at 0) and 12 outward-facing triangles.
_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
_TRIS = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


@dataclass
class Scene:
    """Triangle soup with per-triangle material and texture basis.

    Attributes:
        vertices: (V, 3) float32 metres.
        triangles: (T, 3) int32.
        material: (T,) int32 index into ``MATERIAL_NAMES``.
        tangent, bitangent: (T, 3) float32 unit vectors spanning each triangle's plane (texture u, v).
        has_sky: True when rays can escape (outdoor).
    """

    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    triangles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32))
    material: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    has_sky: bool = True

    def add_box(self, center, size, yaw_rad: float, material: str) -> None:
        """Add a box with ``size`` (length along yaw, width, height) centred at ``center``."""
        c, s = np.cos(yaw_rad), np.sin(yaw_rad)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        verts = (_CORNERS * np.asarray(size)) @ R.T + np.asarray(center)
        base = len(self.vertices)
        self.vertices = np.vstack([self.vertices, verts]).astype(np.float32)
        self.triangles = np.vstack([self.triangles, _TRIS + base]).astype(np.int32)
        self.material = np.concatenate([self.material, np.full(len(_TRIS), MATERIAL_NAMES.index(material))])

    @property
    def normals(self) -> np.ndarray:
        """(T, 3) unit triangle normals."""
        v = self.vertices[self.triangles]
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        return (n / np.linalg.norm(n, axis=1, keepdims=True)).astype(np.float32)

    def texture_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """(T, 3) tangent and bitangent: v is world up on walls, (x, y) on floors and roofs."""
        n = self.normals
        up = np.array([0.0, 0.0, 1.0], np.float32)
        vertical = np.abs(n[:, 2]) < 0.5
        tangent = np.cross(up, n)
        tangent[~vertical] = (1.0, 0.0, 0.0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        bitangent = np.where(vertical[:, None], up, np.array([0.0, 1.0, 0.0], np.float32))
        return tangent.astype(np.float32), bitangent.astype(np.float32)

    def to_open3d(self):
        """The scene as an ``open3d.geometry.TriangleMesh`` (legacy) with per-vertex base colours."""
        import open3d as o3d

        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(self.vertices.astype(np.float64)),
                                         o3d.utility.Vector3iVector(self.triangles))
        colors = np.zeros((len(self.vertices), 3))
        base = np.array([MATERIALS[m][0] for m in MATERIAL_NAMES])
        colors[self.triangles.reshape(-1)] = np.repeat(base[self.material], 3, axis=0)
        mesh.vertex_colors = o3d.utility.Vector3dVector(colors)
        mesh.compute_triangle_normals()
        return mesh


# ---------------------------------------------------------------------------- street
def street_path(rng: np.random.Generator, length_m: float, step_m: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A road centre line of straights and turns; returns (S, 2) xy samples and (S,) yaw in radians."""
    n = int(np.ceil(length_m / step_m)) + 1
    curvature = np.zeros(n)
    i = int(rng.uniform(30, 70) / step_m)
    while i < n:
        radius = rng.uniform(18.0, 45.0)
        angle = np.radians(rng.uniform(25.0, 90.0)) * rng.choice([-1.0, 1.0])
        turn_len = int(abs(angle) * radius / step_m)
        ramp = np.sin(np.linspace(0, np.pi, turn_len)) ** 2  # smooth in and out of the turn
        seg = ramp * (angle / (ramp.sum() * step_m))
        curvature[i:i + turn_len] = seg[: max(0, min(turn_len, n - i))]
        i += turn_len + int(rng.uniform(40, 110) / step_m)
    yaw = np.cumsum(curvature) * step_m
    xy = np.cumsum(np.stack([np.cos(yaw), np.sin(yaw)], 1) * step_m, axis=0) - [step_m, 0.0]
    return xy, yaw


def _clear_of_path(xy: np.ndarray, center, size, yaw: float, margin_m: float) -> bool:
    c, s = np.cos(yaw), np.sin(yaw)
    d = xy - np.asarray(center[:2])
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], 1)
    inside = (np.abs(local[:, 0]) < size[0] / 2 + margin_m) & (np.abs(local[:, 1]) < size[1] / 2 + margin_m)
    return not inside.any()


def build_street(rng: np.random.Generator, xy: np.ndarray, yaw: np.ndarray) -> Scene:
    """Ground, building facades on both sides and parked cars along the path ``xy``/``yaw``."""
    scene = Scene(has_sky=True)
    lo, hi = xy.min(0) - 150.0, xy.max(0) + 150.0
    scene.add_box([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, -0.05], [hi[0] - lo[0], hi[1] - lo[1], 0.1], 0.0,
                  "asphalt")
    coarse = xy[::4]
    step = float(np.linalg.norm(xy[1] - xy[0]))
    for side in (-1.0, 1.0):
        s = rng.uniform(-10, 5)
        while s < len(xy) * step + 40:
            k = int(np.clip(s / step, 0, len(xy) - 1))
            normal = np.array([-np.sin(yaw[k]), np.cos(yaw[k])]) * side
            width, depth, height = rng.uniform(7, 16), rng.uniform(8, 14), rng.uniform(7, 22)
            offset = rng.uniform(7.5, 10.5) + depth / 2
            tangent = np.array([np.cos(yaw[k]), np.sin(yaw[k])])
            extra = tangent * (s - k * step)
            center = np.array([*(xy[k] + extra + normal * offset), height / 2])
            size = (width, depth, height)
            if _clear_of_path(coarse, center, size, yaw[k], 4.0):
                scene.add_box(center, size, yaw[k], rng.choice(["facade_a", "facade_b", "facade_c"]))
                scene.add_box([*(xy[k] + extra + normal * (offset - depth / 2 - 1.4)), 0.06],
                              (width, 2.8, 0.12), yaw[k], "sidewalk")
            s += width + rng.uniform(0.0, 6.0)
        s = rng.uniform(2, 12)
        while s < len(xy) * step:
            k = int(s / step)
            normal = np.array([-np.sin(yaw[k]), np.cos(yaw[k])]) * side
            if rng.uniform() < 0.65:
                length, width = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
                base = xy[k] + normal * rng.uniform(3.4, 3.9)
                car_yaw = yaw[k] + rng.normal(0, 0.03)
                if _clear_of_path(coarse, [*base, 0.0], (length, width), car_yaw, 1.2):
                    color = rng.choice(["car_red", "car_blue", "car_white", "car_dark"])
                    scene.add_box([*base, 0.65], (length, width, 0.8), car_yaw, color)
                    scene.add_box([*base, 1.30], (length * 0.55, width * 0.9, 0.5), car_yaw, color)
            s += rng.uniform(5.5, 14.0)
    return scene


# ---------------------------------------------------------------------------- room
def build_room(rng: np.random.Generator) -> tuple[Scene, np.ndarray]:
    """A closed room with furniture near the walls; returns the scene and its (W, D, H) size in metres."""
    W, D, H = rng.uniform(5.0, 7.0), rng.uniform(4.5, 6.0), rng.uniform(2.6, 3.0)
    scene = Scene(has_sky=False)
    t = 0.1
    scene.add_box([0, 0, -t / 2], (W + 2 * t, D + 2 * t, t), 0.0, "floor")
    scene.add_box([0, 0, H + t / 2], (W + 2 * t, D + 2 * t, t), 0.0, "ceiling")
    for sx in (-1, 1):
        scene.add_box([sx * (W + t) / 2, 0, H / 2], (t, D, H), 0.0, "wall")
    for sy in (-1, 1):
        scene.add_box([0, sy * (D + t) / 2, H / 2], (W, t, H), 0.0, "wall")
    # Posters and frames on every wall: textured detail at eye height.
    for sx in (-1, 1):
        for y in rng.uniform(-D / 2 + 0.6, D / 2 - 0.6, size=2):
            scene.add_box([sx * (W / 2 - 0.01), y, rng.uniform(1.3, 1.9)], (0.03, rng.uniform(0.5, 0.9),
                          rng.uniform(0.4, 0.8)), 0.0, "poster")
    for sy in (-1, 1):
        for x in rng.uniform(-W / 2 + 0.6, W / 2 - 0.6, size=2):
            scene.add_box([x, sy * (D / 2 - 0.01), rng.uniform(1.3, 1.9)], (rng.uniform(0.5, 0.9), 0.03,
                          rng.uniform(0.4, 0.8)), 0.0, "poster")
    # Table with legs in one corner region.
    tx, ty = rng.choice([-1, 1]) * (W / 2 - 1.0), rng.choice([-1, 1]) * (D / 2 - 0.8)
    scene.add_box([tx, ty, 0.74], (1.4, 0.8, 0.04), 0.0, "wood")
    for dx in (-0.62, 0.62):
        for dy in (-0.32, 0.32):
            scene.add_box([tx + dx, ty + dy, 0.36], (0.05, 0.05, 0.72), 0.0, "wood")
    scene.add_box([tx + 0.2, ty - 0.1, 0.86], (0.35, 0.25, 0.2), 0.0, "poster")
    # Shelf against a side wall, sofa against the opposite one, a cabinet by the far wall.
    side = rng.choice([-1, 1])
    scene.add_box([side * (W / 2 - 0.2), rng.uniform(-0.5, 0.5), 0.95], (0.4, 1.6, 1.9), 0.0, "wood")
    for z in (0.5, 1.0, 1.5):
        scene.add_box([side * (W / 2 - 0.42), rng.uniform(-0.5, 0.5), z + 0.12], (0.08, 0.9, 0.25), 0.0, "poster")
    scene.add_box([-side * (W / 2 - 0.45), rng.uniform(-0.6, 0.6), 0.4], (0.9, 2.0, 0.8), 0.0, "fabric")
    cy = -np.sign(ty) * (D / 2 - 0.3)
    scene.add_box([rng.uniform(-1.0, 1.0), cy, 0.5], (1.2, 0.5, 1.0), 0.0, "wood")
    return scene, np.array([W, D, H])
