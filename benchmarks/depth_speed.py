"""Metric3D forward speed and peak memory on this machine (random weights: speed only).

Each configuration runs in its own subprocess so peak memory is per model.

    python benchmarks/depth_speed.py [--models metric3d_convnext_tiny,metric3d_convnext_large] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _measure(name: str, hw: tuple[int, int], repeats: int, device: str) -> dict:
    import numpy as np
    import torch

    from mono_metric import Camera
    from mono_metric.depth import Metric3D

    model = Metric3D.build(name).to(device)
    H, W = 375, 1242
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    cam = Camera(707.0, 707.0, 604.0, 180.0, W, H)
    model.predict(img, cam, input_hw=hw)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(img, cam, input_hw=hw)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"model": name, "input": f"{hw[0]}x{hw[1]}", "ms": 1000 * min(times), "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="metric3d_convnext_tiny,metric3d_convnext_large")
    ap.add_argument("--sizes", default="544x1216,288x640", help="network inputs HxW (multiples of 32)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, size = args.child.split("@")
        hw = tuple(int(v) for v in size.split("x"))
        print(json.dumps(_measure(name, hw, args.repeats, args.device)))
        return
    print("| model | input | ms/frame | threads | peak RSS (MB) |\n|---|---|---|---|---|")
    for name in args.models.split(","):
        for size in args.sizes.split(","):
            proc = subprocess.run([sys.executable, __file__, "--child", f"{name}@{size}", "--repeats",
                                   str(args.repeats), "--device", args.device], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {name} | {size} | failed: {proc.stderr.strip().splitlines()[-1]} | | |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {r['model']} | {r['input']} | {r['ms']:.0f} | {r['threads']} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
