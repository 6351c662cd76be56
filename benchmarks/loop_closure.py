"""SLAM back-end benchmark: loop closure on vs off, false loops, relocalisation, cost, mesh accuracy.

Depth is 'gt_degraded' (network-like error) everywhere. Per loop sequence (``block`` street drive and
``room_loop``), seed and pose-graph library (``--pose-graphs``): ATE (SE(3), no scale) with the back-end off and on, the end-to-start error (the
last frame's pose relative to the first, against ground truth) in % of the path, and the CPU seconds of
tracking and of the back-end (process time, so the 2-core load of other jobs does not count). No-loop
sequences (``facades``, ``parallel``) count candidates, verified, rejected and accepted (closed) loops.
Relocalisation trials (room_loop, :data:`RELOC_TRIALS`): black frames and a jump back into the mapped part,
a jump alone, black frames alone; a trial succeeds when a frame within 10 frames of the loss is relocalised
with a pose error under 5 cm. Mesh accuracy (mean distance of the mesh to the true scene) before/after
is from full pipeline runs of the first room seed.

    python benchmarks/loop_closure.py [--seeds 1,2,3] [--scenes block,room_loop] [--pose-graphs open3d,pypose_sim3]
        [--no-loop 10] [--reloc-seeds 6,7,8,9,10] [--parts loops,noloop,reloc,mesh] [--out runs/loop_closure]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from common import save_table
import mono_metric.backend as backend_module
from mono_metric import OdometryPipeline, load_config
from mono_metric.datasets.base import Sequence
from mono_metric.datasets.synthetic import SyntheticSequence
from mono_metric.depth.sources import make_depth_source
from mono_metric.eval.trajectory import ate
from mono_metric.geometry import inv_se3
from mono_metric.odometry import Odometry

SPECS = {  # reduced resolutions: 2 CPU cores
    "block": ("block?frames=260&width=620&height=188", "configs/synthetic_street.yaml"),
    "room_loop": ("room_loop?frames=300&width=320&height=240&laps=1.2", "configs/synthetic_room.yaml"),
    "facades": ("facades?frames=200&width=620&height=188", "configs/synthetic_street.yaml"),
    "parallel": ("parallel?frames=300&width=620&height=188", "configs/synthetic_street.yaml"),
}


class Rendered(Sequence):
    """A synthetic sequence rendered once and kept in memory."""

    def __init__(self, seq: SyntheticSequence):
        self.name, self.camera, self.timestamps, self.gt = seq.name, seq.camera, seq.timestamps, seq.gt
        self.frames, self._seq = [seq[i] for i in range(len(seq))], seq

    def _load(self, index: int):
        return self.frames[index]

    def gt_mesh(self):
        return self._seq.gt_mesh()


POSE_GRAPH = "open3d"  # backend.pose_graph of the runs (--pose-graphs)


def config(scene: str, on: bool, mapping: bool = False, pose_graph: str | None = None):
    return load_config(SPECS[scene][1], {"depth": {"source": "gt_degraded"}, "mapping": {"enabled": mapping},
                                         "backend": {"loop_closure": on, "relocalise": on,
                                                     "pose_graph": pose_graph or POSE_GRAPH}})


@contextlib.contextmanager
def exact_loop_measurements(odo: Odometry, gt_T_world_cam: np.ndarray):
    """Inside, every loop registration between two of ``odo``'s keyframes that verifies gets the true relative
    pose in place of its PnP pose (relocalisation queries are left alone): the ATE then shows what the pose graph
    and the odometry's drift allow with perfect loop measurements."""
    real = backend_module.register

    def exact(camera, query, cand, *args, **kwargs):
        reg = real(camera, query, cand, *args, **kwargs)
        ids = [next((i for i, f in enumerate(odo.map.features) if f is x), None) for x in (query, cand)]
        if reg.ok and None not in ids:
            fq, fc = (odo.map.keyframes[i].index for i in ids)
            reg = dataclasses.replace(reg, T_query_cand=inv_se3(gt_T_world_cam[fq]) @ gt_T_world_cam[fc])
        return reg

    backend_module.register = exact
    try:
        yield
    finally:
        backend_module.register = real


def run_odometry(seq: Rendered, scene: str, on: bool, frames=None, pose_graph: str | None = None,
                 config_override=None, exact_loops: bool = False) -> tuple[Odometry, list, float]:
    """Odometry over ``frames`` (default all; None entries are black frames): (odometry, results, CPU s).
    ``exact_loops``: loop measurements replaced by the truth (:func:`exact_loop_measurements`)."""
    cfg = config(scene, on, pose_graph=pose_graph) if config_override is None else config_override
    src = make_depth_source(cfg.depth)
    odo = Odometry(cfg.tracking, seq.camera, max_depth_m=cfg.depth.max_depth_m, backend=cfg.backend)
    results = []
    with exact_loop_measurements(odo, seq.gt.T_world_cam) if exact_loops else contextlib.nullcontext():
        t0 = time.process_time()
        for k, f in enumerate(seq.frames if frames is None else frames):
            if f is None:
                results.append(odo.track(np.zeros_like(seq.frames[0].image), float(k), np.zeros(seq.frames[0].image.shape[:2])))
            else:
                results.append(odo.track(f.image, f.timestamp if frames is None else float(k), lambda f=f: src(f)))
        odo.finish()
    return odo, results, time.process_time() - t0


