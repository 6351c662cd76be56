"""Synthetic-world rendering speed on this machine: prints a table of ms per frame.

    python benchmarks/render_speed.py [--frames 10]
"""
from __future__ import annotations

import argparse
import time

from mono_metric.datasets import SyntheticConfig, SyntheticSequence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=10)
    args = ap.parse_args()
    rows = []
    for scene, size in (("street", (1241, 376)), ("room", (640, 480)), ("room", (960, 540))):
        seq = SyntheticSequence(SyntheticConfig(scene=scene, seed=0, frames=args.frames, width=size[0], height=size[1]))
        seq[0]  # warm-up: builds the ray cache
        t0 = time.perf_counter()
        for i in range(args.frames):
            seq[i]
        ms = (time.perf_counter() - t0) / args.frames * 1000.0
        rows.append((scene, f"{size[0]}x{size[1]}", len(seq.scene.triangles), ms))
    print("| scene | resolution | triangles | ms/frame (RGB + depth) |\n|---|---|---|---|")
    for scene, res, tris, ms in rows:
        print(f"| {scene} | {res} | {tris} | {ms:.0f} |")


if __name__ == "__main__":
    main()
