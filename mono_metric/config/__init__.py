"""Typed configuration: dataclass sections loaded from YAML, validated, saved next to results.

Unknown keys, wrong types and out-of-range values are :class:`InputError`s naming the key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mono_metric.errors import read_yaml_mapping
from mono_metric.validation import build_section
from mono_metric.config.sections import BackendConfig, CameraConfig, DepthConfig, MappingConfig
from mono_metric.config.tracking import TrackingConfig

__all__ = ["BackendConfig", "CameraConfig", "Config", "DepthConfig", "MappingConfig", "TrackingConfig",
           "config_from_dict", "load_config"]


@dataclass
class Config:
    """All settings of a run."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def config_from_dict(data: dict | None) -> Config:
    """Validated :class:`Config` from a plain dict (missing keys keep defaults)."""
    return build_section(Config, data or {}).validate()


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load ``configs/*.yaml``-style files; ``None`` gives the defaults. ``overrides`` are merged per section."""
    data = read_yaml_mapping(path, "config file", "sections") if path is not None else {}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)
