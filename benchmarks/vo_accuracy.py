"""Metric VO accuracy and speed on the synthetic world: a table per scene, seed and depth source.

Each sequence is rendered once and run with exact depth ('gt'), depth degraded like a monocular
network ('gt_degraded', ~6 % AbsRel: smooth scale field, noise, holes) and the embedded network
('mono_metric_tiny'). Reports KITTI-style t_err / r_err (100-800 m segments for the street, the
'kitti_short' 5-40 m variant for both), ATE (SE(3), no scale), the Sim(3) scale error, tracking fps
without the network and depth-network calls per frame. ``--draws N`` runs 'gt_degraded' with N noise
draws per sequence (``depth.degrade_seed`` 0..N-1): the room's short t_err moves by a few tenths of a
percent between draws, so means over draws say more than one run.

    python benchmarks/vo_accuracy.py [--frames 300] [--seeds 11,12,13] [--scenes street,room] [--draws 1]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import save_table
from mono_metric import OdometryPipeline, load_config
from mono_metric.datasets.base import Sequence
from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence

SOURCES = ("gt", "gt_degraded", "mono_metric_tiny")


class Rendered(Sequence):
    """A synthetic sequence rendered once and kept in memory (several runs share it)."""

    def __init__(self, seq: SyntheticSequence):
        self.name, self.camera, self.timestamps, self.gt = seq.name, seq.camera, seq.timestamps, seq.gt
        self.frames = [seq[i] for i in range(len(seq))]

    def _load(self, index: int):
        return self.frames[index]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seeds", default="11,12,13")
    ap.add_argument("--scenes", default="street,room")
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--out", default="runs/vo_accuracy")
    ap.add_argument("--draws", type=int, default=1, help="noise draws of gt_degraded per sequence")
    args = ap.parse_args()
    if args.draws < 1:
        ap.error("--draws must be at least 1")
    rows = []
    for scene in args.scenes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            seq = Rendered(SyntheticSequence(SyntheticConfig(scene=scene, seed=seed, frames=args.frames)))
            for source, draw in ((src, d) for src in args.sources.split(",")
                                 for d in range(args.draws if src == "gt_degraded" else 1)):
                cfg = load_config(f"configs/synthetic_{scene}.yaml", {"depth": {"source": source, "degrade_seed": draw},
                                                                      "mapping": {"enabled": False}})
                name = f"{scene}_{seed}_{source}"
                if args.draws > 1 and source == "gt_degraded":
                    name += f"_draw{draw}"
                s = OdometryPipeline(seq, cfg, Path(args.out) / name, progress=False).run()
                m, t = s["metrics"], s["timings"]
                row = {"scene": scene, "seed": seed, "depth": source, "draw": draw, "path_m": m["path_length_m"],
                       "t_err_pct": m["kitti"]["t_err_pct"] if m["kitti"]["segments"] else float("nan"),
                       "r_err_deg_100m": m["kitti"]["r_err_deg_per_100m"] if m["kitti"]["segments"] else float("nan"),
                       "short_t_err_pct": m["kitti_short"]["t_err_pct"], "ate_m": m["ate"]["rmse_m"],
                       "scale_err_pct": 100 * m["ate"]["scale_error"], "lost": s["lost_frames"],
                       "tracking_fps": t["tracking_fps"], "depth_calls_per_frame": t["depth_calls_per_frame"]}
                rows.append(row)
                print(json.dumps(row))
    head = ("| scene | seed | depth | draw | path (m) | t_err % | r_err deg/100m | short t_err % | ATE (m) "
            "| scale err % | lost | tracking fps | depth calls/frame |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['seed']} | {r['depth']} | {r['draw']} | {r['path_m']:.1f} | "
                     f"{r['t_err_pct']:.2f} | "
                     f"{r['r_err_deg_100m']:.3f} | {r['short_t_err_pct']:.2f} | {r['ate_m']:.3f} | "
                     f"{r['scale_err_pct']:.2f} | {r['lost']} | {r['tracking_fps']:.1f} | "
                     f"{r['depth_calls_per_frame']:.2f} |")
    lines.append("")
    lines.append("| scene | depth | runs | mean t_err % | mean r_err deg/100m | mean short t_err % | mean ATE (m) "
                 "| mean scale err % | depth calls/frame |")
    lines.append("|" + "---|" * 9)
    for scene in args.scenes.split(","):
        for source in args.sources.split(","):
            sel = [r for r in rows if r["scene"] == scene and r["depth"] == source]
            if sel:
                mean = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if isinstance(sel[0][k], float)}
                lines.append(f"| {scene} | {source} | {len(sel)} | {mean['t_err_pct']:.2f} | "
                             f"{mean['r_err_deg_100m']:.3f} | "
                             f"{mean['short_t_err_pct']:.2f} | {mean['ate_m']:.3f} | {mean['scale_err_pct']:.2f} | "
                             f"{mean['depth_calls_per_frame']:.2f} |")
    save_table(args.out, rows, lines)


if __name__ == "__main__":
    main()
