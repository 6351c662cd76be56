"""The output-folder policy shared by every subcommand (see docs/reliability.md).

An ``--out`` folder that exists and is not empty is refused unless ``--overwrite`` (its contents are
deleted first, only when a marker file says mono-metric wrote them) or ``--resume`` (continue the run
it holds). So no file of an earlier run is ever left beside a new run's files. The marker
``.mono-metric.json`` records the subcommand and whether the run finished.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from mono_metric.errors import InputError
from mono_metric.types import Trajectory, format_kitti, format_tum

MARKER = ".mono-metric.json"


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder written by mono-metric, or None."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(folder: Path, command: str, state: str, **extra) -> None:
    """Record ``state`` ('running', 'finished' or 'failed') of the ``command`` whose results are in ``folder``."""
    (Path(folder) / MARKER).write_text(json.dumps({"command": command, "state": state, **extra}))


def claim_output_dir(path: str | Path, command: str, overwrite: bool = False, resume: bool = False,
                     flag: str = "--out") -> Path:
    """Make ``path`` the results folder of ``command`` under the policy of the module docstring.

    Returns:
        The folder, created and writable, marked as 'running'.

    Raises:
        InputError: a file in the way, a non-empty folder without ``overwrite``/``resume``, a folder
            not written by mono-metric, a finished run to resume, or an unwritable folder.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out} is a file; give a folder for the results")
    entries = list(out.iterdir()) if out.is_dir() else []
    if entries:
        mark = read_marker(out)
        if mark is None:
            raise InputError(f"{flag} {out} is not empty and holds no mono-metric results; choose a new or empty "
                             "folder (mono-metric never mixes its results with other files)")
        if mark.get("command") != command:
            raise InputError(f"{flag} {out} holds results of 'mono-metric {mark.get('command')}', not {command}; "
                             "choose another folder")
        if resume:
            if mark.get("state") == "finished":
                raise InputError(f"{flag} {out} holds a finished {command}; there is nothing to resume (pass "
                                 "--overwrite to run it again, or choose a new folder)")
        elif not overwrite:
            raise InputError(f"{flag} {out} already holds the results of an earlier {command} "
                             f"({mark.get('state')}); pass --overwrite to replace them, --resume to continue "
                             "an interrupted run, or choose a new folder")
        else:
            clear_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, command, "running")
    except OSError as err:
        raise InputError(f"{flag} {out} is not writable ({err.strerror}); choose another folder") from err
    return out


def clear_folder(folder: Path) -> None:
    """Delete everything inside ``folder`` (kept itself)."""
    for entry in Path(folder).iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def claim_output_file(path: str | Path, overwrite: bool = False, flag: str = "--out") -> Path:
    """A file to write: refused when it exists (unless ``overwrite``) or is a folder; its folder is created."""
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{flag} {out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise InputError(f"{flag} {out} exists; pass --overwrite to replace it, or choose another name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{flag} {out}: cannot create its folder ({err.strerror}); choose another path") from err
    if not os.access(out.parent, os.W_OK):
        raise InputError(f"{flag} {out}: its folder is not writable; choose another path")
    return out


def json_safe(value, reason: str = "not finite"):
    """``value`` with every NaN/inf float replaced by None (strict JSON); ``reason`` goes in a sibling key.

    A float ``x`` under key ``k`` that is not finite becomes ``k: null`` and ``k_null_reason: reason``.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            safe = json_safe(v, reason)
            out[k] = safe
            if safe is None and isinstance(v, float):
                out[f"{k}_null_reason"] = f"{v} ({reason})"
        return out
    if isinstance(value, (list, tuple)):
        return [json_safe(v, reason) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, value, reason: str = "not finite") -> None:
    """Write strict JSON (no NaN/inf, see :func:`json_safe`) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(value, reason), indent=2, allow_nan=False, default=float))
    os.replace(tmp, path)


class output_dir:  # noqa: N801 - used as a context manager, like open()
    """``with output_dir(path, command, overwrite, resume) as out:`` claims ``out`` (see
    :func:`claim_output_dir`) and marks it 'finished', 'failed' or 'interrupted' on leaving."""

    def __init__(self, path: str | Path, command: str, overwrite: bool = False, resume: bool = False,
                 flag: str = "--out"):
        self.args = (path, command, overwrite, resume, flag)

    def __enter__(self) -> Path:
        self.path = claim_output_dir(*self.args)
        return self.path

    def __exit__(self, kind, err, tb) -> None:
        state = "finished" if kind is None else ("interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")
        try:
            write_marker(self.path, self.args[1], state)
        except OSError:
            pass


class TrajectoryFiles:
    """The run's trajectory files, written frame by frame so an interrupted run keeps what it had.

    ``trajectory_kitti.txt`` and ``trajectory_tum.txt`` (every frame) and ``keyframes_tum.txt`` in
    ``out_dir``, opened for writing (truncated) on creation. Use as a context manager or call :meth:`close`.
    """

    NAMES = ("trajectory_kitti.txt", "trajectory_tum.txt", "keyframes_tum.txt")

    def __init__(self, out_dir: str | Path):
        self._files = {name: open(Path(out_dir) / name, "w") for name in self.NAMES}

    def append(self, timestamp: float, T_world_cam, keyframe: bool) -> None:
        """Add one frame's (4, 4) pose (and the keyframe line) and flush."""
        T = np.asarray(T_world_cam)[None]
        self._files["trajectory_kitti.txt"].write(format_kitti(T))
        self._files["trajectory_tum.txt"].write(format_tum(np.array([timestamp]), T))
        if keyframe:
            self._files["keyframes_tum.txt"].write(format_tum(np.array([timestamp]), T))
        for f in self._files.values():
            f.flush()

    def write_all(self, trajectory: Trajectory, keyframes: list) -> None:
        """Write a whole :class:`~mono_metric.types.Trajectory` and its keyframes (objects with ``timestamp``
        and ``T_world_cam``) to the freshly opened files."""
        self._files["trajectory_kitti.txt"].write(format_kitti(trajectory.T_world_cam))
        self._files["trajectory_tum.txt"].write(format_tum(trajectory.timestamps, trajectory.T_world_cam))
        self._files["keyframes_tum.txt"].write(format_tum(np.array([k.timestamp for k in keyframes]),
                                                          np.array([k.T_world_cam for k in keyframes]).reshape(-1, 4, 4)))

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def __enter__(self) -> "TrajectoryFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def status_spans(statuses: list[str], value: str) -> list[list[int]]:
    """[first, last] frame index of each run of ``value``."""
    spans: list[list[int]] = []
    for i, s in enumerate(statuses):
        if s == value:
            if spans and spans[-1][1] == i - 1:
                spans[-1][1] = i
            else:
                spans.append([i, i])
    return spans


def read_partial_trajectory(out_dir: str | Path) -> Trajectory:
    """The TUM trajectory written so far in ``out_dir`` (also after an interrupted run)."""
    return Trajectory.read_tum(Path(out_dir) / "trajectory_tum.txt")
