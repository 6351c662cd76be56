"""Focal-length self-calibration on synthetic rooms whose focal length the method is not told.

For each horizontal FOV a room sequence is rendered; the focal length is estimated from its first
``--calib-frames`` frames (``mono_metric.calibrate.estimate_focal``, what ``camera.self_calibrate``
runs) and the odometry is run with the estimate. Two depth sources show what the focal error does to
the metric scale: 'canonical oracle' is the exact depth rescaled by f_est / f_true (how a perfect
canonical-camera network answers a focal length), and the embedded network (given the estimated and,
for reference, the true focal length). Scale error = |1 - s| of the Sim(3) alignment.

    python benchmarks/self_calibration.py [--fovs 45,60,75,90] [--frames 150] [--seed 31]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

from common import save_table
from mono_metric import OdometryPipeline, load_config
from mono_metric.calibrate import estimate_focal
from mono_metric.datasets.base import Sequence
from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence


class Rendered(Sequence):
    """Frames rendered once; ``camera`` replaced and exact depth rescaled by ``depth_scale``."""

    def __init__(self, frames, seq: SyntheticSequence, camera=None, depth_scale: float = 1.0):
        self.name, self.timestamps, self.gt = seq.name, seq.timestamps, seq.gt
        self.camera, self.frames, self.depth_scale = camera or seq.camera, frames, depth_scale

    def _load(self, index: int):
        f = self.frames[index]
        return replace(f, camera=self.camera, depth_m=f.depth_m * self.depth_scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fovs", default="45,60,75,90")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--calib-frames", type=int, default=120)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--out", default="runs/self_calibration")
    args = ap.parse_args()
    rows = []
    for fov in (float(v) for v in args.fovs.split(",")):
        fx = 0.5 * 640 / math.tan(math.radians(fov) / 2)
        seq = SyntheticSequence(SyntheticConfig(scene="room", seed=args.seed, frames=args.frames, fx=fx))
        frames = [seq[i] for i in range(len(seq))]
        t0 = time.perf_counter()
        est = estimate_focal([f.image for f in frames[:args.calib_frames]])
        calib_s = time.perf_counter() - t0
        row = {"hfov_deg": fov, "f_true_px": fx, "f_est_px": est.f_px, "sigma_px": est.sigma_px,
               "f_err_pct": 100 * (est.f_px / fx - 1), "pairs": est.pairs_used, "calib_s": calib_s}
        cam = replace(seq.camera, fx=est.f_px, fy=est.f_px)
        runs = {"oracle": (Rendered(frames, seq, cam, est.f_px / fx), "gt"),
                "tiny_est": (Rendered(frames, seq, cam), "mono_metric_tiny"),
                "tiny_true": (Rendered(frames, seq), "mono_metric_tiny")}
        for key, (sequence, source) in runs.items():
            cfg = load_config("configs/synthetic_room.yaml", {"depth": {"source": source}, "mapping": {"enabled": False}})
            s = OdometryPipeline(sequence, cfg, Path(args.out) / f"fov{fov:g}_{key}", progress=False).run()
            row[f"scale_err_{key}_pct"] = 100 * s["metrics"]["ate"]["scale_error"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = ["| HFOV (deg) | f true (px) | f estimated (px) | error % | sigma (px) | pairs | calibration (s) "
             "| scale err %, canonical oracle | scale err %, embedded model, f estimated | same, f true |",
             "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['hfov_deg']:g} | {r['f_true_px']:.1f} | {r['f_est_px']:.1f} | {r['f_err_pct']:+.2f} | "
                     f"{r['sigma_px']:.1f} | {r['pairs']} | {r['calib_s']:.1f} | {r['scale_err_oracle_pct']:.2f} | "
                     f"{r['scale_err_tiny_est_pct']:.2f} | {r['scale_err_tiny_true_pct']:.2f} |")
    save_table(args.out, rows, lines)


if __name__ == "__main__":
    main()
