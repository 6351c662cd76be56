"""VO on the synthetic world with realistic camera/depth-sensor effects on and off (same seeds, same script).

Each scene is run without effects ('off') and with its realism preset: the hand-held sweep with 'tum'
(Kinect-like camera and depth; also 'tum_exact_depth': the same images with exact depth), the room with
'phone' (rolling shutter, blur, JPEG), the street with 'kitti' (global shutter, short exposure). Depth
sources 'gt' (the sequence's depth: exact, or Kinect-like with the 'tum' preset) and 'gt_degraded'
(that depth degraded like a monocular network). Settings: configs/synthetic_SCENE.yaml, mapping off.

    python benchmarks/realism_vo.py [--scenes handheld,room,street] [--seeds 11,12] [--frames 300]
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from common import save_table
from vo_accuracy import Rendered
from mono_metric import OdometryPipeline, load_config
from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.datasets.synthetic.realism import realism_from_options

PRESET = {"handheld": "tum", "room": "phone", "street": "kitti"}
_DEPTH_KEYS = dict(depth_noise=0.0, depth_disparity_step_px=0.0, depth_min_m=0.0, depth_max_m=0.0, hole_edge_px=0,
                   hole_dark_level=0.0, hole_dropout=0.0)


def variants(scene: str) -> list[tuple[str, object]]:
    """(label, realism) pairs run for ``scene``."""
    out = [("off", realism_from_options("off", {}, "benchmark")),
           (PRESET[scene], realism_from_options(PRESET[scene], {}, "benchmark"))]
    if scene == "handheld":
        out.insert(1, ("tum_exact_depth", replace(out[1][1], **_DEPTH_KEYS)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="handheld,room,street")
    ap.add_argument("--seeds", default="11,12")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--sources", default="gt,gt_degraded")
    ap.add_argument("--variants", help="only these realism labels (e.g. off,tum)")
    ap.add_argument("--out", default="runs/realism_vo")
    args = ap.parse_args()
    rows = []
    for scene in args.scenes.split(","):
        for label, realism in variants(scene):
            if args.variants and label not in args.variants.split(","):
                continue
            for seed in (int(s) for s in args.seeds.split(",")):
                seq = Rendered(SyntheticSequence(SyntheticConfig(scene=scene, seed=seed, frames=args.frames,
                                                                 realism=realism)))
                for source in args.sources.split(","):
                    cfg = load_config(f"configs/synthetic_{scene}.yaml",
                                      {"depth": {"source": source}, "mapping": {"enabled": False}})
                    s = OdometryPipeline(seq, cfg, Path(args.out) / f"{scene}_{label}_{seed}_{source}",
                                         progress=False).run()
                    m, t = s["metrics"], s["timings"]
                    row = {"scene": scene, "realism": label, "seed": seed, "depth": source,
                           "path_m": m["path_length_m"], "ate_m": m["ate"]["rmse_m"],
                           "rpe_cm": 100 * m["rpe"]["trans_rmse_m"], "rpe_deg": m["rpe"]["rot_rmse_deg"],
                           "short_t_err_pct": m["kitti_short"]["t_err_pct"],
                           "scale_err_pct": 100 * m["ate"]["scale_error"], "lost": s["lost_frames"],
                           "keyframes": s["keyframes"], "tracking_fps": t["tracking_fps"]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    lines = ["| scene | realism | seed | depth | path (m) | ATE (cm) | RPE (cm / deg per frame) | short t_err % "
             "| scale err % | lost | keyframes | tracking fps |", "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['realism']} | {r['seed']} | {r['depth']} | {r['path_m']:.1f} | "
                     f"{100 * r['ate_m']:.1f} | {r['rpe_cm']:.2f} / {r['rpe_deg']:.3f} | {r['short_t_err_pct']:.2f} | "
                     f"{r['scale_err_pct']:.2f} | {r['lost']} | {r['keyframes']} | {r['tracking_fps']:.1f} |")
    save_table(args.out, rows, lines)


if __name__ == "__main__":
    main()
