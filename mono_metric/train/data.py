"""Training data: frames with metric depth and intrinsics, and batches in canonical camera space.

Samples come from synthetic sequences rendered with random fields of view and image sizes (the
default), or from any loader whose frames carry ground-truth depth. :func:`make_batch` turns samples
into network-ready crops in one of three modes:

- ``label`` (CSTM_label): labels become canonical depth, ``depth * f_c / fx``.
- ``image`` (CSTM_image): the image is zoomed by ``f_c / fx`` so the camera becomes canonical; labels
  stay metric.
- ``none``: no canonical transform (the ablation baseline); labels stay metric.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mono_metric.camera import Camera
from mono_metric.datasets import load_sequence
from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.datasets.synthetic.realism import RealismConfig, realism_from_options
from mono_metric.depth.canonical import IMAGENET_MEAN_255, IMAGENET_STD_255, cstm_image
from mono_metric.errors import InputError

CSTM_MODES = ("label", "image", "none")


@dataclass(frozen=True)
class Sample:
    """One training frame.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        depth_m: (H, W) float32 metric depth, 0 where invalid.
        camera: intrinsics of ``image``.
        group: label used to batch similar frames together (e.g. 'street', 'room').
    """

    image: np.ndarray
    depth_m: np.ndarray
    camera: Camera
    group: str


def hfov_to_fx(width_px: int, hfov_deg: float) -> float:
    """Focal length in pixels of a pinhole camera with horizontal field of view ``hfov_deg``."""
    if not 1.0 < hfov_deg < 179.0:
        raise InputError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
    return 0.5 * width_px / math.tan(math.radians(hfov_deg) / 2)


def image_effects(preset: str) -> RealismConfig:
    """The camera effects of a realism preset without its depth-sensor effects (labels stay exact)."""
    return realism_from_options(preset, {}, "data.synthetic.realism").without_depth_effects()


_ASPECT = {"street": 376 / 1241, "room": 480 / 640}
_FRAME_STRIDE = {"street": 3, "room": 12}


def render_synthetic(scene: str, seeds, frames_per_sequence: int, hfov_deg: tuple[float, float],
                     width_px: tuple[int, int], rng: np.random.Generator, fixed_hfov: float | None = None,
                     progress: bool = False, realism: tuple[str, ...] = ("off",)) -> list[Sample]:
    """Render frames of synthetic sequences with a random camera per sequence.

    Args:
        scene: 'street' or 'room'.
        seeds: scene seeds, one sequence each.
        frames_per_sequence: frames kept per sequence (spread along its path).
        hfov_deg: (min, max) horizontal field of view, drawn uniformly per sequence.
        width_px: (min, max) image width, drawn per sequence (height keeps the scene's aspect).
        rng: draws the cameras.
        fixed_hfov: use this field of view instead of drawing one.
        progress: show a progress bar over the rendered frames.
        realism: camera-effect presets, one drawn per sequence; their depth-sensor effects are dropped.

    Returns:
        ``len(seeds) * frames_per_sequence`` samples.
    """
    samples = []
    stride = _FRAME_STRIDE[scene]
    seeds = list(seeds)
    bar = tqdm(total=len(seeds) * frames_per_sequence, desc=f"rendering {scene} training frames", unit="frame",
               disable=not progress, dynamic_ncols=True)
    for seed in seeds:
        width = int(rng.integers(width_px[0], width_px[1] + 1)) // 2 * 2
        height = int(round(width * _ASPECT[scene] / 2)) * 2
        hfov = fixed_hfov if fixed_hfov is not None else float(rng.uniform(*hfov_deg))
        effects = image_effects(realism[int(rng.integers(len(realism)))] if len(realism) > 1 else realism[0])
        cfg = SyntheticConfig(scene=scene, seed=int(seed), frames=frames_per_sequence * stride, width=width,
                              height=height, fx=hfov_to_fx(width, hfov), realism=effects)
        seq = SyntheticSequence(cfg)
        for i in range(0, len(seq), stride):
            f = seq[i]
            samples.append(Sample(f.image, f.depth_m.astype(np.float32), f.camera, scene))
            bar.update()
    bar.close()
    return samples


def samples_from_sequence(path: str, kind: str | None = None, stride: int = 1, group: str | None = None,
                          progress: bool = False, start: int = 0, max_frames: int | None = None,
                          scale: float = 1.0, undistort: bool = True, skip_missing: bool = False,
                          key: str = "data.sequences") -> list[Sample]:
    """Frames of a loader sequence that has ground-truth depth (e.g. TUM RGB-D sensor depth).

    Args:
        path: dataset folder or ``synthetic:...`` spec; ``kind`` its loader (None: guessed).
        stride, start, max_frames: frame selection, in the loader's frame indices.
        group: batch group of the samples (None: the sequence's name).
        scale: image downscale factor in (0, 1]: colour with area averaging, depth nearest-neighbour, the
            intrinsics follow (:meth:`Camera.resized`).
        undistort: remap colour and depth to the pinhole model with the loader's distortion (before scaling);
            pixels outside the distorted image get depth 0 (invalid).
        skip_missing: drop listed frames whose files are absent.
        key: the config key of this entry, for messages.

    Raises:
        InputError: the loader refuses the path or options, or a frame has no depth; the message names ``key``.
    """
    from mono_metric.undistort import CameraAdjusted

    opts = {k: v for k, v, default in (("start", start, 0), ("max_frames", max_frames, None),
                                       ("stride", stride, 1)) if v != default}
    if skip_missing:
        opts["missing"] = "skip"
    try:
        seq = load_sequence(path, kind, **opts)
    except InputError as err:
        raise InputError(f"config {key} ({path}): {err}") from err
    if undistort and getattr(seq, "distortion", None) is not None:
        seq = CameraAdjusted(seq, undistort=True)
    cam = seq.camera
    size = (max(1, round(cam.width * scale)), max(1, round(cam.height * scale)))
    cam_out = cam if scale == 1.0 else cam.resized(*size)
    name = group or seq.name
    samples = []
    for i in tqdm(range(len(seq)), desc=f"reading {seq.name}", unit="frame", disable=not progress,
                  dynamic_ncols=True):
        f = seq[i]
        if f.depth_m is None:
            raise InputError(f"config {key} ({path}) frame {f.index} has no ground-truth depth; training needs a "
                             "dataset with depth (e.g. TUM RGB-D with depth.txt)")
        image, depth = f.image, f.depth_m.astype(np.float32)
        if scale != 1.0:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        samples.append(Sample(image, depth, cam_out, name))
    return samples


def samples_from_entry(entry, key: str, progress: bool = False) -> list[Sample]:
    """Samples of one validated ``data.sequences`` / ``data.val_sequences`` entry (a ``SequenceEntry``)."""
    return samples_from_sequence(entry.path, entry.kind, entry.stride, entry.group, progress, entry.start,
                                 entry.max_frames, entry.scale, entry.undistort, entry.skip_missing, key)


def save_samples(samples: list[Sample], path: str | Path) -> None:
    """Cache samples in one ``.npz`` file (no pickled objects)."""
    arrays = {}
    for k, s in enumerate(samples):
        arrays[f"image_{k}"] = s.image
        arrays[f"depth_{k}"] = s.depth_m.astype(np.float16)
        arrays[f"camera_{k}"] = np.array([s.camera.fx, s.camera.fy, s.camera.cx, s.camera.cy,
                                          s.camera.width, s.camera.height])
        arrays[f"group_{k}"] = np.array(s.group)
    np.savez(path, count=len(samples), **arrays)


def load_samples(path: str | Path) -> list[Sample]:
    """Read a cache written by :func:`save_samples`."""
    with np.load(path, allow_pickle=False) as z:
        out = []
        for k in range(int(z["count"])):
            fx, fy, cx, cy, w, h = z[f"camera_{k}"]
            out.append(Sample(z[f"image_{k}"], z[f"depth_{k}"].astype(np.float32),
                              Camera(fx, fy, cx, cy, int(w), int(h)), str(z[f"group_{k}"])))
    return out


def to_network_input(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) ImageNet-normalised float32."""
    t = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN_255).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_255).view(1, 3, 1, 1)
    return (t - mean) / std


