"""Metric3D ``predict`` speed and peak memory on this machine (random weights: speed only).

Each configuration runs in its own subprocess so peak memory is per model. ViT models run twice: with
the fused attention (``sdpa``, default) and with the plain reference attention; outputs agree to
float32 rounding (tests/test_metric3d.py).

    python benchmarks/depth_speed.py [--models metric3d_vit_small,metric3d_convnext_tiny] [--sizes official,308x532]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _measure(name: str, hw: tuple[int, int] | None, attention: str, repeats: int, device: str) -> dict:
    import numpy as np
    import torch

    from mono_metric import Camera
    from mono_metric.depth import Metric3D

    model = Metric3D.build(name).to(device)
    model.set_attention(attention)
    hw = hw or model.spec.input_hw
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
    return {"model": name, "input": f"{hw[0]}x{hw[1]}", "attention": attention if model.spec.family == "vit" else "-",
            "ms": 1000 * min(times), "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="metric3d_vit_small,metric3d_convnext_tiny,metric3d_convnext_large,"
                                        "metric3d_vit_large")
    ap.add_argument("--sizes", default="official,half",
                    help="'official', 'half' (half each side, rounded to the model's multiple) or HxW")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, size, attention = args.child.split("@")
        print(json.dumps(_measure(name, _size(name, size), attention, args.repeats, args.device)))
        return
    print("| model | input | attention | ms/frame | threads | peak RSS (MB) |\n|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for size in args.sizes.split(","):
            for attention in (("sdpa", "plain") if "vit" in name else ("sdpa",)):
                proc = subprocess.run([sys.executable, __file__, "--child", f"{name}@{size}@{attention}",
                                       "--repeats", str(args.repeats), "--device", args.device],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
                    print(f"| {name} | {size} | {attention} | failed: {lines[-1]} | | |", flush=True)
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"| {r['model']} | {r['input']} | {r['attention']} | {r['ms']:.0f} | {r['threads']} | "
                      f"{r['peak_rss_mb']:.0f} |", flush=True)


def _size(name: str, size: str) -> tuple[int, int] | None:
    from mono_metric.depth import MODEL_SPECS

    spec = MODEL_SPECS[name]
    if size == "official":
        return None
    if size == "half":
        m = spec.input_multiple
        return tuple(max(m, round(v / 2 / m) * m) for v in spec.input_hw)
    return tuple(int(v) for v in size.split("x"))


if __name__ == "__main__":
    main()
