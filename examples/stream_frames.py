"""Embed the odometry core in your own camera loop: frames in, metric poses out.

Here the "camera" is the synthetic room; replace ``frames`` with your own source of RGB images
and metric depth maps (from a depth network, or a depth sensor).

    python examples/stream_frames.py
"""
from mono_metric import load_sequence
from mono_metric.config import load_config
from mono_metric.eval import ate
from mono_metric.odometry import Odometry


def main(frames: int = 20) -> None:
    seq = load_sequence(f"synthetic:room?seed=7&frames={frames}&width=320&height=240")
    config = load_config("configs/synthetic_room.yaml")
    odo = Odometry(config.tracking, seq.camera, max_depth_m=config.depth.max_depth_m)
    for frame in seq:  # your loop: image (H, W, 3) uint8 RGB, depth (H, W) metres
        result = odo.track(frame.image, frame.timestamp, frame.depth_m)
        x, y, z = result.T_world_cam[:3, 3]
        print(f"t={frame.timestamp:6.3f}s  {result.status:4s}  inliers={result.inliers:4d}  "
              f"position=({x:+.3f}, {y:+.3f}, {z:+.3f}) m")
    print(f"ATE vs ground truth: {ate(seq.gt, odo.trajectory()).rmse_m * 100:.2f} cm")


if __name__ == "__main__":
    main()
