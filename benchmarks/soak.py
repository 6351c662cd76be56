"""Soak run: a long synthetic sequence end to end; memory (RSS) and speed over time.

Runs ``mono-metric run`` in a subprocess on a ``--frames``-frame synthetic sequence and samples the
child's resident memory every second together with the frames written to ``trajectory_tum.txt``
(appended frame by frame). Prints one row per ``--every`` frames: elapsed time, fps over the window,
current and peak RSS. Memory should stay flat apart from the map itself (TSDF blocks and the
quick-look cloud grow with the area covered; keyframes keep only their corner points).

    python benchmarks/soak.py [--frames 2000] [--scene street] [--depth gt_degraded] [--every 200] [--no-map]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mono_metric.config import load_config


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--scene", default="street", choices=["street", "room"])
    ap.add_argument("--depth", default="gt_degraded")
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--no-map", action="store_true", help="mapping off: memory of the odometry loop alone")
    ap.add_argument("--out", default="runs/soak")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)  # progress is read from this run's trajectory file
    spec = f"synthetic:{args.scene}?seed=5&frames={args.frames}"
    config = Path(f"configs/synthetic_{args.scene}.yaml")
    if args.no_map:
        out.mkdir(parents=True)
        cfg = load_config(config, {"mapping": {"enabled": False}})
        config = out / "soak_config.yaml"
        cfg.save(config)
    cmd = [sys.executable, "-m", "mono_metric.cli", "run", spec, "--depth", args.depth,
           "--config", str(config), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    traj = out / "trajectory_tum.txt"
    rows, peak, last = [], 0.0, (0, 0.0)
    while proc.poll() is None:
        time.sleep(1.0)
        mem = rss_mb(proc.pid)
        peak = max(peak, mem) if mem == mem else peak
        done = traj.read_text().count("\n") if traj.is_file() else 0
        if done >= last[0] + args.every or (done == args.frames and done > last[0]):
            now = time.perf_counter() - t0
            rows.append({"frames": done, "elapsed_s": now, "fps": (done - last[0]) / max(now - last[1], 1e-9),
                         "rss_mb": mem, "peak_rss_mb": peak})
            print(json.dumps(rows[-1]), flush=True)
            last = (done, now)
    tail = proc.stdout.read()
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{tail}")
    timings = json.loads((out / "timings.json").read_text())
    lines = ["| frames | elapsed (s) | fps (window) | RSS (MB) | peak RSS (MB) |", "|---|---|---|---|---|"]
    lines += [f"| {r['frames']} | {r['elapsed_s']:.0f} | {r['fps']:.2f} | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
              for r in rows]
    table = "\n".join(lines)
    print(table)
    print(tail.strip().splitlines()[-8:] and "\n".join(tail.strip().splitlines()[-8:]))
    print(f"overall {timings['overall_fps']:.2f} fps, tracking {timings['tracking_fps']:.1f} fps without depth")
    (out / "soak.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
