"""``OdometryPipeline``: owns the frame loop, timing, mapping, evaluation and the results folder.

Outputs in ``out_dir``: ``trajectory_kitti.txt`` and ``trajectory_tum.txt`` (appended frame by frame,
so an interrupted run keeps what it had; rewritten at the end with the keyframes' final poses, see
:meth:`Odometry.trajectory`), ``keyframes_tum.txt``, ``config.yaml``, ``timings.json``,
``mesh.ply`` and ``cloud.ply`` (TSDF fusion of keyframe depth), ``depth/`` previews (image beside depth,
one colour range per run), ``camera.yaml`` (the intrinsics used; ``calibration.json`` after
self-calibration), ``trajectory.png`` (top and side view), ``report.html`` and ``summary.json`` (what
:meth:`OdometryPipeline.run` returns, with ``warnings``: lines printed at the start about the settings, e.g. the
embedded model on real images); when ground truth exists also ``metrics.json``, ``gt_tum.txt`` and
``T_world_first_cam.txt``. Trajectories, mesh and cloud are in the map frame = the first camera's frame;
``gt_tum.txt`` is in the ground truth's world frame, and ``T_world_first_cam.txt`` (4x4) maps map-frame points
into it (no alignment fitted).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mono_metric.calibrate import estimate_focal
from mono_metric.config import Config
from mono_metric.datasets.base import Sequence
from mono_metric.depth.sources import TINY_REAL_WARNING, make_depth_source
from mono_metric.errors import InputError
from mono_metric.eval.plot import depth_range_m, plot_trajectory, save_depth_preview
from mono_metric.eval.trajectory import evaluate_trajectory
from mono_metric.geometry import inv_se3
from mono_metric.mapping.tsdf import PointCloudAccumulator, TSDFMap, mesh_accuracy, save_geometry
from mono_metric.odometry import Odometry
from mono_metric.resume import clear_snapshots, load_snapshot, save_snapshot
from mono_metric.types import Trajectory, format_kitti, format_tum
from mono_metric.undistort import CameraAdjusted
from mono_metric.viz.report import write_report

STAGES = ("load", "depth", "tracking", "fusion")  # tracking includes features, pose and ba (reported too)


class OdometryPipeline:
    """Runs :class:`Odometry` over a :class:`Sequence`, fuses keyframes, and writes results.

    Args:
        sequence: any loaded sequence.
        config: validated settings (saved as ``config.yaml`` next to the results).
        out_dir: results folder (created).
        progress: show a progress bar.
        resume: continue from the snapshot in ``out_dir`` (of a killed run with the same data and
            config) when there is one.
        snapshot_every_s: take a snapshot on the first keyframe after this many seconds (0: on every
            keyframe; None: never); the gap grows to 10x the last snapshot's duration for big maps.
        recorder: logs the run as it goes, e.g. a :class:`mono_metric.viz.RerunRecorder` (its ``begin``,
            ``log_frame`` and ``end`` are called), or None.
    """

    def __init__(self, sequence: Sequence, config: Config, out_dir: str | Path, progress: bool = True,
                 resume: bool = False, snapshot_every_s: float | None = 30.0, recorder=None):
        self.sequence, self.config, self.progress = sequence, config.validate(), progress
        self.recorder, self._depth_range = recorder, None
        self.resume, self.snapshot_every_s = resume, snapshot_every_s
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / ".write_test").touch()
            (self.out_dir / ".write_test").unlink()
        except OSError as err:
            raise InputError(f"output folder {self.out_dir} is not writable ({err.strerror}); choose another --out") from err

    def prepare_camera(self) -> Sequence:
        """The sequence as tracked: undistorted and/or with a self-calibrated focal length (``camera`` config).

        Writes ``camera.yaml`` (the intrinsics used) and, after self-calibration, ``calibration.json``.
        """
        seq, ccfg = self.sequence, self.config.camera
        self.camera_info = {"note": getattr(seq, "camera_note", None) or "intrinsics given with the data"}
        if ccfg.undistort and (ccfg.distortion is not None or seq.distortion is not None):
            seq = CameraAdjusted(seq, undistort=True, distortion=ccfg.distortion)
            self.camera_info["undistorted_with"] = list(seq.undistorter.coeffs) if seq.undistorter else None
        if ccfg.self_calibrate:
            n = min(len(seq), ccfg.calib_frames)
            est = estimate_focal([seq[i].image for i in range(n)], seq.camera.cx, seq.camera.cy,
                                 tuple(ccfg.calib_hfov_range_deg))
            seq = CameraAdjusted(seq, undistort=False, camera=est.camera())
            self.camera_info.update(note=est.describe() + f" from the first {n} frames", f_sigma_px=est.sigma_px,
                                    calibration_pairs=est.pairs_used)
            (self.out_dir / "calibration.json").write_text(json.dumps(
                {"f_px": est.f_px, "sigma_px": est.sigma_px, "hfov_deg": est.hfov_deg, "cx": est.cx, "cy": est.cy,
                 "frames": n, "pairs": est.pairs_used}, indent=2))
        self.camera_info.update(seq.camera.to_dict())
        seq.camera.to_yaml(self.out_dir / "camera.yaml")
        return seq

    def run(self) -> dict:
        """Process every frame; returns a summary dict (metrics when ground truth exists, fps, paths)."""
        cfg = self.config
        snap = load_snapshot(self.out_dir) if self.resume else None
        if snap is not None and snap.progress["config"] != cfg.to_dict():
            raise InputError(f"{self.out_dir} holds a snapshot of a run with another config; resume with the same "
                             "--config and options, or use a new --out")
        cfg.save(self.out_dir / "config.yaml")
        seq = self.prepare_camera()
        if snap is not None and snap.progress["frames"] != len(seq):
            raise InputError(f"{self.out_dir} holds a snapshot of a {snap.progress['frames']}-frame sequence, this one "
                             f"has {len(seq)}; resume with the same data and options, or use a new --out")
        depth_source = make_depth_source(cfg.depth)
        warnings = self.warnings()
        for w in warnings:
            tqdm.write(w, file=sys.stderr)
        rec = self.recorder
        if rec is not None:
            rec.begin(seq.name, seq.camera, seq.gt, cfg.depth.max_depth_m, self.camera_info["note"])
        odo = Odometry(cfg.tracking, seq.camera, max_depth_m=cfg.depth.max_depth_m)
        mcfg = cfg.mapping
        tsdf = cloud = None
        if mcfg.enabled:
            tsdf = TSDFMap(seq.camera, mcfg.voxel_size_m, mcfg.trunc_voxels, mcfg.max_depth_m, mcfg.device)
            cloud = PointCloudAccumulator(seq.camera, mcfg.cloud_voxel_m, mcfg.max_depth_m)
        timings = dict.fromkeys(STAGES, 0.0)
        statuses: list[str] = []
        depth_calls = start = invalid_depth = 0
        if snap is not None:
            odo.load_state_dict(snap.odometry)
            if tsdf is not None and snap.tsdf_path is not None:
                tsdf.load_grid(snap.tsdf_path, snap.progress["tsdf_frames"])
            if cloud is not None and snap.cloud is not None:
                cloud.restore(snap.cloud["points"], snap.cloud["colors"])
            statuses, depth_calls, start = snap.progress["statuses"], snap.progress["depth_calls"], len(snap.progress["statuses"])
            timings.update(snap.progress["timings"])
        files = {name: open(self.out_dir / name, "w") for name in
                 ("trajectory_kitti.txt", "trajectory_tum.txt", "keyframes_tum.txt")}
        if start:  # the files as they were at the snapshot (frames after it are recomputed)
            _write_trajectories(files, odo)
        bar = tqdm(range(start, len(seq)), desc=seq.name, unit="frame", disable=not self.progress, dynamic_ncols=True,
                   initial=start, total=len(seq))
        t_start = last_snapshot = time.perf_counter()
        snapshot_gap = self.snapshot_every_s or 0.0
        try:
            for i in bar:
                cv2.setRNGSeed(i)  # RANSAC draws depend on the frame only: a resumed run repeats them
                t0 = time.perf_counter()
                frame = seq[i]
                timings["load"] += time.perf_counter() - t0

                def depth(frame=frame):
                    nonlocal depth_calls, invalid_depth
                    t = time.perf_counter()
                    d = np.asarray(depth_source(frame), dtype=np.float32)
                    timings["depth"] += time.perf_counter() - t
                    depth_calls += 1
                    valid = np.isfinite(d) & (d > 0)
                    if valid.mean() < 0.01:  # NaN, inf or zero: this frame cannot anchor 3D points
                        invalid_depth += 1
                        if invalid_depth == depth_calls >= 3:
                            raise InputError(self._no_depth_message(invalid_depth))
                        if invalid_depth == 1:
                            tqdm.write(f"warning: {cfg.depth.source} depth of frame {frame.index} is NaN, inf or zero "
                                       "everywhere; such frames are marked lost", file=sys.stderr)
                    return np.where(valid, d, np.float32(0))

                t1, depth_before = time.perf_counter(), timings["depth"]
                result = odo.track(frame.image, frame.timestamp, depth)
                timings["tracking"] += time.perf_counter() - t1 - (timings["depth"] - depth_before)
                statuses.append(result.status)
                _append(files, frame.timestamp, result.T_world_cam, result.keyframe)
                if rec is not None:
                    rec.log_frame(frame, result, odo)
                if result.keyframe:
                    t2 = time.perf_counter()
                    if tsdf is not None and result.status != "lost":
                        tsdf.integrate(frame.image, result.depth_m, result.T_world_cam)
                        cloud.add(frame.image, result.depth_m, result.T_world_cam)
                    timings["fusion"] += time.perf_counter() - t2
                    self._preview(frame, result.depth_m, len(odo.keyframes()) - 1)
                    # Snapshot cost grows with the map: keep it under ~10 % of the run time.
                    if self.snapshot_every_s is not None and time.perf_counter() - last_snapshot >= snapshot_gap:
                        t_snap = time.perf_counter()
                        save_snapshot(self.out_dir, odo.state_dict(), {
                            "config": cfg.to_dict(), "frames": len(seq), "statuses": statuses,
                            "depth_calls": depth_calls, "timings": timings,
                            "tsdf_frames": tsdf.frames if tsdf is not None else 0}, tsdf, cloud)
                        last_snapshot = time.perf_counter()
                        if self.snapshot_every_s > 0:
                            snapshot_gap = max(self.snapshot_every_s, 10.0 * (last_snapshot - t_snap))
                bar.set_postfix(status=result.status, inliers=result.inliers, kf=len(odo.keyframes()))
        finally:
            for f in files.values():
                f.close()
        # Appended as tracked; now rewritten with the keyframes' final (bundle-adjusted) poses.
        files = {name: open(self.out_dir / name, "w") for name in files}
        with files["trajectory_tum.txt"], files["trajectory_kitti.txt"], files["keyframes_tum.txt"]:
            _write_trajectories(files, odo)
        n = len(statuses)
        if depth_calls and invalid_depth == depth_calls:
            raise InputError(self._no_depth_message(depth_calls))
        summary = {"sequence": seq.name, "frames": n, "keyframes": len(odo.keyframes()), "resumed_at_frame": start,
                   "lost_frames": statuses.count("lost"), "invalid_depth_calls": invalid_depth, "lost_spans": _spans(statuses, "lost"),
                   "camera": self.camera_info, "depth_source": cfg.depth.source, "out_dir": str(self.out_dir),
                   "warnings": warnings}
        if getattr(self.sequence, "gt_note", None):
            summary["gt_note"] = self.sequence.gt_note
        t3 = time.perf_counter()
        mesh = None
        if tsdf is not None and tsdf.frames:
            mesh = tsdf.mesh(mcfg.weight_threshold)
            save_geometry(self.out_dir / "mesh.ply", mesh)
            save_geometry(self.out_dir / "cloud.ply", cloud.result())
            summary["map"] = {"fused_keyframes": tsdf.frames, "voxel_blocks": tsdf.block_count,
                              "triangles": len(mesh.triangles)}
        timings["fusion"] += time.perf_counter() - t3
        est = odo.trajectory()
        if rec is not None:
            rec.end(est, mesh)
        wall = time.perf_counter() - t_start
        timings.update({f"tracking_{k}": v for k, v in odo.timings_s.items()})  # parts of 'tracking'
        timings_out = {f"{k}_ms_per_frame": v / max(n, 1) * 1000.0 for k, v in timings.items()}
        timings_out.update(tracking_fps=n / max(timings["tracking"], 1e-9), total_s=wall, overall_fps=n / max(wall, 1e-9),
                           depth_calls=depth_calls, depth_calls_per_frame=depth_calls / max(n, 1))
        (self.out_dir / "timings.json").write_text(json.dumps(timings_out, indent=2))
        summary["timings"] = timings_out
        plot_args = dict(keyframes=[k.index for k in odo.keyframes()], lost_spans=summary["lost_spans"], title=seq.name)
        m = 0 if seq.gt is None else min(n, len(seq.gt))  # the ground truth may end before the frames
        if m > 2:
            gt = seq.gt[:m]
            est = est[:m]
            metrics = evaluate_trajectory(gt, est)
            metrics["warnings"] = warnings
            gt.write_tum(self.out_dir / "gt_tum.txt")
            # The map frame (first camera) in the ground truth's world, anchored at the first frame (no alignment
            # fitted): metric scale errors show in the map.
            T_world_first_cam = gt.T_world_cam[0] @ inv_se3(est.T_world_cam[0])
            np.savetxt(self.out_dir / "T_world_first_cam.txt", T_world_first_cam, fmt="%.9f",
                       header="4x4 T_world_first_cam: map-frame (first camera) points, e.g. of mesh.ply, cloud.ply and "
                              "trajectory_tum.txt, into the world frame of gt_tum.txt and the scene mesh")
            summary["T_world_first_cam"] = T_world_first_cam.tolist()
            plot_trajectory(self.out_dir / "trajectory.png", est, gt, np.array(metrics["ate"]["T_gt_est"]),
                            ate_rmse_m=metrics["ate"]["rmse_m"], **plot_args)
            summary["metrics"] = metrics
            gt_mesh = seq.gt_mesh()
            if mesh is not None and gt_mesh is not None and len(mesh.triangles):
                summary["map"].update(mesh_accuracy(mesh, gt_mesh, T_world_first_cam))
                metrics["map"] = summary["map"]
            (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        elif n:
            plot_trajectory(self.out_dir / "trajectory.png", est, **plot_args)
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        write_report(self.out_dir, summary)
        clear_snapshots(self.out_dir)
        return summary

    def warnings(self) -> list[str]:
        """Lines the user must see about this run's settings (printed once at the start, kept in the summary)."""
        from mono_metric.datasets.synthetic import SyntheticSequence

        if self.config.depth.source == "mono_metric_tiny" and not isinstance(self.sequence, SyntheticSequence):
            return [TINY_REAL_WARNING]
        return []

    def _no_depth_message(self, calls: int) -> str:
        return (f"the depth source {self.config.depth.source!r} gave no valid depth (NaN, inf or all zero) in its "
                f"first {calls} calls; check the model, its weights and the intrinsics. The trajectory written so "
                f"far is in {self.out_dir}")

    def _preview(self, frame, depth_m: np.ndarray, kf_number: int) -> None:
        """Write ``depth/kf_NNNNNN.png`` (image beside coloured depth, colour bar in metres; the range is set by
        the first keyframe and kept for the run) for the first few keyframes."""
        if kf_number >= self.config.mapping.depth_previews:
            return
        if self._depth_range is None:
            self._depth_range = depth_range_m(depth_m, self.config.depth.max_depth_m)
        folder = self.out_dir / "depth"
        folder.mkdir(exist_ok=True)
        save_depth_preview(folder / f"kf_{frame.index:06d}.png", frame.image, depth_m, self._depth_range,
                           title=f"{self.sequence.name}: keyframe {kf_number}, frame {frame.index}")


def _write_trajectories(files: dict, odo: Odometry) -> None:
    """Write the odometry's trajectory and keyframes so far to the open result files."""
    traj = odo.trajectory()
    files["trajectory_kitti.txt"].write(format_kitti(traj.T_world_cam))
    files["trajectory_tum.txt"].write(format_tum(traj.timestamps, traj.T_world_cam))
    kfs = odo.keyframes()
    files["keyframes_tum.txt"].write(format_tum(np.array([k.timestamp for k in kfs]),
                                                np.array([k.T_world_cam for k in kfs]).reshape(-1, 4, 4)))


def _append(files: dict, timestamp: float, T: np.ndarray, keyframe: bool) -> None:
    files["trajectory_kitti.txt"].write(format_kitti(T[None]))
    files["trajectory_tum.txt"].write(format_tum(np.array([timestamp]), T[None]))
    if keyframe:
        files["keyframes_tum.txt"].write(format_tum(np.array([timestamp]), T[None]))
    for f in files.values():
        f.flush()


def _spans(statuses: list[str], value: str) -> list[list[int]]:
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
