"""Where the SLAM back-end's time goes: cProfile of ``Backend`` on one loop sequence (degraded depth).

Only the back-end's entry points (``on_keyframe``, ``finish``, ``relocalise``) are profiled; the table lists
the functions with the most own time. CPU is process time (other jobs on the machine do not count).

    python benchmarks/backend_profile.py [--scene block] [--seed 1] [--pose-graph open3d] [--out runs/backend_profile]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from pathlib import Path

import torch

import loop_closure as lc
from common import save_table
from mono_metric.backend import Backend
from mono_metric.datasets.synthetic import SyntheticSequence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scene", default="block", choices=sorted(lc.SPECS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pose-graph", default="open3d")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", default="runs/backend_profile")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seq = lc.Rendered(SyntheticSequence(f"synthetic:{lc.SPECS[args.scene][0]}&seed={args.seed}"))
    prof = cProfile.Profile()
    for name in ("on_keyframe", "finish", "relocalise"):
        method = getattr(Backend, name)

        def wrapped(self, *a, _method=method, **k):
            prof.enable()
            try:
                return _method(self, *a, **k)
            finally:
                prof.disable()

        setattr(Backend, name, wrapped)
    odo, _, cpu = lc.run_odometry(seq, args.scene, True, pose_graph=args.pose_graph)
    st = odo.backend.stats
    print(f"CPU {cpu:.2f} s: back-end {st['cpu_s']:.2f} s (under the profiler), tracking {cpu - st['cpu_s']:.2f} s, "
          f"closures {st['closures']}")
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = sorted(({"function": f"{Path(f).name}:{line}({fn})", "calls": int(nc), "own_s": round(tt, 3),
                    "cumulative_s": round(ct, 3)} for (f, line, fn), (_, nc, tt, ct, _) in stats.stats.items()),
                  key=lambda r: -r["own_s"])[:args.top]
    lines = ["| function | calls | own s | cumulative s |", "|---|---|---|---|"] + [
        f"| {r['function']} | {r['calls']} | {r['own_s']} | {r['cumulative_s']} |" for r in rows]
    save_table(Path(args.out), rows, lines)


if __name__ == "__main__":
    main()
