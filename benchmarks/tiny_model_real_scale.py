"""How far off is the embedded ``mono_metric_tiny`` (trained on the synthetic world only) on real images?

For each shared real sequence: the odometry with the embedded model (``OdometryPipeline``, the dataset's
config with ``depth.source: mono_metric_tiny``), and its length relative to the ground truth (the
inverse of the Sim(3) alignment scale: 0.5 = half the true length). On TUM fr1_xyz also the median
ratio of predicted to sensor depth over every 10th frame (pixels valid in both). The numbers are
printed by the CLI when the embedded model runs on real images
(:data:`mono_metric.depth.sources.TINY_REAL_WARNING`).

    python benchmarks/tiny_model_real_scale.py [--data ../shared/data] [--out outputs/bench_tiny_real]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import save_table
from mono_metric import OdometryPipeline, load_config, load_sequence
from mono_metric.depth import Metric3D

ROOT = Path(__file__).resolve().parents[1]
SEQUENCES = (  # (name, folder, loader options, config)
    ("KITTI 00 (frames 0-139)", "kitti_odometry_00", {}, "kitti.yaml"),
    ("KITTI 06 (frames 0-50)", "kitti_odometry", {}, "kitti.yaml"),
    ("TUM fr1_xyz (230 frames)", "tum_fr1_xyz", {}, "tum_fr1.yaml"),
)


def depth_ratio(seq, model, every: int = 10) -> float:
    """Median over frames of median(predicted / sensor depth) on pixels valid in both."""
    ratios = []
    for i in range(0, len(seq), every):
        f = seq[i]
        pred = model.predict(f.image, f.camera).depth_m
        ok = (f.depth_m > 0.1) & (pred > 0) & np.isfinite(pred)
        ratios.append(float(np.median(pred[ok] / f.depth_m[ok])))
    return float(np.median(ratios))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default="outputs/bench_tiny_real")
    args = p.parse_args()
    rows = []
    for name, folder, opts, config in SEQUENCES:
        seq = load_sequence(Path(args.data) / folder, **opts)
        cfg = load_config(ROOT / "configs" / config, {"depth": {"source": "mono_metric_tiny", "input_hw": None}})
        with tempfile.TemporaryDirectory() as tmp:
            summary = OdometryPipeline(seq, cfg, tmp, progress=False).run()
        m = summary["metrics"]
        row = {"sequence": name, "frames": m["frames"], "path_m": m["path_length_m"],
               "length_factor": 1.0 / m["ate"]["sim3_scale"], "ate_m": m["ate"]["rmse_m"],
               "lost": summary["lost_frames"]}
        if seq[0].depth_m is not None:
            row["depth_ratio"] = depth_ratio(seq, Metric3D.from_pretrained("mono_metric_tiny"))
        rows.append(row)
        print(row, flush=True)
    lines = ["| sequence | frames | true path (m) | estimate / true length | ATE (m) | lost | median depth pred/sensor |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['depth_ratio']:.2f}" if "depth_ratio" in r else "-"
        lines.append(f"| {r['sequence']} | {r['frames']} | {r['path_m']:.2f} | {r['length_factor']:.2f}x | "
                     f"{r['ate_m']:.3f} | {r['lost']} | {ratio} |")
    save_table(args.out, rows, lines)


if __name__ == "__main__":
    main()
