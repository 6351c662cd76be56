"""Snapshots of a running pipeline so that a killed run resumes where it was (``mono-metric run --resume``).

A snapshot is taken on a keyframe: the odometry state (plain arrays, ``odometry.npz``), the TSDF voxel
grid (Open3D's own ``.npz``), the quick-look cloud and the loop's counters (``progress.json``). It is
written to ``resume.tmp/`` and swapped in by renames, so a kill at any moment leaves either the old or
the new snapshot whole. Nothing is unpickled when loading.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME = "resume"


@dataclass
class Snapshot:
    odometry: dict[str, np.ndarray]
    progress: dict
    tsdf_path: Path | None
    cloud: dict[str, np.ndarray] | None


def save_snapshot(out_dir: Path, odometry_state: dict[str, np.ndarray], progress: dict, tsdf=None, cloud=None) -> None:
    """Write a snapshot atomically (see the module docstring)."""
    tmp, final, old = out_dir / f"{NAME}.tmp", out_dir / NAME, out_dir / f"{NAME}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.savez(tmp / "odometry.npz", **odometry_state)
    if tsdf is not None:
        tsdf.save(tmp / "tsdf.npz")
    if cloud is not None:
        np.savez(tmp / "cloud.npz", points=cloud.points, colors=cloud.colors)
    (tmp / "progress.json").write_text(json.dumps(progress))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_snapshot(out_dir: Path) -> Snapshot | None:
    """The newest whole snapshot in ``out_dir`` (``resume/``, else ``resume.old/``), or None."""
    for folder in (out_dir / NAME, out_dir / f"{NAME}.old"):
        if (folder / "progress.json").is_file() and (folder / "odometry.npz").is_file():
            with np.load(folder / "odometry.npz", allow_pickle=False) as z:
                odo = {k: z[k] for k in z.files}
            cloud = None
            if (folder / "cloud.npz").is_file():
                with np.load(folder / "cloud.npz", allow_pickle=False) as z:
                    cloud = {k: z[k] for k in z.files}
            tsdf = folder / "tsdf.npz"
            return Snapshot(odo, json.loads((folder / "progress.json").read_text()), tsdf if tsdf.is_file() else None,
                            cloud)
    return None


def sequence_fingerprint(sequence) -> str:
    """A short hash of what identifies the input: name, frame count, timestamps, camera and first frame's pixels.

    A snapshot stores it, so ``--resume`` refuses to join two different sequences of equal length.
    """
    h = hashlib.sha256()
    h.update(str(getattr(sequence, "name", "")).encode())
    h.update(np.asarray(sequence.timestamps, dtype=np.float64).tobytes())
    h.update(json.dumps(sequence.camera.to_dict(), sort_keys=True).encode())
    if len(sequence):
        h.update(np.ascontiguousarray(sequence[0].image).tobytes())
    return h.hexdigest()[:24]


def has_snapshot(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a snapshot (whole or not) to resume from."""
    return any((Path(out_dir) / f"{NAME}{s}" / "progress.json").is_file() for s in ("", ".old"))


def clear_snapshots(out_dir: Path) -> None:
    for suffix in ("", ".tmp", ".old"):
        shutil.rmtree(out_dir / f"{NAME}{suffix}", ignore_errors=True)
