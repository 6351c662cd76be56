"""Command line: ``mono-metric demo | run | batch | depth | train | export-onnx | eval``.

Bad input ends in a one-line error and exit code 1; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mono_metric.errors import InputError

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cmd_eval(args: argparse.Namespace) -> int:
    from mono_metric.eval.plot import plot_trajectory
    from mono_metric.eval.trajectory import evaluate_trajectory
    from mono_metric.types import Trajectory

    gt, est = Trajectory.read(args.gt, args.format), Trajectory.read(args.est, args.format)
    gt, est = _associate(gt, est, args.format, args.max_diff_s)
    metrics = evaluate_trajectory(gt, est)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_trajectory(out / "trajectory.png", est, gt, np.array(metrics["ate"]["T_gt_est"]),
                    ate_rmse_m=metrics["ate"]["rmse_m"], title=Path(args.est).name)
    print(_format_metrics(metrics))
    print(f"wrote {out / 'metrics.json'} and {out / 'trajectory.png'}")
    return 0


def _associate(gt, est, fmt: str, max_diff_s: float):
    """KITTI files pair line by line; TUM files pair by nearest timestamp."""
    import numpy as np

    from mono_metric.datasets.tum import associate

    if fmt == "kitti":
        if len(gt) != len(est):
            raise InputError(f"KITTI files pair line by line but have {len(gt)} and {len(est)} poses")
        return gt, est
    j = associate(est.timestamps, gt.timestamps, max_diff_s)
    keep = np.flatnonzero(j >= 0)
    if len(keep) < 3:
        raise InputError(f"only {len(keep)} estimated poses lie within {max_diff_s} s of a ground-truth stamp; "
                         "check that both files use the same clock or raise --max-diff-s")
    return gt[j[keep]], est[keep]


def _format_metrics(m: dict) -> str:
    a, k, ks = m["ate"], m["kitti"], m["kitti_short"]
    lines = [f"frames {m['frames']}, path {m['path_length_m']:.1f} m",
             f"ATE RMSE (SE3, no scale) {a['rmse_m']:.3f} m | Sim3 scale {a['sim3_scale']:.4f} "
             f"(scale error {100 * a['scale_error']:.2f} %)"]
    if m.get("rpe"):
        r = m["rpe"]
        lines.append(f"RPE (1 frame) {r['trans_rmse_m'] * 100:.2f} cm, {r['rot_rmse_deg']:.3f} deg RMSE")
    for name, s in (("KITTI", k), ("KITTI-short", ks)):
        if s["segments"]:
            lines.append(f"{name}: t_err {s['t_err_pct']:.2f} %, r_err {s['r_err_deg_per_100m']:.3f} deg/100 m "
                         f"({s['segments']} segments)")
        else:
            lines.append(f"{name}: sequence shorter than the shortest segment")
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from mono_metric.datasets import load_sequence
    from mono_metric.pipeline import OdometryPipeline

    opts = {k: v for k, v in (("sequence", args.sequence), ("max_frames", args.max_frames)) if v is not None}
    if args.stride != 1:
        opts["stride"] = args.stride
    if args.fov is not None:
        opts["fov_deg"] = args.fov
    if args.intrinsics is not None:
        opts["camera"] = _parse_intrinsics(args.intrinsics)
    if args.camera is not None:
        opts["intrinsics"] = args.camera
    if args.max_width is not None:
        opts["max_width"] = args.max_width
    if args.skip_missing:
        opts["missing"] = "skip"
    seq = load_sequence(args.path, args.kind, **opts)
    depth = {k: v for k, v in (("weights", args.weights), ("device", args.device)) if v}
    overrides = {"depth": depth} if depth else {}
    if args.self_calibrate:
        overrides["camera"] = {"self_calibrate": True}
    cfg = _load_config(args.config, args.depth, overrides)
    if getattr(seq, "camera_note", None):
        print(f"{seq.name}: {seq.camera_note}")
    pipeline = OdometryPipeline(seq, cfg, args.out, progress=not args.quiet, resume=args.resume,
                                snapshot_every_s=args.snapshot_every, recorder=_recorder(args))
    summary = pipeline.run()
    _print_summary(summary)
    if args.rerun:
        print(f"rerun recording: {args.rerun} (open it with: rerun {args.rerun})")
    return 0


def _recorder(args: argparse.Namespace):
    """A :class:`RerunRecorder` for ``--rerun FILE`` / ``--rerun-spawn`` / ``--rerun-connect ADDR``, or None."""
    if not (args.rerun or args.rerun_spawn or args.rerun_connect):
        return None
    from mono_metric.viz.recorder import RerunRecorder

    return RerunRecorder(args.rerun, spawn=args.rerun_spawn, connect=args.rerun_connect)


def _cmd_batch(args: argparse.Namespace) -> int:
    from mono_metric.batch import expand_inputs, run_batch

    inputs = expand_inputs(args.inputs)
    cfg = _load_config(args.config, args.depth)
    opts = {k: v for k, v in (("kind", args.kind), ("fov_deg", args.fov)) if v is not None}
    if args.stride != 1:
        opts["stride"] = args.stride
    if args.max_frames is not None:
        opts["max_frames"] = args.max_frames
    use_ray = False if args.sequential else (True if args.ray is not None else None)
    address = None if args.ray in (None, "local") else args.ray
    print(f"batch: {len(inputs)} sequence(s) -> {args.out}")
    rows = run_batch(inputs, cfg, args.out, use_ray, address, args.cpus_per_task, args.gpus_per_task,
                     load_opts=opts)
    for r in rows:
        detail = (f"ATE {r['ate_m']:.3f} m, scale error {r['scale_error_pct']:.2f} %" if "ate_m" in r else
                  r.get("error", "no ground truth"))
        print(f"  {r['name']}: {r['status']} ({detail})")
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"summary: {Path(args.out) / 'summary.csv'} ({len(rows) - failed} ok, {failed} failed)")
    return 1 if failed == len(rows) else 0


def _load_config(path, depth_source: str | None, overrides: dict | None = None):
    """``load_config`` with a ``--depth`` override; another model's ``depth.input_hw`` does not carry over."""
    from mono_metric.config import load_config

    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    if depth_source:
        overrides.setdefault("depth", {})["source"] = depth_source
        if depth_source != load_config(path).depth.source:
            overrides["depth"]["input_hw"] = None  # the new model's own input size
    return load_config(path, overrides)


