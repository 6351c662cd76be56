"""The synthetic world: procedural street and room sequences with exact depth, poses and meshes.

``load_sequence("synthetic:street?seed=3&frames=200")`` builds one; any :class:`SyntheticConfig` field
can be given in the query string.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from mono_metric.camera import Camera
from mono_metric.datasets.base import Sequence
from mono_metric.datasets.synthetic.loops import LOOP_DEFAULTS, LOOP_SCENES, build_loop_scene
from mono_metric.datasets.synthetic.motion import room_poses, street_poses
from mono_metric.datasets.synthetic.render import Renderer
from mono_metric.datasets.synthetic.scene import Scene, build_room, build_street, street_path
from mono_metric.errors import InputError
from mono_metric.types import Frame, Trajectory

SCENES = ("street", "room", *LOOP_SCENES)
_DEFAULTS = {
    # KITTI odometry 00-02 left colour camera geometry, 10 Hz, ~1 m per frame.
    "street": dict(width=1241, height=376, fx=718.856, fy=718.856, cx=607.193, cy=185.216, fps=10.0, speed_mps=9.0),
    # Handheld phone in landscape, 30 Hz, walking pace.
    "room": dict(width=640, height=480, fx=525.0, fy=525.0, cx=319.5, cy=239.5, fps=30.0, speed_mps=0.6),
    **LOOP_DEFAULTS,  # loops.py
}


_INT_OPTIONS = {"seed", "frames", "width", "height"}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic sequence; ``None`` intrinsics/motion take the scene's default.

    Attributes:
        scene: 'street' or 'room'.
        seed: makes the scene, motion and texture deterministic.
        frames: number of frames.
        width, height: image size in pixels.
        fx, fy, cx, cy: intrinsics in pixels (fy defaults to fx, principal point to the scene default
            scaled to the image size).
        fps: frame rate (timestamps).
        speed_mps: mean camera speed in metres per second.
        noise_std: additive image noise in 8-bit levels.
        k1, k2, p1, p2, k3: OpenCV lens distortion of the rendered frames (0: pinhole).
        laps: times round the loop of the ``block`` and ``room_loop`` scenes (loops.py).
    """

    scene: str = "street"
    seed: int = 0
    frames: int = 100
    width: int | None = None
    height: int | None = None
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    fps: float | None = None
    speed_mps: float | None = None
    noise_std: float = 1.5
    k1: float = 0.0
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0
    k3: float = 0.0
    laps: float = 1.15

    @property
    def distortion(self) -> tuple[float, ...] | None:
        coeffs = (self.k1, self.k2, self.p1, self.p2, self.k3)
        return coeffs if any(coeffs) else None

    def resolved(self) -> "SyntheticConfig":
        """A copy with every ``None`` filled from the scene defaults; validates values."""
        if self.scene not in SCENES:
            raise InputError(f"unknown synthetic scene {self.scene!r}; use one of {SCENES}")
        if self.frames < 1:
            raise InputError(f"synthetic frames must be >= 1, got {self.frames}")
        d = _DEFAULTS[self.scene]
        width, height = self.width or d["width"], self.height or d["height"]
        sx, sy = width / d["width"], height / d["height"]
        fx = self.fx if self.fx is not None else d["fx"] * sx
        return replace(self, width=width, height=height, fx=fx,
                       fy=self.fy if self.fy is not None else fx,
                       cx=self.cx if self.cx is not None else (d["cx"] + 0.5) * sx - 0.5,
                       cy=self.cy if self.cy is not None else (d["cy"] + 0.5) * sy - 0.5,
                       fps=self.fps or d["fps"], speed_mps=self.speed_mps or d["speed_mps"])

    @classmethod
    def from_spec(cls, spec: str) -> "SyntheticConfig":
        """Parse ``synthetic:SCENE?key=value&...`` (the ``synthetic:`` prefix is optional)."""
        body = spec.split(":", 1)[1] if spec.startswith("synthetic:") else spec
        scene, _, query = body.partition("?")
        kwargs: dict = {"scene": scene or "street"}
        known = [f.name for f in fields(cls) if f.name != "scene"]
        for key, val in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if key not in known:
                raise InputError(f"unknown synthetic option {key!r} in {spec!r}; known: {', '.join(known)}")
            try:
                kwargs[key] = int(val) if key in _INT_OPTIONS else float(val)
            except ValueError as err:
                raise InputError(f"synthetic option {key}={val!r} in {spec!r} is not a number") from err
        return cls(**kwargs)


class SyntheticSequence(Sequence):
    """A rendered sequence; frames are rendered on access, deterministically.

    Args:
        config: what to render (a :class:`SyntheticConfig` or a spec string).
    """

    def __init__(self, config: SyntheticConfig | str = SyntheticConfig()):
        cfg = SyntheticConfig.from_spec(config) if isinstance(config, str) else config
        self.config = cfg = cfg.resolved()
        rng = np.random.default_rng(cfg.seed)
        self.camera = Camera(cfg.fx, cfg.fy, cfg.cx, cfg.cy, cfg.width, cfg.height)
        if cfg.scene == "street":
            length = cfg.frames * cfg.speed_mps / cfg.fps + 80.0
            xy, yaw = street_path(rng, length)
            self.scene: Scene = build_street(rng, xy, yaw)
            poses = street_poses(rng, xy, yaw, cfg.frames, cfg.speed_mps / cfg.fps)
        elif cfg.scene in LOOP_SCENES:
            self.scene, poses = build_loop_scene(cfg.scene, rng, cfg.frames, cfg.speed_mps / cfg.fps, cfg.laps)
        else:
            self.scene, size = build_room(rng)
            poses = room_poses(rng, size, cfg.frames, cfg.speed_mps / cfg.fps)
        self.timestamps = np.arange(cfg.frames) / cfg.fps
        self.gt = Trajectory(self.timestamps, poses)
        self.renderer = Renderer(self.scene, cfg.seed)
        self.distortion = cfg.distortion
        self.name = f"synthetic_{cfg.scene}_seed{cfg.seed}"

    def _load(self, index: int) -> Frame:
        T = self.gt.T_world_cam[index]
        rgb, depth = self.renderer.render(self.camera, T, self.config.noise_std,
                                          noise_seed=self.config.seed * 100003 + index, distortion=self.distortion)
        return Frame(index, float(self.timestamps[index]), rgb, self.camera, depth, T.copy())

    def gt_mesh(self):
        """The scene's triangle mesh (world frame of ``gt``)."""
        return self.scene.to_open3d()

    def export_mesh(self, path: str | Path) -> None:
        """Write the ground-truth scene mesh (PLY/OBJ by extension) for map accuracy checks."""
        import open3d as o3d

        if not o3d.io.write_triangle_mesh(str(path), self.gt_mesh()):
            raise InputError(f"cannot write mesh to {path}; check the folder exists and is writable")


__all__ = ["SyntheticConfig", "SyntheticSequence", "SCENES"]
