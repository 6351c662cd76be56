"""Reduced-resolution depth: speed against accuracy, embedded model on held-out synthetic frames.

The network input is scaled down (``predict(..., input_hw=...)``); the canonical scale follows the
resize, so the output stays metric. Frames: 9 per scene (seeds 777-779, frames 0/15/29), GT up to 80 m.

    python benchmarks/reduced_resolution.py [--sizes 192x640,160x544,128x416,96x320]
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
    ap.add_argument("--sizes", default="192x640,160x544,128x416,96x320")
    ap.add_argument("--model", default="mono_metric_tiny")
    args = ap.parse_args()
    model = Metric3D.from_pretrained(args.model)
    frames = {scene: [SyntheticSequence(SyntheticConfig(scene=scene, seed=s, frames=30))[i]
                      for s in (777, 778, 779) for i in (0, 15, 29)] for scene in ("street", "room")}
    print(f"{args.model}, {torch.get_num_threads()} threads")
    print("| input | street AbsRel | street delta1 | room AbsRel | room delta1 | ms/frame (street) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        hw = tuple(int(v) for v in size.split("x"))
        row = {}
        for scene, fs in frames.items():
            ms = []
            m = []
            for f in fs:
                t = time.perf_counter()
                pred = model.predict(f.image, f.camera, input_hw=hw)
                ms.append((time.perf_counter() - t) * 1000)
                m.append(depth_metrics(pred.depth_m, f.depth_m, max_depth_m=80.0))
            row[scene] = (np.mean([x["abs_rel"] for x in m]), np.mean([x["d1"] for x in m]), np.median(ms))
        print(f"| {hw[0]}x{hw[1]} | {row['street'][0]:.3f} | {row['street'][1]:.3f} | {row['room'][0]:.3f} | "
              f"{row['room'][1]:.3f} | {row['street'][2]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
