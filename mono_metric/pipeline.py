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
``backend.json`` (loop candidates, verified, rejected, closures, relocalisations) with the back-end on;
after a loop closure the TSDF and cloud are fused again from the keyframes' corrected poses.
"""
from __future__ import annotations

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
from mono_metric.errors import InputError, expected_message
from mono_metric.eval.plot import depth_range_m, plot_trajectory, save_depth_preview
from mono_metric.eval.trajectory import evaluate_trajectory
from mono_metric.geometry import inv_se3
from mono_metric.mapping.tsdf import PointCloudAccumulator, TSDFMap, mesh_accuracy, save_geometry
from mono_metric.odometry import Odometry
from mono_metric.outputs import TrajectoryFiles, status_spans, write_json
from mono_metric.resume import clear_snapshots, load_snapshot, save_snapshot, sequence_fingerprint
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
        self.write_errors: list[str] = []
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / ".write_test").touch()
            (self.out_dir / ".write_test").unlink()
        except OSError as err:
            raise InputError(f"output folder {self.out_dir} is not writable ({err.strerror}); choose another --out") from err

    def prepare_camera(self, write: bool = True) -> Sequence:
        """The sequence as tracked: undistorted and/or with a self-calibrated focal length (``camera`` config).

        Writes (unless ``write`` is False: then :meth:`write_camera` does) ``camera.yaml`` (the intrinsics
        used) and, after self-calibration, ``calibration.json``.
        """
        self._calibration = None
        seq, ccfg = self.sequence, self.config.camera
        self.camera_info = {"note": getattr(seq, "camera_note", None) or "intrinsics given with the data"}
        if ccfg.undistort and (ccfg.distortion is not None or seq.distortion is not None):
            seq = CameraAdjusted(seq, undistort=True, distortion=ccfg.distortion)
            self.camera_info["undistorted_with"] = list(seq.undistorter.coeffs) if seq.undistorter else None
            if seq.undistorter is not None and seq.undistorter.warning:
                self.camera_info["warning"] = seq.undistorter.warning
                print(f"warning: {seq.undistorter.warning}", file=sys.stderr)
        if ccfg.self_calibrate:
            n = min(len(seq), ccfg.calib_frames)
            est = estimate_focal([seq[i].image for i in range(n)], seq.camera.cx, seq.camera.cy,
                                 tuple(ccfg.calib_hfov_range_deg))
            seq = CameraAdjusted(seq, undistort=False, camera=est.camera())
            self.camera_info.update(note=est.describe() + f" from the first {n} frames", f_sigma_px=est.sigma_px,
                                    calibration_pairs=est.pairs_used)
            self._calibration = {"f_px": est.f_px, "sigma_px": est.sigma_px, "hfov_deg": est.hfov_deg,
                                 "cx": est.cx, "cy": est.cy, "frames": n, "pairs": est.pairs_used}
        self.camera_info.update(seq.camera.to_dict())
        if write:
            self.write_camera(seq)
        return seq

    def write_camera(self, seq: Sequence) -> None:
        """``camera.yaml`` of the prepared ``seq``, and ``calibration.json`` after self-calibration."""
        seq.camera.to_yaml(self.out_dir / "camera.yaml")
        if self._calibration is not None:
            write_json(self.out_dir / "calibration.json", self._calibration)

    def run(self) -> dict:
        """Process every frame; returns a summary dict (metrics when ground truth exists, fps, paths).

        A frame that cannot be read or tracked stops the loop, but the outputs (trajectory, mesh, cloud,
        metrics, timings, summary) are still finished for the frames before it; then the error is raised.

        Raises:
            InputError: bad input (the message names it); no frame could be tracked; a snapshot of
                another config or input when resuming; a result file that could not be written.
        """
        cfg = self.config
        snap = self._load_snapshot() if self.resume else None
        if snap is not None and snap.progress["config"] != cfg.to_dict():
            raise InputError(f"{self.out_dir} holds a snapshot of a run with another config; resume with the same "
                             "--config and options, or use a new --out")
        seq = self.prepare_camera(write=False)
        fingerprint = sequence_fingerprint(seq)
        if snap is not None and (snap.progress["frames"] != len(seq)
                                 or snap.progress.get("input", fingerprint) != fingerprint):
            raise InputError(f"{self.out_dir} holds a snapshot of another input ({snap.progress['frames']} frames; "
                             f"this one has {len(seq)}, and its frames or camera differ); resume with the same data "
                             "and options, or use a new --out")
        cfg.save(self.out_dir / "config.yaml")
        self.write_camera(seq)
        depth_source = make_depth_source(cfg.depth)
        sensor_depth = getattr(depth_source, "frame_depth", False)  # the frame's own depth, with its own time
        warnings = self.warnings()
        for w in warnings:
            tqdm.write(w, file=sys.stderr)
        rec = self.recorder
        if rec is not None:
            rec.begin(seq.name, seq.camera, seq.gt, cfg.depth.max_depth_m, self.camera_info["note"])
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
            try:
                odo.load_state_dict(snap.odometry)
                if tsdf is not None and snap.tsdf_path is not None:
                    tsdf.load_grid(snap.tsdf_path, snap.progress["tsdf_frames"])
                if cloud is not None and snap.cloud is not None:
                    cloud.restore(snap.cloud["points"], snap.cloud["colors"])
                statuses, depth_calls = list(snap.progress["statuses"]), int(snap.progress["depth_calls"])
                timings.update(snap.progress["timings"])
            except Exception as err:  # noqa: BLE001 - any damage to the snapshot files
                raise self._corrupt_snapshot(err) from err
            start = len(statuses)
        files = TrajectoryFiles(self.out_dir)
        if start:  # the files as they were at the snapshot (frames after it are recomputed)
            files.write_all(odo.trajectory(), odo.keyframes())
        bar = tqdm(range(start, len(seq)), desc=seq.name, unit="frame", disable=not self.progress, dynamic_ncols=True,
                   initial=start, total=len(seq))
        t_start = last_snapshot = time.perf_counter()
        snapshot_gap = self.snapshot_every_s or 0.0
        stopped_by: Exception | None = None
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
                result = odo.track(frame.image, frame.timestamp, depth, frame.depth_timestamp if sensor_depth else None)
                timings["tracking"] += time.perf_counter() - t1 - (timings["depth"] - depth_before)
                # A frame still in 'init' that did not become the first keyframe has no pose: it is lost.
                statuses.append("lost" if result.status == "init" and not result.keyframe else result.status)
                files.append(frame.timestamp, result.T_world_cam, result.keyframe)
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
                            "config": cfg.to_dict(), "frames": len(seq), "input": fingerprint, "statuses": statuses,
                            "depth_calls": depth_calls, "timings": timings,
                            "tsdf_frames": tsdf.frames if tsdf is not None else 0}, tsdf, cloud)
                        last_snapshot = time.perf_counter()
                        if self.snapshot_every_s > 0:
                            snapshot_gap = max(self.snapshot_every_s, 10.0 * (last_snapshot - t_snap))
                bar.set_postfix(status=result.status, inliers=result.inliers, kf=len(odo.keyframes()))
        except Exception as err:  # noqa: BLE001 - finish the outputs of the frames that worked, then raise
            stopped_by = err
            bar.close()
        finally:
            files.close()
        if stopped_by is not None and not statuses:
            raise stopped_by
        t_back = time.perf_counter()
        moved = odo.finish() or (odo.backend is not None and odo.backend.stats["closures"] > 0)
        timings["tracking"] += time.perf_counter() - t_back
        if moved and tsdf is not None:  # the keyframes moved after they were fused: fuse them again
            t2 = time.perf_counter()
            tsdf, cloud = self._refuse(seq, odo, depth_source)
            timings["fusion"] += time.perf_counter() - t2
        summary = self._finish(seq, odo, statuses, tsdf, cloud, timings, depth_calls, invalid_depth, start, t_start,
                               warnings, stopped_by)
        if stopped_by is not None:
            done = f"the outputs of the {len(statuses)} frames before it are in {self.out_dir}"
            if expected_message(stopped_by) is None:
                tqdm.write(f"stopped at frame {len(statuses)}; {done}", file=sys.stderr)
                raise stopped_by
            raise InputError(f"{expected_message(stopped_by)} (stopped at frame {len(statuses)} of {len(seq)}; "
                             f"{done}; --resume continues from the last snapshot)") from stopped_by
        if depth_calls and invalid_depth == depth_calls:
            raise InputError(self._no_depth_message(depth_calls))
        if len(statuses) > 1 and not any(s in ("ok", "reinitialised", "relocalised") for s in statuses):
            raise InputError(f"no frame of {seq.name} could be tracked ({len(statuses)} frames, "
                             f"{summary['keyframes']} keyframes): check the intrinsics (fx {seq.camera.fx:.1f} px for "
                             f"{seq.camera.width}x{seq.camera.height} images), that the images are large and textured "
                             f"enough, and the depth; outputs are in {self.out_dir}")
        if self.write_errors:
            raise InputError("; ".join(self.write_errors) + f" (the other results are in {self.out_dir})")
        clear_snapshots(self.out_dir)
        return summary

    def _finish(self, seq, odo, statuses, tsdf, cloud, timings, depth_calls, invalid_depth, start, t_start,
                warnings, stopped_by) -> dict:
        """Rewrite the trajectories, then write the metrics, timings, mesh, cloud and summary of the frames tracked."""
        mcfg, rec = self.config.mapping, self.recorder
        # Appended as tracked; now rewritten with the keyframes' final (bundle-adjusted, loop-closed) poses.
        with TrajectoryFiles(self.out_dir) as files:
            files.write_all(odo.trajectory(), odo.keyframes())
        n = len(statuses)
        summary = {"sequence": seq.name, "frames": n, "keyframes": len(odo.keyframes()), "resumed_at_frame": start,
                   "lost_frames": statuses.count("lost"), "invalid_depth_calls": invalid_depth, "lost_spans": status_spans(statuses, "lost"),
                   "camera": self.camera_info, "depth_source": self.config.depth.source, "out_dir": str(self.out_dir),
                   "warnings": warnings}
        if stopped_by is not None:
            summary["stopped_at_frame"] = n
            summary["error"] = expected_message(stopped_by) or f"{type(stopped_by).__name__}: {stopped_by}"
        if getattr(self.sequence, "gt_note", None):
            summary["gt_note"] = self.sequence.gt_note
        if odo.backend is not None:
            summary["backend"] = dict(odo.backend.stats, rejections=dict(odo.backend.rejections),
                                      relocalised_frames=statuses.count("relocalised"), loops=len(odo.map.loops))
            write_json(self.out_dir / "backend.json", summary["backend"])
        t3 = time.perf_counter()
        mesh = None
        if tsdf is not None and tsdf.frames:
            mesh = tsdf.mesh(mcfg.weight_threshold)
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
        write_json(self.out_dir / "timings.json", timings_out)
        summary["timings"] = timings_out
        plot_args = dict(keyframes=[k.index for k in odo.keyframes()], lost_spans=summary["lost_spans"], title=seq.name)
        m = 0 if seq.gt is None else min(n, len(seq.gt))  # the ground truth may end before the frames
        if m > 2:
            gt = seq.gt[:m]
            metrics = evaluate_trajectory(gt, est[:m])
            metrics["warnings"] = warnings
            metrics["lost_frames"] = summary["lost_frames"]
            gt.write_tum(self.out_dir / "gt_tum.txt")
            # The map frame (first camera) in the ground truth's world, anchored at the first frame (no alignment
            # fitted): metric scale errors show in the map.
            T_world_first_cam = gt.T_world_cam[0] @ inv_se3(est.T_world_cam[0])
            np.savetxt(self.out_dir / "T_world_first_cam.txt", T_world_first_cam, fmt="%.9f",
                       header="4x4 T_world_first_cam: map-frame (first camera) points, e.g. of mesh.ply, cloud.ply and "
                              "trajectory_tum.txt, into the world frame of gt_tum.txt and the scene mesh")
            summary["T_world_first_cam"] = T_world_first_cam.tolist()
            summary["metrics"] = metrics
            gt_mesh = seq.gt_mesh()
            if mesh is not None and gt_mesh is not None and len(mesh.triangles):
                summary["map"].update(mesh_accuracy(mesh, gt_mesh, T_world_first_cam))
                metrics["map"] = summary["map"]
            write_json(self.out_dir / "metrics.json", metrics, "undefined for this trajectory")
            self._guarded_write("trajectory.png", lambda p: plot_trajectory(
                p, est, gt, np.array(metrics["ate"]["T_gt_est"]), ate_rmse_m=metrics["ate"]["rmse_m"], **plot_args))
        elif n:
            self._guarded_write("trajectory.png", lambda p: plot_trajectory(p, est, **plot_args))
        if mesh is not None:
            self._guarded_write("mesh.ply", lambda p: save_geometry(p, mesh))
            self._guarded_write("cloud.ply", lambda p: save_geometry(p, cloud.result()))
        if self.write_errors:
            summary["write_errors"] = self.write_errors
        write_json(self.out_dir / "summary.json", summary)
        self._guarded_write("report.html", lambda p: write_report(p.parent, summary))
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

    def _guarded_write(self, name: str, write) -> None:
        """Run ``write(path)``; a failure is recorded (reported at the end) instead of losing the other results."""
        try:
            write(self.out_dir / name)
        except (OSError, InputError, RuntimeError) as err:
            self.write_errors.append(f"cannot write {self.out_dir / name} ({expected_message(err) or err})")

    def _load_snapshot(self):
        try:
            return load_snapshot(self.out_dir)
        except Exception as err:  # noqa: BLE001 - a damaged snapshot, whatever numpy or json raise
            raise self._corrupt_snapshot(err) from err

    def _corrupt_snapshot(self, err: Exception) -> InputError:
        return InputError(f"the snapshot in {self.out_dir / 'resume'} is damaged ({type(err).__name__}); "
                          "run again without --resume (with --overwrite) to start over")

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
        path = self.out_dir / "depth" / f"kf_{frame.index:06d}.png"
        try:
            path.parent.mkdir(exist_ok=True)
            save_depth_preview(path, frame.image, depth_m, self._depth_range,
                               title=f"{self.sequence.name}: keyframe {kf_number}, frame {frame.index}")
        except OSError:
            if not any("depth previews" in e for e in self.write_errors):
                self.write_errors.append(f"cannot write depth previews such as {path}")
                tqdm.write(f"warning: cannot write the depth preview {path}; check that {path.parent} is a writable "
                           "folder", file=sys.stderr)
