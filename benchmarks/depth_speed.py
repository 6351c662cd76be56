"""Metric3D ``predict`` speed and peak memory on this machine (random weights: speed only).

Each configuration runs in its own subprocess so peak memory is per model. ViT models run twice: with
the fused attention (``sdpa``, default) and with the plain reference attention; outputs agree to
float32 rounding (tests/test_metric3d.py).

    python benchmarks/depth_speed.py [--models metric3d_vit_small,metric3d_convnext_tiny] [--sizes official,308x532]
        [--official-src PATH]

``ms/frame`` times ``predict`` (pre/post-processing included). With ``--official-src`` (a checkout of
github.com/YvanYin/Metric3D) the ConvNeXt rows also time the network alone, ours against the official
network built from that checkout (benchmarks/official_metric3d.py) with our random weights loaded
strictly, on the same input tensor, alternating the two, ``--repeats`` times each: medians, their ratio,
and the largest depth difference between the two outputs.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _measure(name: str, hw: tuple[int, int] | None, attention: str, repeats: int, device: str,
             official_src: str | None = None) -> dict:
    import statistics

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
    row = {"model": name, "input": f"{hw[0]}x{hw[1]}", "attention": attention if model.spec.family == "vit" else "-",
           "ms": 1000 * min(times), "threads": torch.get_num_threads(),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if official_src is not None and device == "cpu":
        row.update(_versus_official(model, official_src, hw, repeats, statistics, torch))
    return row


def _versus_official(model, official_src: str, hw: tuple[int, int], repeats: int, statistics, torch) -> dict:
    """Network-only medians of ours and the official network on one input (same weights), alternating."""
    sys.path.insert(0, str(Path(__file__).parent))
    from official_metric3d import OFFICIAL_CONVNEXT, build_official

    if model.name not in OFFICIAL_CONVNEXT:
        return {}
    official = build_official(official_src, model.name)
    official.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn((1, 3, *hw), generator=torch.Generator().manual_seed(0))
    times = {"ours": [], "official": []}
    cpu = {"ours": [], "official": []}
    with torch.inference_mode():
        outs = {"ours": model(x), "official": official(x)}  # warm-up
        for _ in range(repeats):
            for key, net in (("ours", model), ("official", official)):
                t0, c0 = time.perf_counter(), time.process_time()
                net(x)
                times[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
    ours_ms, official_ms = (1000 * statistics.median(times[k]) for k in ("ours", "official"))
    cpu_ratio = statistics.median(cpu["ours"]) / statistics.median(cpu["official"])
    diff = (outs["ours"]["depth"] - outs["official"]["depth"]).abs().max().item()
    return {"net_ms": ours_ms, "official_ms": official_ms, "ratio": ours_ms / official_ms, "cpu_ratio": cpu_ratio,
            "max_depth_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="metric3d_vit_small,metric3d_convnext_tiny,metric3d_convnext_large,"
                                        "metric3d_vit_large")
    ap.add_argument("--sizes", default="official,half",
                    help="'official', 'half' (half each side, rounded to the model's multiple) or HxW")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--official-src", metavar="PATH",
                    help="checkout of github.com/YvanYin/Metric3D: also time the official ConvNeXt networks (CPU)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each measurement (default 2)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        name, size, attention = args.child.split("@")
        print(json.dumps(_measure(name, _size(name, size), attention, args.repeats, args.device, args.official_src)))
        return
    official = args.official_src is not None and args.device == "cpu"
    if not official:
        print("(official-code columns omitted: " + ("--official-src PATH not given" if args.official_src is None
                                                   else "the official comparison runs on the CPU only") + ")")
    extra = (" network ms (ours) | official network ms | ours/official | same, CPU time | max depth diff |"
             if official else "")
    print(f"| model | input | attention | ms/frame | threads | peak RSS (MB) |{extra}\n"
          f"|---|---|---|---|---|---|{'---|---|---|---|---|' if official else ''}")
    for name in args.models.split(","):
        for size in args.sizes.split(","):
            for attention in (("sdpa", "plain") if "vit" in name else ("sdpa",)):
                cmd = [sys.executable, __file__, "--child", f"{name}@{size}@{attention}", "--repeats",
                       str(args.repeats), "--device", args.device, "--threads", str(args.threads)]
                proc = subprocess.run(cmd + (["--official-src", args.official_src] if official else []),
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
                    print(f"| {name} | {size} | {attention} | failed: {lines[-1]} | | |", flush=True)
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                cells = ""
                if official:
                    cells = (f" {r['net_ms']:.0f} | {r['official_ms']:.0f} | {r['ratio']:.2f} | {r['cpu_ratio']:.2f} | "
                             f"{r['max_depth_diff']:.1e} |" if "net_ms" in r
                             else " - | - | - | - | - (official loader: ConvNeXt models only) |")
                print(f"| {r['model']} | {r['input']} | {r['attention']} | {r['ms']:.0f} | {r['threads']} | "
                      f"{r['peak_rss_mb']:.0f} |{cells}", flush=True)


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
