"""Embed the odometry core in your own camera loop: RGB frames in, metric poses out.

The depth network (here the embedded ``mono_metric_tiny``) runs when a frame becomes a keyframe and, with
the room config's ``tracking.ba_depth_every_n_frames``, on every second frame between keyframes.
The "camera" is the synthetic room; replace ``seq`` with your own source of RGB images and intrinsics.

    python examples/stream_frames.py
"""
from mono_metric import Metric3D, Odometry, load_config, load_sequence
from mono_metric.eval import ate


def main(frames: int = 20) -> None:
    seq = load_sequence(f"synthetic:room?seed=7&frames={frames}&width=320&height=240")
    config = load_config("configs/synthetic_room.yaml")
    model = Metric3D.from_pretrained("mono_metric_tiny")  # ships with the package: no download
    calls = []

    def depth_model(image, camera):
        calls.append(1)
        return model.predict(image, camera).depth_m

    odo = Odometry(config.tracking, seq.camera, depth_model=depth_model, max_depth_m=config.depth.max_depth_m)
    for frame in seq:  # your loop: image (H, W, 3) uint8 RGB
        result = odo.track(frame.image, frame.timestamp)
        x, y, z = result.T_world_cam[:3, 3]
        print(f"t={frame.timestamp:6.3f}s  {result.status:4s}  inliers={result.inliers:4d}  "
              f"keyframe={'yes' if result.keyframe else 'no ':3s}  position=({x:+.3f}, {y:+.3f}, {z:+.3f}) m")
    print(f"{len(odo.keyframes())} keyframes, {len(calls)} depth network calls for {frames} frames; "
          f"ATE vs ground truth: {ate(seq.gt, odo.trajectory()).rmse_m * 100:.2f} cm")


if __name__ == "__main__":
    main()