def end_to_start_pct(gt, est) -> float:
    rel_est = inv_se3(est.T_world_cam[0]) @ est.T_world_cam[-1]
    rel_gt = inv_se3(gt.T_world_cam[0]) @ gt.T_world_cam[-1]
    return 100.0 * float(np.linalg.norm(rel_est[:3, 3] - rel_gt[:3, 3])) / gt.path_length_m()


def loop_rows(seeds: list[int], scenes: list[str], pose_graphs: list[str], exact: bool = False) -> list[dict]:
    """Per scene and seed: one run with the back-end off, then one per pose-graph library (``exact``: and one
    with exact loop measurements, column ``ate_exact_loops_m``)."""
    rows = []
    for scene in scenes:
        for seed in seeds:
            seq = Rendered(SyntheticSequence(f"synthetic:{SPECS[scene][0]}&seed={seed}"))
            odo, _, cpu_off = run_odometry(seq, scene, False)
            est = odo.trajectory()
            ate_off, e2s_off = ate(seq.gt, est).rmse_m, end_to_start_pct(seq.gt, est)
            for graph in pose_graphs:
                odo, _, cpu = run_odometry(seq, scene, True, pose_graph=graph)
                est, st = odo.trajectory(), odo.backend.stats
                row = {"scene": scene, "seed": seed, "pose_graph": graph, "frames": len(seq),
                       "path_m": round(seq.gt.path_length_m(), 1), "ate_off_m": ate_off,
                       "ate_on_m": ate(seq.gt, est).rmse_m, "ate_ratio": ate_off / max(ate(seq.gt, est).rmse_m, 1e-9),
                       "e2s_off_pct": e2s_off, "e2s_on_pct": end_to_start_pct(seq.gt, est), "closures": st["closures"],
                       "pruned": st["pruned"], "tracking_cpu_s": cpu - st["cpu_s"], "backend_cpu_s": st["cpu_s"],
                       "backend_share_pct": 100.0 * st["cpu_s"] / max(cpu - st["cpu_s"], 1e-9),
                       "tracking_cpu_off_s": cpu_off}
                if exact:
                    odo, _, _ = run_odometry(seq, scene, True, pose_graph=graph, exact_loops=True)
                    row["ate_exact_loops_m"] = ate(seq.gt, odo.trajectory()).rmse_m
                print(row, flush=True)
                rows.append(row)
    return rows


def no_loop_rows(n: int, pose_prior: bool = True) -> list[dict]:
    """Back-end counts on ``n`` sequences that never revisit a place (facades, parallel streets, alternating).

    Without ``pose_prior`` (``proximity_ratio`` 10) every older keyframe is a candidate, so verification alone
    must reject the look-alike places.
    """
    rows = []
    for i in range(n):
        scene, seed = ("facades", "parallel")[i % 2], 100 + i
        seq = Rendered(SyntheticSequence(f"synthetic:{SPECS[scene][0]}&seed={seed}"))
        cfg = config(scene, True)
        if not pose_prior:
            cfg.backend.proximity_ratio = 10.0
        odo, _, _ = run_odometry(seq, scene, True, config_override=cfg)
        st = odo.backend.stats
        row = {"scene": scene, "seed": seed, "pose_prior": pose_prior, "candidates": st["candidates"],
               "verified": st["verified"], "rejected": st["rejected"], "inconsistent": st["inconsistent"],
               "implausible": st["implausible"], "accepted_loops": st["closures"], "loop_edges": len(odo.map.loops)}
        print(row, flush=True)
        rows.append(row)
    return rows


RELOC_TRIALS = (  # (kind, cut after this fraction of the first lap, black frames, jump to this fraction of the lap)
    ("black+jump", 1.08, 3, 0.5), ("black+jump", 1.0, 3, 0.16), ("jump", 0.9, 0, 0.3), ("black", 0.6, 5, None))


