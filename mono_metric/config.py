"""Typed configuration: dataclass sections loaded from YAML, validated, saved next to results.

Unknown keys, wrong types and out-of-range values are :class:`InputError`s naming the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mono_metric.errors import InputError, read_yaml_mapping


@dataclass
class DepthConfig:
    """Where per-frame metric depth comes from.

    Attributes:
        source: 'gt' (ground-truth depth of the sequence), 'gt_degraded' (GT with Metric3D-like
            error: a smooth low-frequency scale field, multiplicative noise and holes), or a Metric3D
            model name (e.g. 'metric3d_vit_small') run on every frame.
        degrade_abs_rel: target mean relative error of 'gt_degraded'.
        max_depth_m: depth beyond this is ignored.
        weights: checkpoint file of the model (None: the cached official file).
        device: where the model runs ('cpu', 'cuda', 'cuda:1', ...).
        input_hw: network input [H, W] (None: the model's official size).
    """

    source: str = "gt"
    degrade_abs_rel: float = 0.06
    max_depth_m: float = 80.0
    weights: str | None = None
    device: str = "cpu"
    input_hw: list | None = None

    def validate(self) -> None:
        from mono_metric.depth.metric3d.model import MODEL_SPECS

        _choice("depth.source", self.source, ("gt", "gt_degraded", *MODEL_SPECS))
        _in_range("depth.degrade_abs_rel", self.degrade_abs_rel, 0.0, 0.5)
        _in_range("depth.max_depth_m", self.max_depth_m, 0.1, 1000.0)
        if self.input_hw is not None and (len(self.input_hw) != 2 or not all(
                isinstance(v, int) and v > 0 for v in self.input_hw)):
            raise InputError(f"config depth.input_hw={self.input_hw!r} must be two positive integers [H, W]")


@dataclass
class TrackingConfig:
    """Frame-to-frame tracking and PnP pose.

    Attributes:
        max_features: corners detected per frame.
        min_distance_px: minimum spacing between corners.
        klt_window_px: Lucas-Kanade window size.
        ransac_reproj_px: PnP RANSAC inlier threshold.
        min_inliers: fewer PnP inliers than this marks the frame lost (constant-velocity guess kept).
        refine: pose refinement on the RANSAC inliers: 'opencv' (plain LM, fast) or 'pypose'
            (LM with a Huber kernel of ``ransac_reproj_px``; about 0.2 s per frame on 2 cores).
    """

    max_features: int = 800
    min_distance_px: int = 10
    klt_window_px: int = 21
    ransac_reproj_px: float = 1.5
    min_inliers: int = 25
    refine: str = "opencv"

    def validate(self) -> None:
        _choice("tracking.refine", self.refine, ("opencv", "pypose"))
        _in_range("tracking.max_features", self.max_features, 20, 100000)
        _in_range("tracking.min_distance_px", self.min_distance_px, 1, 200)
        _in_range("tracking.klt_window_px", self.klt_window_px, 5, 101)
        _in_range("tracking.ransac_reproj_px", self.ransac_reproj_px, 0.1, 50.0)
        _in_range("tracking.min_inliers", self.min_inliers, 6, 100000)


@dataclass
class Config:
    """All settings of a run."""

    depth: DepthConfig = field(default_factory=DepthConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _choice(key: str, value, options) -> None:
    if value not in options:
        raise InputError(f"config {key}={value!r} is not one of {list(options)}")


def _in_range(key: str, value, lo, hi) -> None:
    if not lo <= value <= hi:
        raise InputError(f"config {key}={value!r} is out of range [{lo}, {hi}]")


def _build(cls, data: dict, prefix: str):
    """Instantiate dataclass ``cls`` from ``data``, checking keys and types recursively."""
    if not isinstance(data, dict):
        raise InputError(f"config section {prefix or 'root'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown config key {prefix}{unknown[0]}; known keys: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        key, hint = f"{prefix}{name}", hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{key}.")
        else:
            kwargs[name] = _coerce(key, value, hint)
    return cls(**kwargs)


def _coerce(key: str, value, hint):
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is list and isinstance(value, list):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t in (int, str, bool) and type(value) is t:
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise InputError(f"config {key}={value!r} has the wrong type: expected {names}")


def config_from_dict(data: dict | None) -> Config:
    """Validated :class:`Config` from a plain dict (missing keys keep defaults)."""
    return _build(Config, data or {}, "").validate()


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load ``configs/*.yaml``-style files; ``None`` gives the defaults. ``overrides`` are merged per section."""
    data = read_yaml_mapping(path, "config file", "sections") if path is not None else {}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)
