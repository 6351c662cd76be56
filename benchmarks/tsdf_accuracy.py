"""TSDF map accuracy at full size: ground-truth depth and poses fused at several voxel sizes.

For each synthetic scene, every ``--every``-th frame of a full-resolution sequence is fused; the mesh
is compared with (a) the observed ground-truth surface (back-projected GT depth of the fused frames,
within the fusion's max depth): Chamfer = mean of accuracy (mesh samples -> GT points) and
completeness (GT points -> mesh surface, exact); and (b) the scene's GT mesh (accuracy only). Prints a table with time and voxel blocks.

    python benchmarks/tsdf_accuracy.py [--frames 300] [--voxels 0.05,0.1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.mapping.tsdf import TSDFMap, mesh_accuracy, mesh_chamfer

MAX_DEPTH_M = {"street": 20.0, "room": 5.0}


def observed_points(seq, frames, max_depth_m: float, stride: int = 4) -> np.ndarray:
    pts = []
    for f in frames:
        d = f.depth_m[::stride, ::stride]
        v, u = np.nonzero((d > 0) & (d < max_depth_m))
        xyz = seq.camera.backproject(np.stack([u * stride, v * stride], 1).astype(float), d[v, u].astype(float))
        pts.append(xyz @ f.T_world_cam[:3, :3].T + f.T_world_cam[:3, 3])
    return np.concatenate(pts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--voxels", default="0.05,0.1")
    ap.add_argument("--scenes", default="room,street")
    args = ap.parse_args()
    print("| scene | frames fused | voxel (m) | Chamfer (cm) | accuracy (cm) | completeness (cm) "
          "| accuracy vs GT mesh, median (cm) | voxel blocks | fusion ms/frame |")
    print("|" + "---|" * 9)
    for scene in args.scenes.split(","):
        seq = SyntheticSequence(SyntheticConfig(scene=scene, seed=21, frames=args.frames))
        frames = [seq[i] for i in range(0, len(seq), args.every)]
        gt_pts = observed_points(seq, frames, MAX_DEPTH_M[scene])
        for voxel in (float(v) for v in args.voxels.split(",")):
            tsdf = TSDFMap(seq.camera, voxel, 4.0, MAX_DEPTH_M[scene])
            t0 = time.perf_counter()
            for f in frames:
                tsdf.integrate(f.image, f.depth_m, f.T_world_cam)
            ms = (time.perf_counter() - t0) / len(frames) * 1000
            mesh = tsdf.mesh()
            c = mesh_chamfer(mesh, gt_pts)
            a = mesh_accuracy(mesh, seq.gt_mesh())
            print(f"| {scene} | {len(frames)} | {voxel:g} | {100 * c['chamfer_m']:.2f} | {100 * c['accuracy_m']:.2f} | "
                  f"{100 * c['completeness_m']:.2f} | {100 * a['accuracy_median_m']:.2f} | {tsdf.block_count} | {ms:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
