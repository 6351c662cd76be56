"""Each loop edge's measurement against the truth: the back-end on, degraded depth, one loop sequence per seed.

Per verified loop edge kept in the map after ``Odometry.finish()``: the two keyframes' frames, the true
baseline between them (m) and the error of the measured relative pose ``T_a_b`` against the true one (cm, deg).
Shows whether the loop measurements are better than the drift they correct (compare with the ATE rows of
``loop_closure.py --parts loops`` on the same scene and seeds).

    python benchmarks/loop_edge_errors.py [--scene room_loop] [--seeds 2,3] [--out runs/loop_edge_errors]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import loop_closure as lc
from common import save_table
from mono_metric.datasets.synthetic import SyntheticSequence
from mono_metric.geometry import inv_se3, rotation_angle_rad


def edge_rows(scene: str, seed: int) -> list[dict]:
    seq = lc.Rendered(SyntheticSequence(f"synthetic:{lc.SPECS[scene][0]}&seed={seed}"))
    odo, _, _ = lc.run_odometry(seq, scene, True)
    gt, kfs = seq.gt.T_world_cam, odo.map.keyframes
    rows = []
    for e in odo.map.loops:
        fa, fb = kfs[e.a].index, kfs[e.b].index
        T_true = inv_se3(gt[fa]) @ gt[fb]
        D = inv_se3(T_true) @ e.T_a_b
        rows.append({"scene": scene, "seed": seed, "keyframes": f"{e.a}->{e.b}", "frames": f"{fa}->{fb}",
                     "baseline_m": float(np.linalg.norm(T_true[:3, 3])), "err_cm": 100.0 * float(np.linalg.norm(D[:3, 3])),
                     "err_deg": float(np.degrees(rotation_angle_rad(D[:3, :3])))})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scene", default="room_loop", choices=sorted(lc.SPECS))
    ap.add_argument("--seeds", default="2,3")
    ap.add_argument("--out", default="runs/loop_edge_errors")
    args = ap.parse_args()
    rows = [r for s in args.seeds.split(",") for r in edge_rows(args.scene, int(s))]
    save_table(Path(args.out), rows, lc._lines(rows))


if __name__ == "__main__":
    main()