def canonical_view(sample: Sample, cstm: str, canonical_focal_px: float) -> tuple[np.ndarray, np.ndarray, Camera, float]:
    """Image, label, camera and label-to-metric factor of a sample in mode ``cstm``.

    Returns:
        (image, label, camera, metric_per_label): ``label * metric_per_label`` is metric depth.
    """
    if cstm == "image":
        img, depth, cam = cstm_image(sample.image, sample.depth_m, sample.camera, canonical_focal_px)
        return img, depth, cam, 1.0
    if cstm == "label":
        return sample.image, sample.depth_m * (canonical_focal_px / sample.camera.fx), sample.camera, \
            sample.camera.fx / canonical_focal_px
    if cstm == "none":
        return sample.image, sample.depth_m, sample.camera, 1.0
    raise InputError(f"unknown canonical transform mode {cstm!r}; use one of {CSTM_MODES}")


def make_batch(samples: list[Sample], crop_hw: tuple[int, int], cstm: str, canonical_focal_px: float,
               rng: np.random.Generator, max_depth_m: float, augment: bool = True) -> dict[str, torch.Tensor]:
    """Random crops of ``samples`` in canonical space.

    Args:
        samples: frames of one batch.
        crop_hw: (H, W) of every crop; smaller images are padded (mean colour, invalid depth).
        cstm: 'label', 'image' or 'none'.
        canonical_focal_px: the model's canonical focal length.
        rng: crop positions, flips and colour jitter.
        max_depth_m: metric depth beyond this is masked out.
        augment: horizontal flips and brightness/contrast jitter.

    Returns:
        image (B, 3, h, w) normalised, depth (B, 1, h, w) labels, mask (B, 1, h, w) bool, K (B, 3, 3)
        intrinsics of each crop, metric_per_label (B,).
    """
    h, w = crop_hw
    images, labels, masks, Ks, factors = [], [], [], [], []
    for s in samples:
        img, label, cam, factor = canonical_view(s, cstm, canonical_focal_px)
        K = cam.K.copy()  # follows pads and crops (the principal point may leave a crop)
        metric = label * factor
        valid = (metric > 0) & (metric <= max_depth_m) & np.isfinite(metric)
        H, W = label.shape
        pad_y, pad_x = max(h - H, 0), max(w - W, 0)
        if pad_y or pad_x:
            img = cv2.copyMakeBorder(img, pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2,
                                     cv2.BORDER_CONSTANT, value=IMAGENET_MEAN_255)
            label = np.pad(label, ((pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)))
            valid = np.pad(valid, ((pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)))
            K[0, 2] += pad_x // 2
            K[1, 2] += pad_y // 2
            H, W = label.shape
        y0 = int(rng.integers(0, H - h + 1)) if augment else (H - h) // 2
        x0 = int(rng.integers(0, W - w + 1)) if augment else (W - w) // 2
        img, label, valid = img[y0:y0 + h, x0:x0 + w], label[y0:y0 + h, x0:x0 + w], valid[y0:y0 + h, x0:x0 + w]
        K[0, 2] -= x0
        K[1, 2] -= y0
        if augment and rng.random() < 0.5:
            img, label, valid = img[:, ::-1], label[:, ::-1], valid[:, ::-1]
            K[0, 2] = w - 1 - K[0, 2]
        if augment:
            gain, bias = rng.uniform(0.75, 1.25), rng.uniform(-20, 20)
            img = np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        images.append(img)
        labels.append(label)
        masks.append(valid)
        Ks.append(K)
        factors.append(factor)
    return {
        "image": to_network_input(np.stack(images)),
        "depth": torch.from_numpy(np.ascontiguousarray(np.stack(labels), np.float32))[:, None],
        "mask": torch.from_numpy(np.ascontiguousarray(np.stack(masks)))[:, None],
        "K": torch.from_numpy(np.stack(Ks).astype(np.float32)),
        "metric_per_label": torch.tensor(factors, dtype=torch.float32),
    }
