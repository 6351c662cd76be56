"""Reading and pairing trajectory files for evaluation: TUM by timestamp, KITTI by line, with a hint when a
file is in the other format and a note when only part of either trajectory is paired."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mono_metric.datasets.tum import associate
from mono_metric.errors import InputError
from mono_metric.types import Trajectory


def read_trajectory(path: str | Path, fmt: str) -> Trajectory:
    """``Trajectory.read``; when the file fails in ``fmt`` but reads in the other format, say so."""
    try:
        return Trajectory.read(path, fmt)
    except InputError as err:
        if not Path(path).is_file():
            raise
        other = "kitti" if fmt == "tum" else "tum"
        try:
            Trajectory.read(path, other)
        except InputError:
            raise err from None
        shape = "12 numbers (3x4 pose) per line" if other == "kitti" else "8 numbers (time tx ty tz qx qy qz qw)"
        raise InputError(f"{path} is not a {fmt.upper()} trajectory but looks like a {other.upper()} one ({shape}): "
                         f"add --format {other}") from err


def pair_trajectories(gt: Trajectory, est: Trajectory, fmt: str,
                      max_diff_s: float) -> tuple[Trajectory, Trajectory, str | None]:
    """Pairs of ground-truth and estimated poses, and a note when only part of either is used.

    KITTI files pair line by line: an estimate shorter than the ground truth is compared with the first
    ``len(est)`` ground-truth poses. TUM files pair each estimated stamp with the nearest ground-truth stamp.
    """
    if fmt == "kitti":
        if len(est) > len(gt):
            raise InputError(f"the estimate has {len(est)} poses but the ground truth only {len(gt)}; KITTI files "
                             "pair line by line: is it the ground truth of this sequence?")
        note = (f"evaluating the first {len(est)} of {len(gt)} ground-truth poses (KITTI files pair by line)"
                if len(est) < len(gt) else None)
        return gt[:len(est)], est, note
    j = associate(est.timestamps, gt.timestamps, max_diff_s)
    keep = np.flatnonzero(j >= 0)
    if len(keep) < 3:
        raise InputError(f"only {len(keep)} estimated poses lie within {max_diff_s} s of a ground-truth stamp; "
                         "check that both files use the same clock or raise --max-diff-s")
    note = None
    if len(keep) < len(est) or len(keep) < len(gt):
        note = (f"evaluating {len(keep)} estimated poses paired with ground truth by timestamp (within {max_diff_s} s)"
                f": {len(est) - len(keep)} of {len(est)} estimated poses unpaired, the ground truth has {len(gt)} "
                f"poses from {gt.timestamps[0]:.3f} to {gt.timestamps[-1]:.3f} s, the pairs span "
                f"{est.timestamps[keep[0]]:.3f} to {est.timestamps[keep[-1]]:.3f} s")
    return gt[j[keep]], est[keep], note
