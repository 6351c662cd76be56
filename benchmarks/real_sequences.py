"""Real-sequence benchmark: our odometry beside references run here on the same frames and the same depth.

Every sequence of ``SEQUENCES`` (the shared real sequences with ground-truth poses; ``synthetic:...`` URIs
work the same way) is run with each depth source that applies to it:

- ``gt``: the sensor depth (TUM); ``gt_degraded``: that depth with Metric3D-like error
  (:class:`~mono_metric.depth.sources.DegradedDepth`, it degrades the sensor depth, so it needs one too:
  the KITTI excerpts have none); ``mono_metric_tiny``: the embedded synthetic-only model (reported, not
  targeted).
- Methods: ``ours`` (:class:`~mono_metric.pipeline.OdometryPipeline` with the sequence's config and the
  depth source overridden, as ``mono-metric run --config C --depth D`` does; TSDF mapping off, it does not
  change the poses), ``open3d`` (Open3D RGB-D odometry, hybrid term, previous motion as the initial
  guess), ``five_point`` (corners + LK + essential matrix; with the depth for scale) and ``kiss_icp``
  (KISS-ICP on the back-projected depth); depth-free rows once per sequence: ``static`` (identity
  poses) and ``five_point_rot`` (rotation only).

The depth maps are computed once per (sequence, source) from the frames as the pipeline sees them
(undistorted by the config's ``camera`` section), then handed to our pipeline as the frames' depth
(``depth.source: gt`` on the cached frames) and to every reference: all methods consume identical arrays.

Columns: ATE RMSE (SE(3) alignment, no scale), RPE over 1 frame (translation RMSE cm, rotation RMSE
deg), relative rotation error per frame pair (median / mean deg), KITTI-short t_err / r_err on paths of
at least ``KITTI_SHORT_MIN_PATH_M``, lost frames (references: pairs they could not estimate), keyframes,
depth calls per frame and CPU ms per frame (``time.process_time`` of the whole method: for ours the
pipeline's run on cached frames, including writing its trajectory files and metrics).

    python benchmarks/real_sequences.py [--data ../shared/data] [--sequences tum_fr1_xyz kitti_00 ...]
        [--depth gt gt_degraded mono_metric_tiny] [--methods ours open3d ...] [--max-frames N] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mono_metric.cli import _load_config
from mono_metric.datasets import load_sequence
from mono_metric.datasets.base import Sequence
from mono_metric.depth.sources import make_depth_source
from mono_metric.eval import references as refs
from mono_metric.eval.trajectory import ate, kitti_short_segment_errors, relative_rotation_errors_deg, rpe
from mono_metric.geometry import inv_se3
from mono_metric.pipeline import OdometryPipeline
from mono_metric.types import Trajectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEPTH_SOURCES = ("gt", "gt_degraded", "mono_metric_tiny")
METHODS = ("ours", "static", "open3d", "five_point", "five_point_rot", "kiss_icp")
KITTI_SHORT_MIN_PATH_M = 20.0  # KITTI-short segments (10-80 % of the path) only on driving-scale paths


@dataclass(frozen=True)
class BenchSequence:
    """One benchmark sequence.

    Attributes:
        name: row label.
        path: folder under ``--data``, or a ``synthetic:SCENE?...`` URI (rendered, exact ground truth).
        config: the config the user would run it with (repository-relative).
        load_opts: options of :func:`~mono_metric.datasets.load_sequence`.
    """

    name: str
    path: str
    config: str
    load_opts: dict = field(default_factory=dict)


SEQUENCES = [
    BenchSequence("tum_fr1_xyz", "tum_fr1_xyz", "configs/tum_fr1.yaml"),
    BenchSequence("tum_fr1_desk_9f", "tum_fr1_desk_9f", "configs/tum_fr1.yaml", {"missing": "skip"}),
    BenchSequence("kitti_00", "kitti_odometry_00", "configs/kitti.yaml"),
    BenchSequence("kitti_06", "kitti_odometry", "configs/kitti.yaml"),
    # The synthetic counterpart of a fast hand-held TUM sequence (rolling shutter, blur, exposure, noise, JPEG,
    # Kinect-like depth: the 'tum' realism preset), exact ground truth.
    BenchSequence("synthetic_handheld", "synthetic:handheld?seed=11&frames=150", "configs/synthetic_handheld.yaml"),
]


class CachedFrames(Sequence):
    """Frames held in memory, each carrying the depth map every method of the benchmark consumes."""

    def __init__(self, base: Sequence, frames: list, depths: list[np.ndarray]):
        self.name, self.camera, self.gt = base.name, base.camera, base.gt
        self.timestamps, self.distortion = base.timestamps[:len(frames)], None
        self._frames = [replace(f, depth_m=d) for f, d in zip(frames, depths)]

    def _load(self, index: int):
        return self._frames[index]


def resolve(spec: str) -> BenchSequence:
    """The entry named ``spec``, or an entry for a ``synthetic:SCENE?...`` URI (config of that scene)."""
    for entry in SEQUENCES:
        if spec == entry.name:
            return entry
    if spec.startswith("synthetic:"):
        scene = spec.split(":", 1)[1].partition("?")[0] or "street"
        config = f"configs/synthetic_{scene}.yaml"
        if not (REPO / config).is_file():
            raise SystemExit(f"no {config} for {spec}; add a BenchSequence entry with its config to SEQUENCES")
        return BenchSequence(spec, spec, config)
    raise SystemExit(f"unknown sequence {spec!r}; use one of {[e.name for e in SEQUENCES]} or a synthetic: URI")


def load(entry: BenchSequence, data_root: Path, max_frames: int | None) -> Sequence:
    opts = dict(entry.load_opts)
    if entry.path.startswith("synthetic:"):
        if max_frames is not None:
            opts["frames"] = max_frames
        return load_sequence(entry.path, **opts)
    if max_frames is not None:
        opts["max_frames"] = max_frames
    return load_sequence(data_root / entry.path, **opts)


def metrics(gt: np.ndarray, est: np.ndarray, rotation_only: bool = False) -> dict:
    """The table's error columns for (N, 4, 4) ``est`` against ``gt``; translation columns NaN if rotation only."""
    nan = float("nan")
    r, rot, a = rpe(gt, est, 1), relative_rotation_errors_deg(gt, est), ate(gt, est)
    m = {"ate_cm": nan if rotation_only else 100.0 * a.rmse_m, "sim3_scale": nan if rotation_only else a.sim3_scale,
         "rpe_cm": nan if rotation_only else 100.0 * r.trans_rmse_m, "rpe_deg": r.rot_rmse_deg,
         "rot_median_deg": float(np.median(rot)), "rot_mean_deg": float(rot.mean()),
         "kitti_short_t_pct": nan, "kitti_short_r_deg_100m": nan}
    if not rotation_only and Trajectory(np.arange(len(gt)), gt).path_length_m() >= KITTI_SHORT_MIN_PATH_M:
        ks = kitti_short_segment_errors(gt, est)
        m.update(kitti_short_t_pct=ks.t_err_pct, kitti_short_r_deg_100m=ks.r_err_deg_per_100m)
    return m


