"""Snapshot of an :class:`~mono_metric.odometry.Odometry` as plain arrays (``np.savez``, no pickling), and its
restore: the tracking state and the :class:`~mono_metric.mapping.map.Map` (``map_*`` keys)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mono_metric.errors import InputError
from mono_metric.mapping.map import Map

if TYPE_CHECKING:
    from mono_metric.odometry import Odometry

TIMED = ("features", "pose", "ba", "icp", "backend")  # Odometry.timings_s keys


def state_dict(odo: "Odometry") -> dict[str, np.ndarray]:
    """Everything ``odo.track`` needs to continue, as plain arrays (for ``np.savez``, no pickling):
    the tracking state and the :class:`Map` (``map_*`` keys).

    The local-BA window, the ICP reference cloud and the keyframe's photometric reference
    (``dense_refine``) are not included: a restored odometry starts without them (the photometric
    refinement resumes at the next keyframe).
    """
    empty = np.zeros((0, 0), np.float32)
    return {
        "prev_gray": odo._prev_gray if odo._prev_gray is not None else np.zeros((0, 0), np.uint8),
        "uv": odo._uv, "xyz": odo._xyz, "lm": odo._lm,
        "desc": empty if odo._desc is None else odo._desc.detach().cpu().numpy(),
        "has_desc": np.array(odo._desc is not None),
        "kf_uv": odo._kf_uv, "kf_depth": odo._kf_depth,
        "poses": np.array(odo._poses).reshape(-1, 4, 4),
        "lost": np.array(odo._lost), "last_depth_frame": np.array(odo._last_depth_frame),
        "timings": np.array([odo.timings_s[k] for k in TIMED]),
        **odo.map.state_dict(),
    }


def load_state_dict(odo: "Odometry", state: dict[str, np.ndarray]) -> None:
    """Restore ``odo`` (built with the same config and camera) from :func:`state_dict`."""
    prev = np.asarray(state["prev_gray"])
    if prev.size and prev.shape != (odo.camera.height, odo.camera.width):
        raise InputError(f"saved odometry state is for {prev.shape[1]}x{prev.shape[0]} frames, the camera is "
                         f"{odo.camera.width}x{odo.camera.height}; resume with the same data and config")
    if "map_kf_T" not in state:
        raise InputError("saved odometry state predates the Map (no map_* arrays); start the run again")
    odo._prev_gray = prev if prev.size else None
    odo._uv = np.asarray(state["uv"], np.float32)
    odo._xyz, odo._lm = np.asarray(state["xyz"], np.float64), np.asarray(state["lm"], int)
    odo._desc = torch.from_numpy(np.asarray(state["desc"])).to(odo.config.device) if bool(state["has_desc"]) else None
    loaded = Map.from_state_dict(state)
    odo.map.__dict__.update(loaded.__dict__)  # the back-end holds this same Map object
    odo._kf = odo.map.keyframes[-1] if odo.map.keyframes else None
    odo._kf_uv, odo._kf_depth = np.asarray(state["kf_uv"], np.float32), np.asarray(state["kf_depth"])
    odo._poses = [np.array(T) for T in state["poses"]]
    odo._lost = bool(state["lost"])
    odo._last_depth_frame = int(state["last_depth_frame"])
    odo.timings_s.update(zip(TIMED, (float(v) for v in state["timings"])))
