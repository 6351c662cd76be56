"""Reduced-resolution depth: speed against accuracy, embedded model on held-out synthetic frames.

The network input is scaled down (``predict(..., input_hw=...)``); the canonical scale follows the
resize, so the output stays metric. Frames: 9 per scene (seeds 777-779, frames 0/15/29), GT up to 80 m.
Choose an input size on other seeds (e.g. ``--seeds 555,556,557``) before reading the held-out ones.

    python benchmarks/reduced_resolution.py [--sizes default,192x640,160x544,128x416,96x320] [--seeds 777,778,779]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.depth import Metric3D
from mono_metric.eval.depth import depth_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="default,192x640,160x544,128x416,96x320",
                    help="HxW inputs; 'default' is the model's own per-image choice")
    ap.add_argument("--model", default="mono_metric_tiny")
    ap.add_argument("--weights", default=None, help="weights file (default: the model's own)")
    ap.add_argument("--seeds", default="777,778,779")
    args = ap.parse_args()
    model = Metric3D.from_pretrained(args.model, weights=args.weights)
    seeds = [int(s) for s in args.seeds.split(",")]
    frames = {scene: [SyntheticSequence(SyntheticConfig(scene=scene, seed=s, frames=30))[i]
                      for s in seeds for i in (0, 15, 29)] for scene in ("street", "room")}
    print(f"{args.model}, {torch.get_num_threads()} threads")
    print("| input | street AbsRel | street delta1 | room AbsRel | room delta1 | ms/frame (street) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        hw = None if size == "default" else tuple(int(v) for v in size.split("x"))
        row, used = {}, []
        for scene, fs in frames.items():
            used.append(hw or model.default_input_hw(fs[0].image.shape[:2]))
            ms = []
            m = []
            for f in fs:
                t = time.perf_counter()
                pred = model.predict(f.image, f.camera, input_hw=hw)
                ms.append((time.perf_counter() - t) * 1000)
                m.append(depth_metrics(pred.depth_m, f.depth_m, max_depth_m=80.0))
            row[scene] = (np.mean([x["abs_rel"] for x in m]), np.mean([x["d1"] for x in m]), np.median(ms))
        label = " / ".join(f"{h}x{w}" for h, w in dict.fromkeys(used)) + (" (default)" if hw is None else "")
        print(f"| {label} | {row['street'][0]:.3f} | {row['street'][1]:.3f} | {row['room'][0]:.3f} | "
              f"{row['room'][1]:.3f} | {row['street'][2]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
