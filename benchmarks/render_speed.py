"""Synthetic-world rendering speed on this machine: prints a table of ms per frame, effects off and on.

CPU time (``time.process_time``) per frame, so other load on the machine does not count; rows with a
realism preset add its camera/depth-sensor effects (docs/realism.md) to the same scene.

    python benchmarks/render_speed.py [--frames 10] [--out runs/render_speed]
"""
from __future__ import annotations

import argparse
import time

from common import save_table
from mono_metric.datasets import SyntheticConfig, SyntheticSequence

CASES = (("street", (1241, 376), "off"), ("street", (1241, 376), "kitti"), ("room", (640, 480), "off"),
         ("room", (640, 480), "phone"), ("room", (960, 540), "off"), ("handheld", (640, 480), "off"),
         ("handheld", (640, 480), "tum"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--out", default="runs/render_speed")
    args = ap.parse_args()
    rows = []
    for scene, size, realism in CASES:
        seq = SyntheticSequence(SyntheticConfig(scene=scene, seed=0, frames=args.frames + 1, width=size[0],
                                                height=size[1], realism=realism))
        seq[0]  # warm-up: builds the ray cache
        t0 = time.process_time()
        for i in range(1, args.frames + 1):
            seq[i]
        ms = (time.process_time() - t0) / args.frames * 1000.0
        rows.append(dict(scene=scene, resolution=f"{size[0]}x{size[1]}", realism=realism,
                         triangles=len(seq.scene.triangles), cpu_ms_per_frame=ms))
    lines = ["| scene | resolution | realism | triangles | CPU ms/frame (RGB + depth) |", "|---|---|---|---|---|"]
    lines += [f"| {r['scene']} | {r['resolution']} | {r['realism']} | {r['triangles']} | {r['cpu_ms_per_frame']:.0f} |"
              for r in rows]
    save_table(args.out, rows, lines)


if __name__ == "__main__":
    main()
