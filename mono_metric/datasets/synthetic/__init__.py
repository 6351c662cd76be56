"""The synthetic world: procedural street and room sequences with exact depth, poses and meshes.

``load_sequence("synthetic:street?seed=3&frames=200")`` builds one; any :class:`SyntheticConfig` field
can be given in the query string, and so can camera/depth-sensor effects: ``realism=tum`` (a preset of
:data:`~mono_metric.datasets.synthetic.realism.PRESETS`, or a YAML file of realism keys) and any
:class:`~mono_metric.datasets.synthetic.realism.RealismConfig` key (``readout_ms=20&jpeg_quality=70``).
``synthetic:handheld`` is the room swept by a fast hand-held pan (TUM freiburg1-like), realism 'tum'
unless ``realism`` says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from mono_metric.camera import Camera
from mono_metric.datasets.base import Sequence
from mono_metric.datasets.synthetic.loops import LOOP_DEFAULTS, LOOP_SCENES, build_loop_scene
from mono_metric.datasets.synthetic.motion import HandheldMotion, room_poses, street_poses
from mono_metric.datasets.synthetic.realism import (REALISM_KEYS, RealismConfig, exposure_gains, jpeg_roundtrip,
                                                    kinect_depth, realism_from_options, sensor_response)
from mono_metric.datasets.synthetic.render import Renderer, to_uint8
from mono_metric.datasets.synthetic.shutter import interpolate_poses, render_exposure
from mono_metric.datasets.synthetic.scene import Scene, build_room, build_street, street_path
from mono_metric.errors import InputError
from mono_metric.types import Frame, Trajectory

SCENES = ("street", "room", "handheld", *LOOP_SCENES)
_DEFAULTS = {
    # KITTI odometry 00-02 left colour camera geometry, 10 Hz, ~1 m per frame.
    "street": dict(width=1241, height=376, fx=718.856, fy=718.856, cx=607.193, cy=185.216, fps=10.0, speed_mps=9.0),
    # Handheld phone in landscape, 30 Hz, walking pace.
    "room": dict(width=640, height=480, fx=525.0, fy=525.0, cx=319.5, cy=239.5, fps=30.0, speed_mps=0.6),
    **LOOP_DEFAULTS,  # loops.py
    # TUM RGB-D freiburg1 Kinect (mean of fx, fy), 30 Hz, slow wander under a fast pan.
    "handheld": dict(width=640, height=480, fx=517.0, fy=517.0, cx=318.6, cy=255.3, fps=30.0, speed_mps=0.3),
}
_DEFAULT_REALISM = {"handheld": "tum"}


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
        realism: camera and depth-sensor effects: a :class:`RealismConfig`, a preset name or YAML file
            (see :func:`realism_from_options`), or None for the scene's default (off; 'tum' for 'handheld').
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
    realism: RealismConfig | str | None = None

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
        realism = self.realism if self.realism is not None else _DEFAULT_REALISM.get(self.scene)
        if not isinstance(realism, RealismConfig):
            realism = realism_from_options(realism, {}, f"synthetic {self.scene} sequence")
        realism.validate()
        if realism.exposure_ms and any((self.k1, self.k2, self.p1, self.p2, self.k3)):
            raise InputError("synthetic motion blur (realism exposure_ms) is rendered for pinhole frames only: set "
                             "exposure_ms=0 or drop the distortion k1..k3")
        width, height = self.width or d["width"], self.height or d["height"]
        sx, sy = width / d["width"], height / d["height"]
        fx = self.fx if self.fx is not None else d["fx"] * sx
        return replace(self, width=width, height=height, fx=fx,
                       fy=self.fy if self.fy is not None else fx,
                       cx=self.cx if self.cx is not None else (d["cx"] + 0.5) * sx - 0.5,
                       cy=self.cy if self.cy is not None else (d["cy"] + 0.5) * sy - 0.5,
                       fps=self.fps or d["fps"], speed_mps=self.speed_mps or d["speed_mps"], realism=realism)

    @classmethod
    def from_spec(cls, spec: str) -> "SyntheticConfig":
        """Parse ``synthetic:SCENE?key=value&...`` (the ``synthetic:`` prefix is optional)."""
        body = spec.split(":", 1)[1] if spec.startswith("synthetic:") else spec
        scene, _, query = body.partition("?")
        kwargs: dict = {"scene": scene or "street"}
        known = [f.name for f in fields(cls) if f.name != "scene"]
        realism: dict = {}
        for key, val in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if key in REALISM_KEYS:
                realism[key] = val
                continue
            if key == "realism":
                kwargs[key] = val
                continue
            if key not in known:
                raise InputError(f"unknown synthetic option {key!r} in {spec!r}; known: {', '.join(known)}, "
                                 f"and the realism keys {', '.join(REALISM_KEYS)}")
            try:
                kwargs[key] = int(val) if key in _INT_OPTIONS else float(val)
            except ValueError as err:
                raise InputError(f"synthetic option {key}={val!r} in {spec!r} is not a number") from err
        if realism:
            preset = kwargs.get("realism", _DEFAULT_REALISM.get(kwargs["scene"]))
            kwargs["realism"] = realism_from_options(preset, realism, repr(spec))
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
        elif cfg.scene == "room":
            self.scene, size = build_room(rng)
            poses = room_poses(rng, size, cfg.frames, cfg.speed_mps / cfg.fps)
        else:
            self.scene, size = build_room(rng)
            self._motion = HandheldMotion(rng, size, cfg.speed_mps)
            poses = self._motion(np.arange(cfg.frames) / cfg.fps)
        self.timestamps = np.arange(cfg.frames) / cfg.fps
        self.gt = Trajectory(self.timestamps, poses)
        self.realism: RealismConfig = cfg.realism
        self.gains = exposure_gains(self.realism, cfg.frames, cfg.fps, cfg.seed)
        self.renderer = Renderer(self.scene, cfg.seed)
        self.distortion = cfg.distortion
        self.name = f"synthetic_{cfg.scene}_seed{cfg.seed}" + ("_realism" if self.realism.enabled else "")

    def pose_at(self, times_s: np.ndarray) -> np.ndarray:
        """(M, 4, 4) camera poses at any times in seconds (the exposure's motion; equals ``gt`` at frame times)."""
        if self.config.scene == "handheld":
            return self._motion(times_s)
        return interpolate_poses(self.timestamps, self.gt.T_world_cam, times_s)

    def _load(self, index: int) -> Frame:
        T = self.gt.T_world_cam[index]
        cfg, fx = self.config, self.realism
        noise_seed = cfg.seed * 100003 + index
        if not fx.enabled:
            rgb, depth = self.renderer.render(self.camera, T, cfg.noise_std, noise_seed=noise_seed,
                                              distortion=self.distortion)
            return Frame(index, float(self.timestamps[index]), rgb, self.camera, depth, T.copy())
        color, depth, _ = render_exposure(self.renderer, self.camera, self.pose_at, float(self.timestamps[index]),
                                          fx.readout_ms / 1000.0, fx.exposure_ms / 1000.0, fx.blur_step_px,
                                          fx.blur_max_samples, self.distortion)
        exposed = sensor_response(color, fx, float(self.gains[index]), self.camera.cx, self.camera.cy,
                                  np.random.default_rng([cfg.seed, index, 1]))
        rgb = to_uint8(exposed, cfg.noise_std, noise_seed)
        if fx.jpeg_quality:
            rgb = jpeg_roundtrip(rgb, fx.jpeg_quality)
        if fx.depth_enabled:
            depth = kinect_depth(depth, color, self.camera.fx, fx, np.random.default_rng([cfg.seed, index, 2]))
        return Frame(index, float(self.timestamps[index]), rgb, self.camera, depth, T.copy())

    def gt_mesh(self):
        """The scene's triangle mesh (world frame of ``gt``)."""
        return self.scene.to_open3d()

    def export_mesh(self, path: str | Path) -> None:
        """Write the ground-truth scene mesh (PLY/OBJ by extension) for map accuracy checks."""
        import open3d as o3d

        if not o3d.io.write_triangle_mesh(str(path), self.gt_mesh()):
            raise InputError(f"cannot write mesh to {path}; check the folder exists and is writable")


__all__ = ["SyntheticConfig", "SyntheticSequence", "SCENES", "RealismConfig"]
