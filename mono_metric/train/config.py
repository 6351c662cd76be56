"""Typed, validated training configuration (``configs/train_*.yaml``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mono_metric.validation import build_section, check_choice, check_pair, check_range
from mono_metric.errors import InputError, read_yaml_mapping
from mono_metric.train.data import CSTM_MODES
from mono_metric.train.losses import LossWeights

PRETRAINED = "pretrained"
"""``init_weights`` value that starts from the model's own weights (packaged or official)."""


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
        realism: camera-effect presets (docs/realism.md), one drawn per sequence (validation too);
            ``['off']`` renders perfect pinhole frames. Depth-sensor effects of a preset are dropped: the labels
            stay the exact rendered depth.
    """

    scenes: list = field(default_factory=lambda: ["street", "room"])
    sequences_per_scene: int = 16
    frames_per_sequence: int = 30
    hfov_deg: list = field(default_factory=lambda: [50.0, 95.0])
    street_width_px: list = field(default_factory=lambda: [480, 640])
    room_width_px: list = field(default_factory=lambda: [256, 384])
    seed: int = 0
    realism: list = field(default_factory=lambda: ["off"])

    def validate(self) -> None:
        from mono_metric.datasets.synthetic.realism import PRESETS

        if not self.realism or any(r not in PRESETS for r in self.realism):
            hint = " (quote 'off': YAML reads a bare off as false)" if False in self.realism else ""
            raise InputError(f"config data.synthetic.realism={self.realism!r} must list presets among "
                             f"{', '.join(PRESETS)}{hint}")
        if not self.scenes or any(s not in ("street", "room") for s in self.scenes):
            raise InputError(f"config data.synthetic.scenes={self.scenes!r} must list 'street' and/or 'room'")
        check_range("data.synthetic.sequences_per_scene", self.sequences_per_scene, 0, 100000)
        check_range("data.synthetic.frames_per_sequence", self.frames_per_sequence, 1, 10000)
        check_pair("data.synthetic.hfov_deg", self.hfov_deg, 10.0, 170.0)
        check_pair("data.synthetic.street_width_px", self.street_width_px, 64, 4096, integer=True)
        check_pair("data.synthetic.room_width_px", self.room_width_px, 64, 4096, integer=True)


@dataclass
class SequenceEntry:
    """One dataset with ground-truth depth in ``data.sequences`` / ``data.val_sequences``.

    A plain path in the config stands for an entry with that path and the defaults below.

    Attributes:
        path: dataset folder (any loader whose frames carry depth, e.g. a TUM RGB-D folder with sensor
            depth) or a ``synthetic:...`` spec.
        kind: loader name ('tum', 'kitti', ...); None guesses it from the layout.
        start, max_frames, stride: frame selection (loader frame indices ``start, start + stride, ...``,
            at most ``max_frames``); ``stride`` None takes ``data.sequence_stride``.
        scale: image downscale factor in (0, 1] (depth nearest-neighbour, intrinsics follow).
        undistort: remap frames to the pinhole model with the loader's distortion coefficients (TUM
            freiburg1/2: the published ones) before scaling; no effect when there are none.
        skip_missing: drop listed frames whose files are absent instead of failing.
        group: batch group name (None: the sequence's name); training batches draw groups in equal shares.
    """

    path: str = ""
    kind: str | None = None
    start: int = 0
    max_frames: int | None = None
    stride: int | None = None
    scale: float = 1.0
    undistort: bool = True
    skip_missing: bool = False
    group: str | None = None

    def validate(self, key: str) -> None:
        if not self.path:
            raise InputError(f"config {key}.path is missing; give the dataset folder")
        check_range(f"{key}.start", self.start, 0, 10_000_000)
        if self.max_frames is not None:
            check_range(f"{key}.max_frames", self.max_frames, 1, 10_000_000)
        if self.stride is not None:
            check_range(f"{key}.stride", self.stride, 1, 100000)
        if not 0.0 < self.scale <= 1.0:
            raise InputError(f"config {key}.scale={self.scale!r} must be in (0, 1] (an image downscale factor)")
        if self.group is not None and (not self.group or self.group == "all"):
            raise InputError(f"config {key}.group={self.group!r} must be a non-empty name other than 'all'")


def parse_sequence_entries(key: str, entries, default_stride: int) -> list[SequenceEntry]:
    """Validated :class:`SequenceEntry` objects of a config list of paths and/or mappings.

    Raises:
        InputError: not a list, an entry that is neither a path nor a mapping, an unknown or badly typed
            key, a value out of range or a missing path; the message names the key (``data.sequences[1].scale``).
    """
    if not isinstance(entries, list):
        raise InputError(f"config {key}={entries!r} must be a list of dataset paths or mappings "
                         "({path, start, max_frames, stride, scale, undistort, skip_missing})")
    out = []
    for i, item in enumerate(entries):
        k = f"{key}[{i}]"
        if isinstance(item, SequenceEntry):
            entry = dataclasses.replace(item)
        elif isinstance(item, str):
            entry = SequenceEntry(path=item)
        elif isinstance(item, dict):
            entry = build_section(SequenceEntry, item, f"{k}.")
        else:
            raise InputError(f"config {k}={item!r} must be a dataset path or a mapping with a 'path' key")
        entry.validate(k)
        if entry.stride is None:
            entry.stride = default_stride
        out.append(entry)
    return out


@dataclass
class DataConfig:
    """Training data: synthetic frames plus optional sequences with ground-truth depth.

    Attributes:
        synthetic: the rendered part.
        sequences: extra training datasets with depth: paths or :class:`SequenceEntry` mappings.
        val_sequences: validation datasets with depth (same forms), evaluated beside the synthetic ones.
        sequence_stride: default frame stride of entries that set none.
        val_sequences_per_scene, val_frames_per_sequence: held-out synthetic validation set.
        max_depth_m: ground truth beyond this is ignored.
    """

    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    sequences: list = field(default_factory=list)
    val_sequences: list = field(default_factory=list)
    sequence_stride: int = 1
    val_sequences_per_scene: int = 2
    val_frames_per_sequence: int = 6
    max_depth_m: float = 80.0

    def validate(self) -> None:
        self.synthetic.validate()
        check_range("data.sequence_stride", self.sequence_stride, 1, 100000)
        self.sequences = parse_sequence_entries("data.sequences", self.sequences, self.sequence_stride)
        self.val_sequences = parse_sequence_entries("data.val_sequences", self.val_sequences, self.sequence_stride)
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
        init_weights: checkpoint to start from (fine-tuning; official Metric3D files load strictly), or
            'pretrained': the model's own weights (the packaged ones of 'mono_metric_tiny', the cached or
            downloaded official file of a Metric3D model).
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

    def check_files(self) -> None:
        """The files the config names exist (checked when training starts, not on load: a config may name
        data that only some machines have).

        Raises:
            InputError: a missing ``init_weights`` file or dataset path; the message names the key.
        """
        if self.init_weights not in (None, PRETRAINED) and not Path(self.init_weights).expanduser().is_file():
            raise InputError(f"config init_weights={self.init_weights!r} is not a file; give a checkpoint path, or "
                             f"'{PRETRAINED}' to start from the model's own (packaged or official) weights")
        for key, entries in (("data.sequences", self.data.sequences), ("data.val_sequences", self.data.val_sequences)):
            for i, e in enumerate(entries):
                if not e.path.startswith("synthetic:") and not Path(e.path).expanduser().exists():
                    raise InputError(f"config {key}[{i}].path={e.path!r} does not exist (relative paths start at the "
                                     "current directory); give an existing dataset folder")

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
