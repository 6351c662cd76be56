"""Reconstruct a room from a phone video: metric trajectory and a TSDF mesh.

    python examples/reconstruct_video.py clip.mp4 --fov 70 [--config configs/phone.yaml]

The horizontal field of view (or the intrinsics) sets the metric scale of the depth network's output,
so give it as accurately as you can. Writes ``mesh.ply`` and ``cloud.ply`` to ``--out``.
"""
from __future__ import annotations

import argparse

from mono_metric import OdometryPipeline, load_config, load_sequence


def main(video: str, fov_deg: float, config: str = "configs/phone.yaml", out: str = "outputs/video",
         stride: int = 1, max_width: int | None = 960, overrides: dict | None = None) -> dict:
    seq = load_sequence(video, "video", fov_deg=fov_deg, stride=stride, max_width=max_width)
    print(f"{video}: {len(seq)} frames at {seq.camera.width}x{seq.camera.height}, fx {seq.camera.fx:.1f} px "
          f"(from a {fov_deg:g} deg horizontal field of view)")
    summary = OdometryPipeline(seq, load_config(config, overrides), out, progress=False).run()
    m = summary.get("map", {})
    print(f"{summary['keyframes']} keyframes fused into {m.get('triangles', 0)} triangles; "
          f"mesh: {out}/mesh.ply")
    return summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video")
    ap.add_argument("--fov", type=float, required=True, help="horizontal field of view in degrees")
    ap.add_argument("--config", default="configs/phone.yaml")
    ap.add_argument("--out", default="outputs/video")
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--max-width", type=int, default=960)
    a = ap.parse_args()
    main(a.video, a.fov, a.config, a.out, a.stride, a.max_width)
