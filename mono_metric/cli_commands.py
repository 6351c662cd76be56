"""The commands beside the odometry (``depth``, ``train``, ``export-onnx``, ``eval``) and the camera-flag
helpers they share with ``run``; the parser and the odometry commands are in :mod:`mono_metric.cli`."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mono_metric.errors import InputError
from mono_metric.outputs import claim_output_file, output_dir, write_json, write_marker


def cmd_eval(args: argparse.Namespace) -> int:
    from mono_metric.eval.pairing import pair_trajectories, read_trajectory
    from mono_metric.eval.plot import plot_trajectory
    from mono_metric.eval.trajectory import evaluate_trajectory, format_metrics

    gt, est = read_trajectory(args.gt, args.format), read_trajectory(args.est, args.format)
    gt, est, note = pair_trajectories(gt, est, args.format, args.max_diff_s)
    if note:
        print(note)
    metrics = evaluate_trajectory(gt, est)
    with output_dir(args.out, "eval", args.overwrite) as out:
        write_json(out / "metrics.json", metrics, "undefined for these trajectories")
        plot_trajectory(out / "trajectory.png", est, gt, np.array(metrics["ate"]["T_gt_est"]),
                        ate_rmse_m=metrics["ate"]["rmse_m"], title=Path(args.est).name)
    print(format_metrics(metrics))
    print(f"wrote {out / 'metrics.json'} and {out / 'trajectory.png'}")
    return 0


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError as err:
        raise InputError(f"--intrinsics {text!r} must be four numbers fx,fy,cx,cy") from err
    return fx, fy, cx, cy


def check_one_camera_source(args: argparse.Namespace) -> None:
    if sum(a is not None for a in (args.intrinsics, args.camera, args.fov)) > 1:
        raise InputError("give only one of --intrinsics fx,fy,cx,cy, --camera FILE.yaml or --fov DEGREES")


def _camera_from_args(args: argparse.Namespace, width: int, height: int, source: Path):
    from mono_metric.datasets.images import resolve_camera
    from mono_metric.datasets.metadata import image_focal_35mm

    check_one_camera_source(args)
    camera = parse_intrinsics(args.intrinsics) if args.intrinsics is not None else None
    return resolve_camera(width, height, camera, args.camera, args.fov, source, image_focal_35mm(source))


def cmd_depth(args: argparse.Namespace) -> int:
    from mono_metric.datasets.images import IMAGE_EXTENSIONS, natural_sorted
    from mono_metric.depth import Metric3D

    src = Path(args.input)
    if src.is_dir():
        files = natural_sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = [src]
    if not files or not files[0].is_file():
        raise InputError(f"{src} is neither an image nor a folder of images")
    input_hw = _parse_size(args.input_size) if args.input_size else None
    with output_dir(args.out, "depth", args.overwrite) as out:
        model = Metric3D.from_pretrained(args.model, args.weights, device=args.device)
        if args.model == "mono_metric_tiny":
            from mono_metric.depth.sources import tiny_real_warning

            print(tiny_real_warning(f"mono-metric depth {args.input} --model metric3d_vit_small"), file=sys.stderr)
        _depth_files(args, model, files, input_hw, out)
    print(f"wrote {len(files)} prediction(s) to {out}")
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise InputError(f"--input-size {text!r} must be HEIGHTxWIDTH in pixels, e.g. 616x1064") from err
    if not (16 <= h <= 8192 and 16 <= w <= 8192):
        raise InputError(f"--input-size {text!r}: height and width must lie in 16..8192 pixels")
    return h, w


def _depth_files(args, model, files, input_hw, out) -> None:
    from mono_metric.datasets.base import read_rgb
    from mono_metric.depth.export import save_depth_outputs

    range_m = None  # one colour range for all previews: from the first image's depth
    for path in files:
        image = read_rgb(path)
        camera, note = _camera_from_args(args, image.shape[1], image.shape[0], path)
        if not any(a is not None for a in (args.intrinsics, args.camera, args.fov)):
            print(f"{path.name}: {note}")
        pred = model.predict(image, camera, input_hw=input_hw)
        valid = pred.depth_m[np.isfinite(pred.depth_m) & (pred.depth_m > 0)]
        if valid.size < 0.01 * pred.depth_m.size:
            raise InputError(f"{path.name}: the model gave no valid depth (NaN, inf or zero); check its weights "
                             f"({args.weights or 'the official file'}) and the intrinsics")
        if range_m is None:
            from mono_metric.eval.plot import depth_range_m

            range_m = depth_range_m(pred.depth_m)
        written = save_depth_outputs(out, path.stem, image, pred.depth_m, camera, range_m=range_m)
        print(f"{path.name}: depth {valid.min():.2f}-{valid.max():.2f} m (median {np.median(valid):.2f} m) "
              f"-> {', '.join(p.name for p in written)}")


def cmd_train(args: argparse.Namespace) -> int:
    from mono_metric.train.config import load_train_config
    from mono_metric.train.trainer import check_resume_checkpoint, train

    overrides = {k: v for k, v in (("steps", args.steps), ("init_weights", args.init_weights)) if v is not None}
    cfg = load_train_config(args.config, overrides)
    cfg.check_files()
    if args.resume:
        check_resume_checkpoint(Path(args.out) / "checkpoint.pt", cfg)  # before minutes of data preparation
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InputError(f"--max-minutes {args.max_minutes} must be > 0 (minutes of wall time for this call)")
    print(f"training {cfg.model} ({cfg.cstm} canonical transform, {cfg.steps} steps) -> {args.out}")
    with output_dir(args.out, "train", args.overwrite, args.resume) as out:
        metrics = train(cfg, out, resume=args.resume, progress=not args.quiet, device=args.device,
                        max_minutes=args.max_minutes)
    if metrics.stopped_at_step is not None:
        write_marker(Path(args.out), "train", "stopped", step=metrics.stopped_at_step)
        print(f"stopped at step {metrics.stopped_at_step} of {cfg.steps} (--max-minutes {args.max_minutes:g}); "
              f"continue: mono-metric train --config {args.config} --out {args.out} --resume")
        return 0
    for group, m in sorted(metrics.items()):
        print(f"val {group:>7}: AbsRel {m['abs_rel']:.3f}  delta1 {m['d1']:.3f}  RMSE {m['rmse']:.2f} m "
              f"({m['frames']} frames)")
    print(f"weights: {Path(args.out) / 'model.pt'}; log: {Path(args.out) / 'log.jsonl'}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from mono_metric.depth import Metric3D
    from mono_metric.depth.onnx import compare_onnx, export_onnx

    out = claim_output_file(args.out or f"{args.model}_{args.height}x{args.width}.onnx", args.overwrite)
    claim_output_file(out.with_name(out.name + ".json"), args.overwrite, flag="--out (its .json)")
    model = Metric3D.from_pretrained(args.model, args.weights)
    t0 = time.perf_counter()
    export_onnx(model, out, args.height, args.width, args.opset)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.name}.json in {time.perf_counter() - t0:.1f} s")
    if not args.no_check:
        report = compare_onnx(model, out)
        print("onnxruntime vs PyTorch (CPU, one random input): " + ", ".join(
            f"{k.replace('_max_rel_err', '')} max rel err {v:.2e}" for k, v in report.items() if k.endswith("rel_err")))
    return 0
