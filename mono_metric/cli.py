"""Command line: ``mono-metric demo | run | batch | depth | train | export-onnx | eval``.

Bad input ends in a one-line error and exit code 1; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mono_metric.cli_commands import (check_one_camera_source, cmd_depth, cmd_eval, cmd_export_onnx, cmd_train,
                                      parse_intrinsics)
from mono_metric.errors import InputError, run_guarded, split_debug
from mono_metric.outputs import clear_folder, output_dir, write_marker
from mono_metric.resume import has_snapshot

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _loader_options(args: argparse.Namespace) -> dict:
    """``load_sequence`` options of the ``run`` flags that were given (loaders refuse ones that do not apply)."""
    check_one_camera_source(args)
    opts = {k: v for k, v in (("sequence", args.sequence), ("max_frames", args.max_frames), ("fov_deg", args.fov),
                              ("intrinsics", args.camera), ("max_width", args.max_width), ("fps", args.fps))
            if v is not None}
    if args.stride != 1:
        opts["stride"] = args.stride
    if args.intrinsics is not None:
        opts["camera"] = parse_intrinsics(args.intrinsics)  # the loaders' camera= takes numbers or a Camera
    if args.skip_missing:
        opts["missing"] = "skip"
    return opts


def _cmd_run(args: argparse.Namespace) -> int:
    from mono_metric.datasets import load_sequence
    from mono_metric.depth.sources import default_depth_source
    from mono_metric.pipeline import OdometryPipeline

    seq = load_sequence(args.path, args.kind, **_loader_options(args))
    depth_source = args.depth
    if args.config is None and depth_source is None:
        if args.weights is not None:
            raise InputError(f"--weights {args.weights} needs --depth MODEL naming the model it belongs to "
                             "(e.g. --depth metric3d_vit_small)")
        depth_source, why = default_depth_source(seq)
        print(f"depth: {depth_source}: {why}")
    depth = {k: v for k, v in (("weights", args.weights), ("device", args.device)) if v}
    overrides = {"depth": depth} if depth else {}
    if args.self_calibrate:
        overrides["camera"] = {"self_calibrate": True}
    if args.loop_closure is not None:  # the back-end's loop closure and relocalisation together
        overrides["backend"] = {"loop_closure": args.loop_closure, "relocalise": args.loop_closure}
    cfg = _load_config(args.config, depth_source, overrides)
    if cfg.camera.self_calibrate:
        print(f"{seq.name}: focal length to be estimated from the motion of the first {cfg.camera.calib_frames} "
              f"frames (self-calibration); principal point kept at ({seq.camera.cx:.1f}, {seq.camera.cy:.1f}) px")
    elif getattr(seq, "camera_note", None):
        print(f"{seq.name}: {seq.camera_note}")
    if getattr(seq, "gt_note", None):
        print(f"{seq.name}: ground truth: {seq.gt_note}")
    with output_dir(args.out, "run", args.overwrite, args.resume) as out:
        if args.resume and not has_snapshot(out):  # killed before its first snapshot: start over, cleanly
            clear_folder(out)
            write_marker(out, "run", "running")
        pipeline = OdometryPipeline(seq, cfg, out, progress=not args.quiet, resume=args.resume,
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
    auto_depth = args.config is None and args.depth is None
    print(f"batch: {len(inputs)} sequence(s) -> {args.out}"
          + ("; depth chosen per sequence from its data, as in run" if auto_depth else ""))
    with output_dir(args.out, "batch", args.overwrite, args.resume):
        rows = run_batch(inputs, cfg, args.out, use_ray, address, args.cpus_per_task, args.gpus_per_task,
                         load_opts=opts, auto_depth=auto_depth, resume=args.resume)
    for r in rows:
        detail = (f"ATE {r['ate_m']:.3f} m, scale error {r['scale_error_pct']:.2f} %" if r.get("ate_m") is not None else
                  r.get("error", "no ground truth"))
        print(f"  {r['name']}: {r['status']}" + (f", depth {r['depth']}" if r.get("depth") else "") + f" ({detail})")
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"summary: {Path(args.out) / 'summary.csv'} ({len(rows) - failed} ok, {failed} failed)")
    if failed == len(rows):
        raise InputError(f"every sequence of the batch failed (first: {rows[0]['name']}: {rows[0].get('error')}); "
                         f"see {Path(args.out) / 'summary.csv'}")
    return 0


def _load_config(path, depth_source: str | None, overrides: dict | None = None):
    """``load_config`` with a ``--depth`` override; another model's ``depth.input_hw`` does not carry over."""
    from mono_metric.config import load_config

    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    if depth_source:
        overrides.setdefault("depth", {})["source"] = depth_source
        if depth_source != load_config(path).depth.source:
            overrides["depth"]["input_hw"] = None  # the new model's own input size
    return load_config(path, overrides)


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
        from mono_metric.eval.trajectory import format_metrics

        print(format_metrics(summary["metrics"]))
    if "map" in summary:
        print(f"map: {summary['map']['fused_keyframes']} keyframes fused, {summary['map']['voxel_blocks']} voxel blocks"
              + (f"; mesh accuracy vs GT {100 * summary['map']['accuracy_m']:.1f} cm (mean), "
                 f"{100 * summary['map']['accuracy_median_m']:.1f} cm (median)" if "accuracy_m" in summary["map"] else ""))
    for w in summary.get("warnings", []):
        print(w)
    print(f"results in {summary['out_dir']}")