def _parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError as err:
        raise InputError(f"--intrinsics {text!r} must be four numbers fx,fy,cx,cy") from err
    return fx, fy, cx, cy


def _print_summary(summary: dict) -> None:
    t, cam = summary["timings"], summary["camera"]
    print(f"camera: fx {cam['fx']:.1f} fy {cam['fy']:.1f} cx {cam['cx']:.1f} cy {cam['cy']:.1f} px ({cam['note']}"
          + (", frames undistorted" if cam.get("undistorted_with") else "") + ")")
    if summary.get("resumed_at_frame"):
        print(f"resumed from the snapshot at frame {summary['resumed_at_frame']}")
    print(f"{summary['sequence']}: {summary['frames']} frames, {summary['keyframes']} keyframes, "
          f"{summary['lost_frames']} lost{' ' + str(summary['lost_spans']) if summary['lost_spans'] else ''}")
    print(f"speed: {t['overall_fps']:.2f} fps overall; tracking {t['tracking_fps']:.1f} fps without the network; "
          f"{t['depth_calls_per_frame']:.2f} depth calls per frame; per frame (ms): "
          + ", ".join(f"{k} {t[k + '_ms_per_frame']:.1f}" for k in ("load", "depth", "tracking", "fusion"))
          + " (tracking = features {:.1f} + pose {:.1f} + BA {:.1f} + ICP {:.1f} + keyframes)".format(
              *(t[f"tracking_{k}_ms_per_frame"] for k in ("features", "pose", "ba", "icp"))))
    if "metrics" in summary:
        print(_format_metrics(summary["metrics"]))
    if "map" in summary:
        print(f"map: {summary['map']['fused_keyframes']} keyframes fused, {summary['map']['voxel_blocks']} voxel blocks"
              + (f"; mesh accuracy vs GT {100 * summary['map']['accuracy_m']:.1f} cm (mean), "
                 f"{100 * summary['map']['accuracy_median_m']:.1f} cm (median)" if "accuracy_m" in summary["map"] else ""))
    print(f"results in {summary['out_dir']}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from mono_metric.datasets import SyntheticConfig, SyntheticSequence
    from mono_metric.pipeline import OdometryPipeline

    seq = SyntheticSequence(SyntheticConfig(scene=args.scene, seed=args.seed, frames=args.frames))
    out = Path(args.out)
    config = args.config or REPO_CONFIGS / f"synthetic_{args.scene}.yaml"
    if args.config is None and not config.is_file():
        raise InputError(f"demo settings {config} not found (installed without the repository?); pass --config FILE")
    print(f"mono_metric demo: rendering {seq} with exact ground truth; settings {config}")
    t0 = time.perf_counter()
    cfg = _load_config(config, args.depth)
    print(f"depth: {cfg.depth.source}" + (" (embedded, trained on the synthetic world; no download)"
                                          if cfg.depth.source == "mono_metric_tiny" else ""))
    recorder = None
    try:
        from mono_metric.viz.recorder import RerunRecorder

        recorder = RerunRecorder(out / "recording.rrd")
    except InputError as err:  # rerun-sdk not installed: the demo runs without a recording
        print(f"no rerun recording: {err}")
    summary = OdometryPipeline(seq, cfg, out, progress=not args.quiet, recorder=recorder).run()
    seq.export_mesh(out / "scene_gt_mesh.ply")
    _print_summary(summary)
    if recorder is not None:
        print(f"rerun recording: {out / 'recording.rrd'} (open it with: rerun {out / 'recording.rrd'})")
    print(f"total {time.perf_counter() - t0:.1f} s; ground-truth scene mesh: {out / 'scene_gt_mesh.ply'}")
    return 0


def _camera_from_args(args: argparse.Namespace, width: int, height: int, source: Path):
    from mono_metric.datasets.images import resolve_camera
    from mono_metric.datasets.metadata import image_focal_35mm

    if sum(a is not None for a in (args.intrinsics, args.camera, args.fov)) > 1:
        raise InputError("give only one of --intrinsics fx,fy,cx,cy, --camera FILE.yaml or --fov DEGREES")
    camera = _parse_intrinsics(args.intrinsics) if args.intrinsics is not None else None
    return resolve_camera(width, height, camera, args.camera, args.fov, source, image_focal_35mm(source))


def _cmd_depth(args: argparse.Namespace) -> int:
    from mono_metric.datasets.base import read_rgb
    from mono_metric.datasets.images import IMAGE_EXTENSIONS
    from mono_metric.depth import Metric3D
    from mono_metric.depth.export import save_depth_outputs

    src = Path(args.input)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = [src]
    if not files or not files[0].exists():
        raise InputError(f"{src} is neither an image nor a folder of images")
    model = Metric3D.from_pretrained(args.model, args.weights, device=args.device)
    input_hw = tuple(int(v) for v in args.input_size.split("x")) if args.input_size else None
    out = Path(args.out)
    range_m = None  # one colour range for all previews: from the first image's depth
    for path in files:
        image = read_rgb(path)
        camera, note = _camera_from_args(args, image.shape[1], image.shape[0], path)
        if not any(a is not None for a in (args.intrinsics, args.camera, args.fov)):
            print(f"{path.name}: {note}")
        pred = model.predict(image, camera, input_hw=input_hw)
        if range_m is None:
            from mono_metric.eval.plot import depth_range_m

            range_m = depth_range_m(pred.depth_m)
        written = save_depth_outputs(out, path.stem, image, pred.depth_m, camera, range_m=range_m)
        valid = pred.depth_m[pred.depth_m > 0]
        print(f"{path.name}: depth {valid.min():.2f}-{valid.max():.2f} m (median {np.median(valid):.2f} m) "
              f"-> {', '.join(p.name for p in written)}")
    print(f"wrote {len(files)} prediction(s) to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mono_metric.train.config import load_train_config
    from mono_metric.train.trainer import train

    overrides = {k: v for k, v in (("steps", args.steps), ("init_weights", args.init_weights)) if v is not None}
    cfg = load_train_config(args.config, overrides)
    print(f"training {cfg.model} ({cfg.cstm} canonical transform, {cfg.steps} steps) -> {args.out}")
    metrics = train(cfg, args.out, resume=args.resume, progress=not args.quiet, device=args.device)
    for group, m in sorted(metrics.items()):
        print(f"val {group:>7}: AbsRel {m['abs_rel']:.3f}  delta1 {m['d1']:.3f}  RMSE {m['rmse']:.2f} m "
              f"({m['frames']} frames)")
    print(f"weights: {Path(args.out) / 'model.pt'}; log: {Path(args.out) / 'log.jsonl'}")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from mono_metric.depth import Metric3D
    from mono_metric.depth.onnx import compare_onnx, export_onnx

    model = Metric3D.from_pretrained(args.model, args.weights)
    out = Path(args.out or f"{args.model}_{args.height}x{args.width}.onnx")
    t0 = time.perf_counter()
    export_onnx(model, out, args.height, args.width, args.opset)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.name}.json in {time.perf_counter() - t0:.1f} s")
    if not args.no_check:
        report = compare_onnx(model, out)
        print("onnxruntime vs PyTorch (CPU, one random input): " + ", ".join(
            f"{k.replace('_max_rel_err', '')} max rel err {v:.2e}" for k, v in report.items() if k.endswith("rel_err")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mono-metric", description="Monocular metric visual odometry.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="offline demo on a rendered synthetic sequence")
    d.add_argument("--scene", default="street", choices=["street", "room"])
    d.add_argument("--frames", type=int, default=150)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--depth", help="override depth.source: mono_metric_tiny (the config's default, embedded "
                   "model), gt (exact), gt_degraded (GT with network-like error) or a Metric3D model name")
    d.add_argument("--config", help="settings (default: configs/synthetic_SCENE.yaml)")
    d.add_argument("--out", default="outputs/demo")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run odometry on a dataset, video or synthetic spec")
    r.add_argument("path", help="dataset folder, video file, or synthetic:street?seed=3&frames=200")
    r.add_argument("--kind", choices=["kitti", "tum", "images", "video", "synthetic"])
    r.add_argument("--sequence", help="KITTI sequence id, e.g. 06")
    r.add_argument("--config", help="configs/*.yaml")
    r.add_argument("--depth", "--depth-model", dest="depth",
                   help="override depth.source: gt, gt_degraded, mono_metric_tiny or a Metric3D model name")
    r.add_argument("--weights", help="checkpoint of the depth model (default: cached official file)")
    r.add_argument("--device", help="where the depth model runs: cpu, cuda, ...")
    r.add_argument("--fov", type=float, help="horizontal field of view in degrees (images/video; default: the "
                   "file's 35 mm-equivalent focal length, else a 26 mm phone lens, printed)")
    r.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels of the full-resolution frames (images/video)")
    r.add_argument("--camera", help="intrinsics YAML (fx, fy, cx, cy, width, height) (images/video)")
    r.add_argument("--max-width", type=int, help="video: downscale wider frames to this width")
    r.add_argument("--self-calibrate", action="store_true",
                   help="estimate the focal length from the first frames' motion (camera.self_calibrate)")
    r.add_argument("--skip-missing", action="store_true", help="TUM: drop listed frames whose files are absent")
    r.add_argument("--stride", type=int, default=1)
    r.add_argument("--max-frames", type=int)
    r.add_argument("--out", default="outputs/run")
    r.add_argument("--resume", action="store_true",
                   help="continue a killed run in --out from its last snapshot (same data and options)")
    r.add_argument("--snapshot-every", type=float, default=30.0, metavar="S",
                   help="snapshot the run on the first keyframe after S seconds (0: every keyframe)")
    r.add_argument("--rerun", metavar="FILE.rrd", help="write a rerun recording of the run (needs the viz extra: "
                   "pip install 'mono_metric[viz]'; open it with: rerun FILE.rrd)")
    r.add_argument("--rerun-spawn", action="store_true", help="start a rerun viewer and stream the run to it")
    r.add_argument("--rerun-connect", metavar="ADDR", help="stream the run to a running rerun viewer at ADDR "
                   "(host:port, e.g. 127.0.0.1:9876, or a rerun+http:// URL)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_run)

    b = sub.add_parser("batch", help="run many sequences (Ray tasks when Ray is installed)")
    b.add_argument("inputs", nargs="+", help="paths, globs ('videos/*.mp4'), synthetic: specs or a .txt list")
    b.add_argument("--out", default="outputs/batch")
    b.add_argument("--config", help="configs/*.yaml shared by all runs")
    b.add_argument("--depth", "--depth-model", dest="depth", help="override depth.source")
    b.add_argument("--kind", choices=["kitti", "tum", "images", "video", "synthetic"])
    b.add_argument("--fov", type=float, help="horizontal FOV for image folders and videos")
    b.add_argument("--stride", type=int, default=1)
    b.add_argument("--max-frames", type=int)
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="use Ray (a local instance, or the cluster at ADDRESS); default: Ray when installed")
    b.add_argument("--sequential", action="store_true", help="do not use Ray")
    b.add_argument("--cpus-per-task", type=float, default=1.0)
    b.add_argument("--gpus-per-task", type=float, default=0.0)
    b.set_defaults(func=_cmd_batch)

    dp = sub.add_parser("depth", help="metric depth of an image or a folder of images")
    dp.add_argument("input", help="image file or folder of images")
    dp.add_argument("--model", default="metric3d_vit_small", help="a Metric3D model name")
    dp.add_argument("--weights", help="checkpoint file (default: cached official file)")
    dp.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels")
    dp.add_argument("--camera", help="intrinsics YAML (fx, fy, cx, cy, width, height)")
    dp.add_argument("--fov", type=float, help="horizontal field of view in degrees")
    dp.add_argument("--input-size", help="network input HxW (multiples of 32 for ConvNeXt, 28 for ViT); "
                    "default: the official size")
    dp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    dp.add_argument("--out", default="outputs/depth")
    dp.set_defaults(func=_cmd_depth)

    t = sub.add_parser("train", help="train or fine-tune a depth model in canonical camera space")
    t.add_argument("--config", required=True, help="configs/train_*.yaml")
    t.add_argument("--out", default="runs/train")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--steps", type=int, help="override the config's step count")
    t.add_argument("--init-weights", help="start from this checkpoint (fine-tuning an official model)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)

    x = sub.add_parser("export-onnx", help="export the depth network to ONNX at a fixed input size")
    x.add_argument("--model", default="mono_metric_tiny", help="a model name (default: the embedded one)")
    x.add_argument("--weights", help="checkpoint file (default: embedded or cached official file)")
    x.add_argument("--height", type=int, required=True, help="network input height (a multiple of 32 or 28)")
    x.add_argument("--width", type=int, required=True, help="network input width")
    x.add_argument("--opset", type=int, default=18)
    x.add_argument("--out", help="output .onnx file (default: MODEL_HxW.onnx)")
    x.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    x.set_defaults(func=_cmd_export_onnx)

    e = sub.add_parser("eval", help="evaluate an estimated trajectory against ground truth")
    e.add_argument("--gt", required=True)
    e.add_argument("--est", required=True)
    e.add_argument("--format", choices=["kitti", "tum"], default="tum")
    e.add_argument("--max-diff-s", type=float, default=0.02, help="TUM timestamp association tolerance")
    e.add_argument("--out", default="outputs/eval")
    e.set_defaults(func=_cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, FileNotFoundError, PermissionError) as err:
        if args.debug:
            raise
        print(f"mono-metric: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mono-metric: interrupted; results written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
