"""Reduced-resolution depth: speed against accuracy, embedded model on held-out synthetic frames.

The network input is scaled down (``predict(..., input_hw=...)``); the canonical scale follows the
resize, so the output stays metric. Frames: 9 per scene (seeds 777-779, frames 0/15/29), GT up to 80 m.
Choose an input size on other seeds before reading the held-out ones; ``--pixels`` rows size each
image to about that many pixels, as ``ModelSpec.input_pixels`` does (the embedded model's 80,000 came
from ``--sizes default --pixels 70000,80000,90000,100000 --seeds 551,552,553,554,558,559``).

    python benchmarks/reduced_resolution.py [--sizes default,192x640,160x544,128x416,96x320] [--pixels N,...]
        [--seeds 777,778,779]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.depth import Metric3D
from mono_metric.depth.canonical import input_hw_for_pixels
from mono_metric.eval.depth import depth_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="default,192x640,160x544,128x416,96x320",
                    help="HxW inputs; 'default' is the model's own per-image choice")
    ap.add_argument("--model", default="mono_metric_tiny")
    ap.add_argument("--weights", default=None, help="weights file (default: the model's own)")
    ap.add_argument("--pixels", default="", help="also rows sized per image to about N pixels each")
    ap.add_argument("--seeds", default="777,778,779")
    args = ap.parse_args()
    model = Metric3D.from_pretrained(args.model, weights=args.weights)
    seeds = [int(s) for s in args.seeds.split(",")]
    frames = {scene: [SyntheticSequence(SyntheticConfig(scene=scene, seed=s, frames=30))[i]
                      for s in seeds for i in (0, 15, 29)] for scene in ("street", "room")}
    print(f"{args.model}, {torch.get_num_threads()} threads")
    print("| input | street AbsRel | street delta1 | room AbsRel | room delta1 | ms/frame (street) |")
    print("|---|---|---|---|---|---|")
    def input_for(size: str, image_hw: tuple[int, int]) -> tuple[int, int]:
        if size == "default":
            return model.default_input_hw(image_hw)
        if size.endswith("px"):
            return input_hw_for_pixels(image_hw, int(size[:-2]), model.spec.input_multiple)
        return tuple(int(v) for v in size.split("x"))

    for size in [s for s in args.sizes.split(",") if s] + [f"{p}px" for p in args.pixels.split(",") if p]:
        row, used = {}, []
        for scene, fs in frames.items():
            used.append(input_for(size, fs[0].image.shape[:2]))
            ms = []
            m = []
            for f in fs:
                t = time.perf_counter()
                pred = model.predict(f.image, f.camera, input_hw=used[-1])
                ms.append((time.perf_counter() - t) * 1000)
                m.append(depth_metrics(pred.depth_m, f.depth_m, max_depth_m=80.0))
            row[scene] = (np.mean([x["abs_rel"] for x in m]), np.mean([x["d1"] for x in m]), np.median(ms))
        label = " / ".join(f"{h}x{w}" for h, w in dict.fromkeys(used))
        label += {"default": " (default)"}.get(size, f" ({size})" if size.endswith("px") else "")
        print(f"| {label} | {row['street'][0]:.3f} | {row['street'][1]:.3f} | {row['room'][0]:.3f} | "
              f"{row['room'][1]:.3f} | {row['street'][2]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