DEMO_TARGETS = (("scale error", ("metrics", "ate", "scale_error"), 0.02, 100.0, "%"),
                ("KITTI t_err", ("metrics", "kitti", "t_err_pct"), 2.0, 1.0, "%"),
                ("mesh accuracy (median)", ("map", "accuracy_median_m"), 0.20, 100.0, " cm"))
"""The embedded model's targets on the demo (issue 21): name, summary keys, bound, display factor, unit."""


def _print_demo_targets(summary: dict) -> None:
    """One line: each demo target with the measured value and whether it is met (the README's table)."""
    cells = []
    for name, keys, bound, factor, unit in DEMO_TARGETS:
        value = summary
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if value is not None:
            cells.append(f"{name} {factor * value:.2f}{unit} (target <= {factor * bound:g}{unit}: "
                         f"{'met' if value <= bound else 'missed'})")
    if cells:
        print("demo targets of the embedded model: " + "; ".join(cells))


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
    with output_dir(out, "demo", args.overwrite):
        recorder = None
        try:
            from mono_metric.viz.recorder import RerunRecorder

            recorder = RerunRecorder(out / "recording.rrd")
        except InputError as err:  # rerun-sdk not installed: the demo runs without a recording
            print(f"no rerun recording: {err}")
        summary = OdometryPipeline(seq, cfg, out, progress=not args.quiet, recorder=recorder).run()
        seq.export_mesh(out / "scene_gt_mesh.ply")
    _print_summary(summary)
    if cfg.depth.source == "mono_metric_tiny":
        _print_demo_targets(summary)
    if recorder is not None:
        print(f"rerun recording: {out / 'recording.rrd'} (open it with: rerun {out / 'recording.rrd'})")
    print(f"total {time.perf_counter() - t0:.1f} s; ground-truth scene mesh: {out / 'scene_gt_mesh.ply'}")
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option with a default; options without one say in their help
    what happens when they are left out."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS or "%(default)" in action.help:
            return action.help
        return super()._get_help_string(action)


def default_threads() -> int:
    """Torch/OpenCV threads when ``--threads`` is not given: ``$OMP_NUM_THREADS`` when set, else 1 on
    machines with at most 2 cores (more threads oversubscribe them), else half the cores, at most 8."""
    import os

    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(8, cores // 2)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` (None: :func:`default_threads`) for torch and OpenCV in this process."""
    import cv2
    import torch

    n = default_threads() if threads is None else threads
    if n < 1:
        raise InputError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


# ------------------------------------------------------------------ option groups shared by subcommands
def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, help="torch and OpenCV threads (default: $OMP_NUM_THREADS if set, "
                   f"else 1 on <= 2 cores, else half the cores up to 8; here {default_threads()})")


def _add_camera_options(p: argparse.ArgumentParser, video: bool = True) -> None:
    g = p.add_argument_group("camera (image folders and videos; at most one of --intrinsics/--camera/--fov)")
    g.add_argument("--intrinsics", metavar="FX,FY,CX,CY",
                   help="pinhole intrinsics in pixels of the full-resolution frames")
    g.add_argument("--camera", metavar="FILE.yaml", help="camera file: fx/fy/cx/cy/width/height YAML, OpenCV or "
                   "ORB-SLAM %%YAML:1.0 (Camera.fx ...), or EuRoC sensor.yaml (intrinsics: [fu, fv, cu, cv]); "
                   "distortion coefficients in it are applied")
    g.add_argument("--fov", type=float, metavar="DEGREES", help="horizontal field of view (none of the three: the "
                   "file's 35 mm-equivalent focal length, else a 26 mm phone lens, printed)")