def reloc_rows(seeds: list[int]) -> list[dict]:
    """Relocalisation trials on room_loop: per seed one trial per :data:`RELOC_TRIALS` entry.

    Kinds of induced loss: ``black+jump`` (the run is cut, black frames follow, then a jump back into the
    mapped part), ``jump`` (a jump back with no black frames: the tracker sees another place at once) and
    ``black`` (black frames, then the sequence goes on where the camera has moved meanwhile). 15 frames follow.
    Per trial: the status of the first frame after the loss, the first frame (counted from there) that is
    relocalised, its position error against ground truth and against the map (relocalising means continuing in
    the map's frame): jumps against the map's own estimate of that frame (from the first pass, when it was
    mapped), black frames against the map's estimate of the last frame before the loss moved by the true motion
    since. ``map_err_gt_m``: the map's own error against ground truth at that reference frame (what separates
    the map's drift from the relocalisation's error). ``success``: relocalised within 10 frames with an error
    under 5 cm against ground truth; ``success_map``: ... against the map; ``tracked_5cm``: some frame within
    10 frames has a pose within 5 cm of the truth, whatever its status.
    """
    rows = []
    for seed in seeds:
        seq = Rendered(SyntheticSequence(f"synthetic:{SPECS['room_loop'][0]}&seed={seed}"))
        lap = int(len(seq) / 1.2)
        for kind, cut_f, black, jump_f in RELOC_TRIALS:
            cut = int(round(cut_f * lap))
            resume = cut + black if jump_f is None else int(round(jump_f * lap))
            frames = seq.frames[:cut] + [None] * black + seq.frames[resume:resume + 15]
            odo, res, _ = run_odometry(seq, "room_loop", True, frames)
            est = odo.trajectory().T_world_cam
            gt = seq.gt.T_world_cam
            row = {"seed": seed, "kind": kind, "cut": cut, "resume_at": resume, "status0": res[cut + black].status,
                   "first_relocalised": None, "err_gt_m": None, "err_map_m": None, "map_err_gt_m": None,
                   "success": False, "success_map": False, "tracked_5cm": False}
            for j, r in enumerate(res[cut + black:]):
                T = r.T_world_cam
                err_gt = float(np.linalg.norm((gt[0] @ T)[:3, 3] - gt[resume + j][:3, 3]))
                row["tracked_5cm"] |= j < 10 and err_gt < 0.05
                if r.status != "relocalised":
                    continue
                # The map's reference: the first pass's estimate of this frame (a jump back), else of the last
                # frame before the loss, moved by the true motion since (black frames).
                ref = resume + j if resume + j < cut else cut - 1
                T_ref_true = inv_se3(gt[ref]) @ gt[resume + j]
                err_map = float(np.linalg.norm((inv_se3(est[ref]) @ T)[:3, 3] - T_ref_true[:3, 3]))
                if row["first_relocalised"] is None:
                    map_err = float(np.linalg.norm((gt[0] @ est[ref])[:3, 3] - gt[ref][:3, 3]))
                    row.update(first_relocalised=j, err_gt_m=err_gt, err_map_m=err_map, map_err_gt_m=map_err)
                row["success"] |= j < 10 and err_gt < 0.05
                row["success_map"] |= j < 10 and err_map < 0.05
            rows.append(row)
            print(row, flush=True)
    return rows


def mesh_rows(seed: int, out: Path) -> list[dict]:
    seq = Rendered(SyntheticSequence(f"synthetic:{SPECS['room_loop'][0]}&seed={seed}"))
    rows = []
    for on in (False, True):
        s = OdometryPipeline(seq, config("room_loop", on, mapping=True), out / f"mesh_{on}", progress=False).run()
        rows.append({"loop_closure": on, "mesh_accuracy_mean_m": s["map"].get("accuracy_m"),
                     "mesh_accuracy_median_m": s["map"].get("accuracy_median_m"), "ate_m": s["metrics"]["ate"]["rmse_m"]})
        print(rows[-1], flush=True)
    return rows


def _lines(rows: list[dict]) -> list[str]:
    """Markdown table of ``rows`` (floats to 4 significant digits)."""
    keys = list(rows[0]) if rows else []
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)] + [
        "| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--no-loop", type=int, default=20, help="number of no-loop sequences")
    ap.add_argument("--no-loop-prior", default="on,off",
                    help="no-loop runs with the metric-pose prior on, off (every older keyframe a candidate) or both")
    ap.add_argument("--reloc-seeds", default="6,7,8,9,10")
    ap.add_argument("--parts", default="loops,noloop,reloc,mesh")
    ap.add_argument("--scenes", default="block,room_loop", help="loop scenes of the 'loops' part")
    ap.add_argument("--pose-graphs", default="open3d,pypose_sim3",
                    help="backend.pose_graph values compared in the 'loops' part; the first is used elsewhere")
    ap.add_argument("--exact-loops", action="store_true",
                    help="'loops' part: also run with every loop measurement replaced by the true relative pose")
    ap.add_argument("--out", default="runs/loop_closure")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    global POSE_GRAPH
    graphs = args.pose_graphs.split(",")
    POSE_GRAPH = graphs[0]
    result = {}
    if "loops" in parts:
        result["loops"] = loop_rows([int(s) for s in args.seeds.split(",")], args.scenes.split(","), graphs,
                                    args.exact_loops)
        save_table(out / "loops", result["loops"], _lines(result["loops"]))
    if "noloop" in parts:
        result["no_loop"] = [r for p in args.no_loop_prior.split(",") for r in no_loop_rows(args.no_loop, p == "on")]
        save_table(out / "no_loop", result["no_loop"], _lines(result["no_loop"]))
    if "reloc" in parts:
        result["relocalisation"] = reloc_rows([int(s) for s in args.reloc_seeds.split(",")])
        save_table(out / "relocalisation", result["relocalisation"], _lines(result["relocalisation"]))
    if "mesh" in parts:
        result["mesh"] = mesh_rows(int(args.seeds.split(",")[0]), out)
        save_table(out / "mesh", result["mesh"], _lines(result["mesh"]))
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
