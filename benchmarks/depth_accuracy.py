"""Depth accuracy of a model on held-out synthetic seeds, with and without the realism effects.

Test seeds 5000-5009 (used for nothing else: no training, validation or input-size choice reads them),
frames 0/15/29 of each 30-frame sequence, full-size frames (street 1241x376, room 640x480), ``predict``
at the model's default input size, ground truth up to 80 m. Realism (docs/realism.md): the street with
the ``kitti`` preset (global shutter, 2 ms exposure, gain, vignetting, noise), the room with ``phone``
(30 ms rolling shutter, 16 ms blur, gain, vignetting, noise, JPEG 85); neither preset touches the depth.

    python benchmarks/depth_accuracy.py [--weights runs/NAME/model.pt] [--seeds 5000-5009]
        [--out outputs/bench_depth_accuracy]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save_table  # noqa: E402

from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence  # noqa: E402
from mono_metric.depth import Metric3D  # noqa: E402
from mono_metric.eval.depth import depth_metrics  # noqa: E402

TEST_SEEDS = tuple(range(5000, 5010))
FRAMES = (0, 15, 29)
REALISM = {"street": "kitti", "room": "phone"}


def parse_seeds(text: str) -> list[int]:
    """'5000-5009' or '5000,5003' -> seeds."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def evaluate(model: Metric3D, scene: str, realism: str, seeds) -> dict:
    """Mean of per-frame AbsRel / delta1 / RMSE over the test frames of one scene and realism setting."""
    rows = []
    for seed in seeds:
        seq = SyntheticSequence(SyntheticConfig(scene=scene, seed=seed, frames=max(FRAMES) + 1, realism=realism))
        for i in FRAMES:
            f = seq[i]
            pred = model.predict(f.image, f.camera)
            m = depth_metrics(pred.depth_m, f.depth_m, max_depth_m=80.0)
            rows.append({"seed": seed, "frame": i, "abs_rel": m["abs_rel"], "d1": m["d1"], "rmse": m["rmse"]})
    return {"scene": scene, "realism": realism, "frames": len(rows),
            "abs_rel": float(np.mean([r["abs_rel"] for r in rows])), "d1": float(np.mean([r["d1"] for r in rows])),
            "rmse": float(np.mean([r["rmse"] for r in rows])),
            "worst_seed_abs_rel": float(max(np.mean([r["abs_rel"] for r in rows if r["seed"] == s]) for s in seeds)),
            "per_frame": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mono_metric_tiny")
    ap.add_argument("--weights", default=None, help="weights file (default: the model's own)")
    ap.add_argument("--seeds", default="5000-5009")
    ap.add_argument("--label", default=None, help="name of the weights in the table (default: the file)")
    ap.add_argument("--out", default="outputs/bench_depth_accuracy")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    seeds = parse_seeds(args.seeds)
    model = Metric3D.from_pretrained(args.model, weights=args.weights)
    label = args.label or args.weights or f"{args.model} (shipped)"
    t0 = time.perf_counter()
    results = []
    for scene, preset in REALISM.items():
        for realism in (preset, "off"):
            results.append(evaluate(model, scene, realism, seeds))
    lines = [f"{label}; seeds {args.seeds}, frames {'/'.join(map(str, FRAMES))}, full-size frames, depth <= 80 m "
             f"({time.perf_counter() - t0:.0f} s)", "",
             "| scene | realism | frames | AbsRel | delta1 | RMSE (m) | worst seed AbsRel |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['scene']} | {r['realism']} | {r['frames']} | {r['abs_rel']:.3f} | {r['d1']:.3f} | "
                     f"{r['rmse']:.2f} | {r['worst_seed_abs_rel']:.3f} |")
    save_table(args.out, [dict(r, weights=label) for r in results], lines)


if __name__ == "__main__":
    main()