def _add_frame_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("frames")
    g.add_argument("--kind", choices=["kitti", "tum", "euroc", "images", "video", "synthetic"],
                   help="dataset loader (default: guessed from the path's layout)")
    g.add_argument("--stride", type=int, default=1, help="use every N-th frame")
    g.add_argument("--max-frames", type=int, help="stop after this many frames (default: all)")


def _add_depth_options(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("depth")
    g.add_argument("--depth", "--depth-model", dest="depth", help="depth source: gt (the data's depth), gt_degraded "
                   "(GT with network-like error), mono_metric_tiny (embedded, synthetic-only) or a Metric3D model "
                   f"name (metric3d_vit_small, ...); {what}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mono-metric", description="Monocular metric visual odometry.",
                                formatter_class=HelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", formatter_class=HelpFormatter)
        c.set_defaults(func=func)
        return c

    d = command("demo", "offline demo on a rendered synthetic sequence", _cmd_demo)
    d.add_argument("--scene", default="street", choices=["street", "room"], help="synthetic world")
    d.add_argument("--frames", type=int, default=150, help="frames to render")
    d.add_argument("--seed", type=int, default=1, help="scene seed")
    _add_depth_options(d, "default: the config's (mono_metric_tiny)")
    d.add_argument("--config", help="settings YAML (default: configs/synthetic_SCENE.yaml)")
    d.add_argument("--out", default="outputs/demo", help="results folder")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(d)

    r = command("run", "run odometry on a dataset, video or synthetic spec", _cmd_run)
    r.add_argument("path", help="dataset folder (KITTI, TUM, EuRoC), image folder, video file, or "
                   "synthetic:street?seed=3&frames=200")
    _add_frame_options(r)
    r.add_argument("--sequence", help="KITTI sequence id, e.g. 06 (needed when the folder holds several)")
    r.add_argument("--config", help="settings YAML, e.g. configs/kitti.yaml (default: built-in defaults)")
    _add_depth_options(r, "default: the config's; without --config the data's depth when it has some, else an "
                       "official model whose weights are cached, else mono_metric_tiny (printed)")
    r.add_argument("--weights", help="checkpoint of the depth model (default: the cached official file)")
    r.add_argument("--device", help="where the depth model runs: cpu, cuda, cuda:1 (default: the config's, cpu)")
    _add_camera_options(r)
    g = r.add_argument_group("image folders and videos")
    g.add_argument("--fps", type=float, help="image folders: frame rate for timestamps = index / fps (default: 10)")
    g.add_argument("--max-width", type=int, help="downscale wider frames to this width, intrinsics with them "
                   "(default: full resolution)")
    r.add_argument("--self-calibrate", action="store_true",
                   help="estimate the focal length from the first frames' motion (camera.self_calibrate)")
    r.add_argument("--loop-closure", action=argparse.BooleanOptionalAction, default=None,
                   help="SLAM back-end: loop closure + relocalisation (backend.loop_closure/relocalise; "
                   "default: the config's)")
    r.add_argument("--skip-missing", action="store_true", help="TUM: drop listed frames whose files are absent")
    r.add_argument("--out", default="outputs/run", help="results folder")
    r.add_argument("--resume", action="store_true",
                   help="continue a killed run in --out from its last snapshot (same data and options)")
    r.add_argument("--snapshot-every", type=float, default=30.0, metavar="S",
                   help="snapshot the run on the first keyframe after S seconds (0: every keyframe)")
    r.add_argument("--rerun", metavar="FILE.rrd", help="write a rerun recording of the run (needs the viz extra: "
                   "pip install 'mono_metric[viz]'; open it with: rerun FILE.rrd)")
    r.add_argument("--rerun-spawn", action="store_true", help="start a rerun viewer and stream the run to it")
    r.add_argument("--rerun-connect", metavar="ADDR", help="stream the run to a running rerun viewer at ADDR "
                   "(host:port, e.g. 127.0.0.1:9876, or a rerun+http:// URL)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(r)

    b = command("batch", "run many sequences (Ray tasks when Ray is installed)", _cmd_batch)
    b.add_argument("inputs", nargs="+", help="paths, globs ('videos/*.mp4'), synthetic: specs or a .txt list")
    b.add_argument("--out", default="outputs/batch", help="results folder (one subfolder per sequence)")
    b.add_argument("--config", help="settings YAML shared by all runs (default: built-in defaults)")
    _add_depth_options(b, "default: the config's; without --config chosen per sequence as in run")
    _add_frame_options(b)
    b.add_argument("--fov", type=float, help="horizontal FOV in degrees for image folders and videos "
                   "(default: metadata, else a 26 mm phone lens)")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="use Ray (a local instance, or the cluster at ADDRESS); default: Ray when installed")
    b.add_argument("--sequential", action="store_true", help="do not use Ray")
    b.add_argument("--cpus-per-task", type=float, default=1.0, help="Ray: CPUs reserved per sequence")
    b.add_argument("--gpus-per-task", type=float, default=0.0, help="Ray: GPUs reserved per sequence")
    b.add_argument("--resume", action="store_true", help="continue an interrupted batch in --out: finished "
                   "sequences are kept, interrupted ones resume from their snapshots")
    _add_threads(b)

    dp = command("depth", "metric depth of an image or a folder of images", cmd_depth)
    dp.add_argument("input", help="image file or folder of images")
    dp.add_argument("--model", default="metric3d_vit_small", help="a Metric3D model name, or mono_metric_tiny")
    dp.add_argument("--weights", help="checkpoint file (default: the cached official file)")
    _add_camera_options(dp)
    dp.add_argument("--input-size", metavar="HxW", help="network input size (multiples of 32 for ConvNeXt, 28 for "
                    "ViT; default: the model's official size)")
    dp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    dp.add_argument("--out", default="outputs/depth", help="results folder")
    _add_threads(dp)

    t = command("train", "train or fine-tune a depth model in canonical camera space", cmd_train)
    t.add_argument("--config", required=True, help="training settings, e.g. configs/train_tiny.yaml")
    t.add_argument("--out", default="runs/train", help="folder for checkpoints, log and model.pt")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--steps", type=int, help="override the config's step count")
    t.add_argument("--init-weights", help="start from this checkpoint, or 'pretrained' for the model's own weights "
                   "(fine-tuning; default: the config's)")
    t.add_argument("--max-minutes", type=float, help="stop cleanly after this many minutes of wall time, with a "
                   "checkpoint; --resume continues (for training across several sessions)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_threads(t)

    x = command("export-onnx", "export the depth network to ONNX at a fixed input size", cmd_export_onnx)
    x.add_argument("--model", default="mono_metric_tiny", help="a model name")
    x.add_argument("--weights", help="checkpoint file (default: embedded or cached official file)")
    x.add_argument("--height", type=int, required=True, help="network input height (a multiple of 32 or 28)")
    x.add_argument("--width", type=int, required=True, help="network input width")
    x.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    x.add_argument("--out", help="output .onnx file (default: MODEL_HxW.onnx)")
    x.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    _add_threads(x)

    e = command("eval", "evaluate an estimated trajectory against ground truth", cmd_eval)
    e.add_argument("--gt", required=True, help="ground-truth trajectory file")
    e.add_argument("--est", required=True, help="estimated trajectory file (may cover part of the ground truth)")
    e.add_argument("--format", choices=["kitti", "tum"], default="tum",
                   help="tum: 'time tx ty tz qx qy qz qw' lines, paired by timestamp; kitti: 12 numbers (3x4 "
                   "rows) per line, paired by line")
    e.add_argument("--max-diff-s", type=float, default=0.02, help="TUM timestamp association tolerance (s)")
    e.add_argument("--out", default="outputs/eval", help="results folder")
    for name, sp in sub.choices.items():  # one output-folder policy for every subcommand (docs/reliability.md)
        sp.add_argument("--overwrite", action="store_true", help="replace the results of an earlier "
                        + ("export at --out" if name == "export-onnx" else f"{name} in --out (refused otherwise)"))
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``mono-metric`` entry point; ``--debug`` may come before or after the subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    clean, debug = split_debug(argv)
    args = build_parser().parse_args(clean)

    def command(args: argparse.Namespace) -> int:
        if hasattr(args, "threads"):
            set_threads(args.threads)
        return args.func(args)
    return run_guarded(command, args, argv, debug or args.debug)


if __name__ == "__main__":
    sys.exit(main())
