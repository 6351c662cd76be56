"""Typed, validated training configuration (``configs/train_*.yaml``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mono_metric.config import build_section, check_choice, check_pair, check_range
from mono_metric.errors import InputError, read_yaml_mapping
from mono_metric.train.data import CSTM_MODES
from mono_metric.train.losses import LossWeights


@dataclass
class SyntheticDataConfig:
    """Synthetic training frames: one random camera per sequence.

    Attributes:
        scenes: subset of ['street', 'room'].
        sequences_per_scene: sequences rendered per scene (seeds ``seed .. seed+n-1``).
        frames_per_sequence: frames kept per sequence.
        hfov_deg: [min, max] horizontal field of view drawn per sequence.
        street_width_px, room_width_px: [min, max] image width drawn per sequence.
        seed: first scene seed (validation uses seeds from ``seed + 100000``).
    """

    scenes: list = field(default_factory=lambda: ["street", "room"])
    sequences_per_scene: int = 16
    frames_per_sequence: int = 30
    hfov_deg: list = field(default_factory=lambda: [50.0, 95.0])
    street_width_px: list = field(default_factory=lambda: [480, 640])
    room_width_px: list = field(default_factory=lambda: [256, 384])
    seed: int = 0

    def validate(self) -> None:
        if not self.scenes or any(s not in ("street", "room") for s in self.scenes):
            raise InputError(f"config data.synthetic.scenes={self.scenes!r} must list 'street' and/or 'room'")
        check_range("data.synthetic.sequences_per_scene", self.sequences_per_scene, 0, 100000)
        check_range("data.synthetic.frames_per_sequence", self.frames_per_sequence, 1, 10000)
        check_pair("data.synthetic.hfov_deg", self.hfov_deg, 10.0, 170.0)
        check_pair("data.synthetic.street_width_px", self.street_width_px, 64, 4096, integer=True)
        check_pair("data.synthetic.room_width_px", self.room_width_px, 64, 4096, integer=True)


@dataclass
class DataConfig:
    """Training data: synthetic frames plus optional sequences with ground-truth depth.

    Attributes:
        synthetic: the rendered part.
        sequences: extra dataset paths (any loader whose frames have depth, e.g. TUM RGB-D folders).
        sequence_stride: use every n-th frame of ``sequences``.
        val_sequences_per_scene, val_frames_per_sequence: held-out synthetic validation set.
        max_depth_m: ground truth beyond this is ignored.
    """

    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    sequences: list = field(default_factory=list)
    sequence_stride: int = 1
    val_sequences_per_scene: int = 2
    val_frames_per_sequence: int = 6
    max_depth_m: float = 80.0

    def validate(self) -> None:
        self.synthetic.validate()
        if not all(isinstance(s, str) for s in self.sequences):
            raise InputError(f"config data.sequences={self.sequences!r} must be a list of dataset paths")
        check_range("data.sequence_stride", self.sequence_stride, 1, 100000)
        check_range("data.val_sequences_per_scene", self.val_sequences_per_scene, 0, 1000)
        check_range("data.val_frames_per_sequence", self.val_frames_per_sequence, 1, 1000)
        check_range("data.max_depth_m", self.max_depth_m, 0.1, 1000.0)
        if self.synthetic.sequences_per_scene == 0 and not self.sequences:
            raise InputError("config data has no training frames: set data.synthetic.sequences_per_scene > 0 "
                             "or list data.sequences")


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        model: a Metric3D model name (the embedded 'mono_metric_tiny' or an official one to fine-tune).
        init_weights: checkpoint to start from (fine-tuning; official Metric3D files load strictly).
        cstm: canonical transform: 'label' (CSTM_label), 'image' (CSTM_image) or 'none'.
        steps: optimiser steps.
        batch_size: frames per step.
        crop_hw: [H, W] training crop (shrunk to multiples of 32 fitting each group's images).
        lr, weight_decay: AdamW settings; the learning rate warms up linearly, then decays (cosine).
        warmup_steps: linear warm-up length.
        grad_clip: gradient norm clip.
        val_every, checkpoint_every: in steps.
        seed: initialisation and batch sampling.
        threads: torch CPU threads (0: torch's default).
        data, loss: sections.
    """

    model: str = "mono_metric_tiny"
    init_weights: str | None = None
    cstm: str = "label"
    steps: int = 2000
    batch_size: int = 8
    crop_hw: list = field(default_factory=lambda: [160, 416])
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    val_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossWeights = field(default_factory=LossWeights)

    def validate(self) -> "TrainConfig":
        from mono_metric.depth.metric3d.model import MODEL_SPECS

        check_choice("model", self.model, tuple(MODEL_SPECS))
        check_choice("cstm", self.cstm, CSTM_MODES)
        check_range("steps", self.steps, 1, 10_000_000)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_pair("crop_hw", self.crop_hw, 32, 8192, integer=True, ordered=False)
        check_range("lr", self.lr, 1e-8, 1.0)
        check_range("weight_decay", self.weight_decay, 0.0, 10.0)
        check_range("warmup_steps", self.warmup_steps, 0, 10_000_000)
        check_range("grad_clip", self.grad_clip, 1e-6, 1e6)
        check_range("val_every", self.val_every, 1, 10_000_000)
        check_range("checkpoint_every", self.checkpoint_every, 1, 10_000_000)
        check_range("threads", self.threads, 0, 1024)
        self.data.validate()
        self.loss.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def train_config_from_dict(data: dict | None) -> TrainConfig:
    """Validated :class:`TrainConfig` from a plain dict (missing keys keep defaults)."""
    return build_section(TrainConfig, data or {}).validate()


def load_train_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Load a ``configs/train_*.yaml`` file; ``overrides`` replace top-level keys (e.g. ``{'steps': 10}``)."""
    data = read_yaml_mapping(path, "training config", "keys") if path is not None else {}
    data.update(overrides or {})
    return train_config_from_dict(data)