def timed(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def run_depth_source(entry: BenchSequence, seq: Sequence, frames: list, source: str,
                     methods: list[str], out_dir: Path, gt: np.ndarray) -> list[dict]:
    """Rows of every depth-using method for one depth source (``frames``: the pipeline's undistorted frames)."""
    cfg = _load_config(REPO / entry.config, source, {"mapping": {"enabled": False}})
    depth_source = make_depth_source(cfg.depth)
    depths = []
    for f in frames:  # NaN/inf/negative become 0 (invalid), as the pipeline does with a source's output
        d = np.asarray(depth_source(f), np.float32)
        depths.append(np.where(np.isfinite(d) & (d > 0), d, np.float32(0)))
    cached = CachedFrames(seq, frames, depths)
    images, cam, n, max_depth = [f.image for f in frames], seq.camera, len(frames), cfg.depth.max_depth_m
    rows = []

    def row(method, poses, cpu_s, lost, depth_calls, rotation_only=False, **extra):
        rows.append({"sequence": entry.name, "depth": source, "method": method, "frames": n, **extra,
                     **metrics(gt, poses, rotation_only), "lost": lost, "depth_calls_per_frame": depth_calls,
                     "cpu_ms_per_frame": 1000.0 * cpu_s / n})

    if "ours" in methods:
        # The frames are undistorted already and carry the depth: run the same config on them with
        # depth.source 'gt' (which returns the frame's depth) and no second undistortion.
        ours_cfg = _load_config(REPO / entry.config, None, {"mapping": {"enabled": False},
                                                             "camera": {"undistort": False}, "depth": {"source": "gt"}})
        run_dir = out_dir / "ours"
        summary, cpu = timed(lambda: OdometryPipeline(cached, ours_cfg, run_dir, progress=False,
                                                      snapshot_every_s=None).run())
        (run_dir / "benchmark_depth_source.json").write_text(json.dumps(cfg.depth.__dict__, indent=2))
        est = Trajectory.read_tum(run_dir / "trajectory_tum.txt").T_world_cam
        t = summary["timings"]
        row("ours", est, cpu, summary["lost_frames"], t["depth_calls_per_frame"], keyframes=summary["keyframes"],
            pipeline_tracking_wall_ms_per_frame=t["tracking_ms_per_frame"])
    if "open3d" in methods:
        res, cpu = timed(lambda: refs.open3d_rgbd_odometry(images, depths, cam, max_depth, 0.03 * max_depth / 4.0))
        row("open3d", res.T_world_cam, cpu, res.failures, 1.0)
    if "five_point" in methods:
        res, cpu = timed(lambda: refs.five_point_odometry(images, cam, depths, max_depth))
        row("five_point", res.with_depth, cpu, res.failures, 1.0, flips=res.flips)
    if "kiss_icp" in methods:
        try:
            res, cpu = timed(lambda: refs.kiss_icp_odometry(depths, cam, max_depth))
            row("kiss_icp", res.T_world_cam, cpu, res.failures, 1.0)
        except ImportError as err:
            print(f"kiss_icp skipped: {err}")
    return rows


def run_sequence(entry: BenchSequence, data_root: Path, sources: list[str], methods: list[str],
                 max_frames: int | None, out: Path) -> tuple[list[dict], list[str]]:
    """All rows of one sequence, and notes on what did not apply."""
    seq = load(entry, data_root, max_frames)
    notes: list[str] = []
    if seq.gt is None or len(seq) < 3:
        return [], [f"{entry.name}: skipped ({len(seq)} frames, ground truth {'yes' if seq.gt is not None else 'no'})"]
    # The frames as the pipeline tracks them (undistorted with the config's camera section), loaded once.
    first_cfg = _load_config(REPO / entry.config, None, {"mapping": {"enabled": False}})
    pipe = OdometryPipeline(seq, first_cfg, out / entry.name.replace(":", "_").replace("?", "_"), progress=False)
    adjusted = pipe.prepare_camera()
    frames = [adjusted[i] for i in range(len(adjusted))]
    gt = inv_se3(seq.gt.T_world_cam[0]) @ seq.gt.T_world_cam  # world = first camera, as every estimate
    n = len(frames)
    rows: list[dict] = []
    base = {"sequence": entry.name, "depth": "none", "frames": n}
    if "static" in methods:
        res, cpu = timed(lambda: refs.static_poses(n))
        rows.append({**base, "method": "static", **metrics(gt, res.T_world_cam), "lost": 0,
                     "depth_calls_per_frame": 0.0, "cpu_ms_per_frame": 1000.0 * cpu / n})
    if "five_point_rot" in methods:
        res, cpu = timed(lambda: refs.five_point_odometry([f.image for f in frames], adjusted.camera))
        rows.append({**base, "method": "five_point_rot", **metrics(gt, res.rotation_only, rotation_only=True),
                     "lost": res.failures, "flips": res.flips, "depth_calls_per_frame": 0.0,
                     "cpu_ms_per_frame": 1000.0 * cpu / n})
    has_depth = frames[0].depth_m is not None
    for source in sources:
        if source in ("gt", "gt_degraded") and not has_depth:
            notes.append(f"{entry.name}: {source} skipped (no sensor depth; gt_degraded degrades the sensor depth)")
            continue
        print(f"{entry.name} ({n} frames), depth {source} ...", flush=True)
        rows += run_depth_source(entry, adjusted, frames, source, methods, pipe.out_dir / source, gt)
    return rows, notes


def _fmt(v, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table_lines(rows: list[dict]) -> list[str]:
    lines = ["| sequence | depth | method | ATE cm | RPE cm | RPE deg | rot med deg | rot mean deg | "
             "KITTI-short t % | r deg/100m | lost | KF | depth calls/frame | CPU ms/frame |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['sequence']} ({r['frames']}) | {r['depth']} | {r['method']} | {_fmt(r['ate_cm'], 2)} | "
                     f"{_fmt(r['rpe_cm'], 2)} | {_fmt(r['rpe_deg'], 3)} | {_fmt(r['rot_median_deg'], 3)} | "
                     f"{_fmt(r['rot_mean_deg'], 3)} | {_fmt(r['kitti_short_t_pct'], 2)} | "
                     f"{_fmt(r['kitti_short_r_deg_100m'], 2)} | {r['lost']} | {r.get('keyframes', '-')} | "
                     f"{r['depth_calls_per_frame']:.2f} | {r['cpu_ms_per_frame']:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder of the real sequences")
    ap.add_argument("--sequences", nargs="+", default=[e.name for e in SEQUENCES],
                    help="entry names of SEQUENCES or synthetic: URIs")
    ap.add_argument("--depth", nargs="+", default=list(DEPTH_SOURCES), choices=DEPTH_SOURCES)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--max-frames", type=int, default=None, help="first N frames of each sequence")
    ap.add_argument("--out", default="runs/real_sequences")
    args = ap.parse_args(argv)
    data_root, out = Path(args.data), Path(args.out)
    entries = [resolve(s) for s in args.sequences]
    rows, notes = [], []
    for entry in entries:
        if not entry.path.startswith("synthetic:") and not (data_root / entry.path).exists():
            notes.append(f"{entry.name}: skipped ({data_root / entry.path} not found)")
            continue
        r, n = run_sequence(entry, data_root, args.depth, args.methods, args.max_frames, out)
        rows += r
        notes += n
        save(out, rows, notes)  # after every sequence: a long run keeps what it has
    if not rows:
        save(out, rows, notes)
    print(f"wrote {out / 'table.md'}, {out / 'results.json'} and {out / 'results.csv'}")
    return rows


def save(out: Path, rows: list[dict], notes: list[str]) -> None:
    """Print the table and write ``table.md``, ``results.json`` and ``results.csv`` to ``out``."""
    save_table(out, rows, table_lines(rows) + [""] + [f"- {n}" for n in notes])
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(out / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
