"""Top-view trajectory plot (GT vs estimate) written as PNG with matplotlib (Agg, no display)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mono_metric.types import Trajectory


def _ground_axes(P: np.ndarray) -> tuple[int, int]:
    """The two axes with the largest spread: the ground plane for driving and walking."""
    spread = P.max(0) - P.min(0)
    a, b = sorted(np.argsort(spread)[-2:])
    return int(a), int(b)


def plot_top_view(path: str | Path, est: Trajectory, gt: Trajectory | None = None,
                  T_gt_est: np.ndarray | None = None, title: str = "") -> None:
    """Write a top view of ``est`` (aligned by ``T_gt_est`` when given) and ``gt``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P_est = est.positions if T_gt_est is None else est.transformed(T_gt_est).positions
    ref = gt.positions if gt is not None else P_est
    a, b = _ground_axes(ref)
    names = "xyz"
    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    if gt is not None:
        ax.plot(gt.positions[:, a], gt.positions[:, b], "k-", lw=2, label="ground truth")
    ax.plot(P_est[:, a], P_est[:, b], "-", color="tab:red", lw=1.5, label="estimate")
    ax.plot(P_est[0, a], P_est[0, b], "o", color="tab:green", label="start")
    ax.set_xlabel(f"{names[a]} [m]")
    ax.set_ylabel(f"{names[b]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
