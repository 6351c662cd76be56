"""``OdometryPipeline``: owns the frame loop, timing, mapping, evaluation and the results folder.

Outputs in ``out_dir``: ``trajectory_kitti.txt`` and ``trajectory_tum.txt`` (appended frame by frame,
so an interrupted run keeps what it had; rewritten at the end with the keyframes' final poses, see
:meth:`Odometry.trajectory`), ``keyframes_tum.txt``, ``config.yaml``, ``timings.json``,
``mesh.ply`` and ``cloud.ply`` (TSDF fusion of keyframe depth), ``depth/`` previews, ``camera.yaml``
(the intrinsics used; ``calibration.json`` after self-calibration), and when ground truth exists
``metrics.json``, ``trajectory.png`` and ``gt_tum.txt``; ``backend.json`` (loop candidates, verified,
rejected, closures, relocalisations) with the back-end on. After a loop closure the TSDF and cloud are
fused again from the keyframes' corrected poses.
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
from mono_metric.depth.export import colorize_depth
from mono_metric.depth.sources import make_depth_source
from mono_metric.errors import InputError
from mono_metric.eval.plot import plot_top_view
from mono_metric.eval.trajectory import evaluate_trajectory
from mono_metric.geometry import inv_se3
from mono_metric.mapping.tsdf import PointCloudAccumulator, TSDFMap, mesh_accuracy, save_geometry
from mono_metric.odometry import Odometry
from mono_metric.resume import clear_snapshots, load_snapshot, save_snapshot
from mono_metric.types import Trajectory, format_kitti, format_tum
from mono_metric.undistort import CameraAdjusted

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
    """

    def __init__(self, sequence: Sequence, config: Config, out_dir: str | Path, progress: bool = True,
                 resume: bool = False, snapshot_every_s: float | None = 30.0):
        self.sequence, self.config, self.progress = sequence, config.validate(), progress
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
        odo = Odometry(cfg.tracking, seq.camera, max_depth_m=cfg.depth.max_depth_m, backend=cfg.backend)
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
        t_back = time.perf_counter()
        moved = odo.finish() or (odo.backend is not None and odo.backend.stats["closures"] > 0)
        timings["tracking"] += time.perf_counter() - t_back
        if moved and tsdf is not None:  # the keyframes moved after they were fused: fuse them again
            t2 = time.perf_counter()
            tsdf, cloud = self._refuse(seq, odo, depth_source)
            timings["fusion"] += time.perf_counter() - t2
        # Appended as tracked; now rewritten with the keyframes' final (bundle-adjusted, loop-closed) poses.
        files = {name: open(self.out_dir / name, "w") for name in files}
        with files["trajectory_tum.txt"], files["trajectory_kitti.txt"], files["keyframes_tum.txt"]:
            _write_trajectories(files, odo)
        n = len(statuses)
        if depth_calls and invalid_depth == depth_calls:
            raise InputError(self._no_depth_message(depth_calls))
        summary = {"sequence": seq.name, "frames": n, "keyframes": len(odo.keyframes()), "resumed_at_frame": start,
                   "lost_frames": statuses.count("lost"), "invalid_depth_calls": invalid_depth, "lost_spans": _spans(statuses, "lost"),
                   "camera": self.camera_info, "out_dir": str(self.out_dir)}
        if odo.backend is not None:
            summary["backend"] = dict(odo.backend.stats, rejections=dict(odo.backend.rejections),
                                      relocalised_frames=statuses.count("relocalised"), loops=len(odo.map.loops))
            (self.out_dir / "backend.json").write_text(json.dumps(summary["backend"], indent=2))
        t3 = time.perf_counter()
        mesh = None
        if tsdf is not None and tsdf.frames:
            mesh = tsdf.mesh(mcfg.weight_threshold)
            save_geometry(self.out_dir / "mesh.ply", mesh)
            save_geometry(self.out_dir / "cloud.ply", cloud.result())
            summary["map"] = {"fused_keyframes": tsdf.frames, "voxel_blocks": tsdf.block_count,
                              "triangles": len(mesh.triangles)}
        timings["fusion"] += time.perf_counter() - t3
        wall = time.perf_counter() - t_start
        timings.update({f"tracking_{k}": v for k, v in odo.timings_s.items()})  # parts of 'tracking'
        timings_out = {f"{k}_ms_per_frame": v / max(n, 1) * 1000.0 for k, v in timings.items()}
        timings_out.update(tracking_fps=n / max(timings["tracking"], 1e-9), total_s=wall, overall_fps=n / max(wall, 1e-9),
                           depth_calls=depth_calls, depth_calls_per_frame=depth_calls / max(n, 1))
        (self.out_dir / "timings.json").write_text(json.dumps(timings_out, indent=2))
        summary["timings"] = timings_out
        if seq.gt is not None and n > 2:
            gt = seq.gt[:n]
            est = odo.trajectory()
            metrics = evaluate_trajectory(gt, est)
            gt.write_tum(self.out_dir / "gt_tum.txt")
            plot_top_view(self.out_dir / "trajectory.png", est, gt, np.array(metrics["ate"]["T_gt_est"]),
                          title=seq.name)
            summary["metrics"] = metrics
            gt_mesh = seq.gt_mesh()
            if mesh is not None and gt_mesh is not None and len(mesh.triangles):
                # Anchored at the first frame (no alignment fitted): metric scale errors show in the map.
                summary["map"].update(mesh_accuracy(mesh, gt_mesh, gt.T_world_cam[0] @ inv_se3(est.T_world_cam[0])))
                metrics["map"] = summary["map"]
            (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        clear_snapshots(self.out_dir)
        return summary

    def _refuse(self, seq: Sequence, odo: Odometry, depth_source) -> tuple[TSDFMap, PointCloudAccumulator]:
        """A new TSDF and cloud from every keyframe at its final pose (after loop closure): the images and
        depth are read again (the depth source is deterministic per frame), so no surface is fused twice."""
        mcfg = self.config.mapping
        tsdf = TSDFMap(seq.camera, mcfg.voxel_size_m, mcfg.trunc_voxels, mcfg.max_depth_m, mcfg.device)
        cloud = PointCloudAccumulator(seq.camera, mcfg.cloud_voxel_m, mcfg.max_depth_m)
        for kf in odo.keyframes():
            frame = seq[kf.index]
            d = np.asarray(depth_source(frame), dtype=np.float32)
            d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0))
            tsdf.integrate(frame.image, d, kf.T_world_cam)
            cloud.add(frame.image, d, kf.T_world_cam)
        return tsdf, cloud

    def _no_depth_message(self, calls: int) -> str:
        return (f"the depth source {self.config.depth.source!r} gave no valid depth (NaN, inf or all zero) in its "
                f"first {calls} calls; check the model, its weights and the intrinsics. The trajectory written so "
                f"far is in {self.out_dir}")

    def _preview(self, frame, depth_m: np.ndarray, kf_number: int) -> None:
        """Write ``depth/kf_NNNNNN.png`` (image above coloured depth) for the first few keyframes."""
        if kf_number >= self.config.mapping.depth_previews:
            return
        folder = self.out_dir / "depth"
        folder.mkdir(exist_ok=True)
        preview = np.concatenate([frame.image, colorize_depth(depth_m)], axis=0)
        cv2.imwrite(str(folder / f"kf_{frame.index:06d}.png"), preview[:, :, ::-1])


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
