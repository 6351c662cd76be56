"""Black-frame relocalisation trials: relocalising the first re-tracked ('reinitialised') frame too (current) vs
only 'lost' frames.

The loss is :data:`loop_closure.RELOC_TRIALS`' 'black' kind (5 black frames on room_loop, then the sequence goes
on). The 'lost only' variant wraps ``Odometry._relocalise`` (there is no setting for it). Per seed and variant:
status and position error of frames 0, 5 and 9 after the loss, against the truth and against the map (its
final estimate of the last frame before the loss, moved by the true motion since).

    python benchmarks/reloc_reinit_ab.py [--seeds 6,7,8,9,10] [--out runs/reloc_reinit_ab]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import loop_closure as lc
from common import save_table
from mono_metric.datasets.synthetic import SyntheticSequence
from mono_metric.geometry import inv_se3
from mono_metric.odometry import Odometry

CURRENT = Odometry._relocalise


def _lost_only(self, gray, result):
    if result.status == "lost":
        CURRENT(self, gray, result)


def rows_for(seed: int) -> list[dict]:
    seq = lc.Rendered(SyntheticSequence(f"synthetic:{lc.SPECS['room_loop'][0]}&seed={seed}"))
    kind, cut_f, black, _ = next(t for t in lc.RELOC_TRIALS if t[0] == "black")
    cut = int(round(cut_f * int(len(seq) / 1.2)))
    resume = cut + black
    frames = seq.frames[:cut] + [None] * black + seq.frames[resume:resume + 15]
    gt, rows = seq.gt.T_world_cam, []
    for variant, method in (("lost+reinitialised", CURRENT), ("lost only", _lost_only)):
        Odometry._relocalise = method
        try:
            odo, res, _ = lc.run_odometry(seq, "room_loop", True, frames)
        finally:
            Odometry._relocalise = CURRENT
        est = odo.trajectory().T_world_cam
        row = {"seed": seed, "variant": variant}
        for j in (0, 5, 9):
            T = res[cut + black + j].T_world_cam
            T_true = inv_se3(gt[cut - 1]) @ gt[resume + j]
            row[f"status{j}"] = res[cut + black + j].status
            row[f"err_gt{j}_cm"] = 100.0 * float(np.linalg.norm((gt[0] @ T)[:3, 3] - gt[resume + j][:3, 3]))
            row[f"err_map{j}_cm"] = 100.0 * float(np.linalg.norm((inv_se3(est[cut - 1]) @ T)[:3, 3] - T_true[:3, 3]))
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="6,7,8,9,10")
    ap.add_argument("--out", default="runs/reloc_reinit_ab")
    args = ap.parse_args()
    rows = [r for s in args.seeds.split(",") for r in rows_for(int(s))]
    save_table(Path(args.out), rows, lc._lines(rows))


if __name__ == "__main__":
    main()
