"""Pictures of a run, written as PNG with matplotlib (Agg, no display): the trajectory from above and from
the side, and keyframe depth beside its image with a colour bar in metres."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mono_metric.types import Trajectory

DEPTH_CMAP = "turbo_r"  # near = red, far = blue (the rerun viewer has no reversed turbo: near = blue there)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def nice_length(x: float) -> float:
    """The largest 1, 2 or 5 times a power of ten that is <= ``x`` (> 0)."""
    if not x > 0:
        return 1.0
    p = 10.0 ** np.floor(np.log10(x))
    return float(max(m * p for m in (1.0, 2.0, 5.0) if m * p <= x * (1 + 1e-9)))


def depth_range_m(depth_m: np.ndarray, max_depth_m: float | None = None) -> tuple[float, float]:
    """One colour range for a whole run, from its first keyframe's depth: 0 to the 98th percentile of the
    valid depth times 1.1, rounded up to 1, 1.5, 2, 3, 4, 5, 6 or 8 times a power of ten, at most
    ``max_depth_m``."""
    valid = depth_m[np.isfinite(depth_m) & (depth_m > 0)]
    top = 1.1 * float(np.percentile(valid, 98)) if valid.size else 1.0
    p = 10.0 ** np.floor(np.log10(max(top, 1e-3)))
    top = min(m * p for m in (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0) if m * p >= top * (1 - 1e-9))
    if max_depth_m:
        top = min(top, float(max_depth_m))
    return 0.0, float(top)


def up_axis(T_world_cam: np.ndarray) -> tuple[int, float]:
    """The world axis closest to "up" (the cameras' mean -y axis: cameras are held and mounted roughly
    upright) and its sign (+1: up is +axis, -1: up is -axis)."""
    up = -np.asarray(T_world_cam)[:, :3, 1].mean(0)
    axis = int(np.argmax(np.abs(up)))
    return axis, float(np.sign(up[axis]) or 1.0)


def _views(P: np.ndarray, up: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top view axes, side view axes): the two axes other than ``up``, and the one of them with the larger
    spread against ``up``."""
    a, b = (i for i in range(3) if i != up)
    along = a if np.ptp(P[:, a]) >= np.ptp(P[:, b]) else b
    return (a, b), (along, up)


def _scale_bar(ax, extent_m: float) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = nice_length(extent_m / 4)
    label = f"{length:g} m" if length >= 1 else f"{100 * length:g} cm"
    ax.add_artist(AnchoredSizeBar(ax.transData, length, label, "lower right", pad=0.4, frameon=True,
                                  size_vertical=0, color="black", sep=3))


def plot_trajectory(path: str | Path, est: Trajectory, gt: Trajectory | None = None,
                    T_gt_est: np.ndarray | None = None, keyframes: np.ndarray | None = None,
                    lost_spans: list[list[int]] | None = None, ate_rmse_m: float | None = None,
                    title: str = "") -> None:
    """Write a top view and a side view of a trajectory, with ground truth when given.

    Args:
        path: PNG file.
        est: the estimate (N poses).
        gt: ground truth paired pose by pose with ``est`` (N poses), or None.
        T_gt_est: (4, 4) rigid alignment of ``est`` onto ``gt`` (the ATE's SE(3) fit, no scale); the
            estimate is drawn in the ground truth's frame with it. None: drawn as is.
        keyframes: (K,) frame indices of keyframes, marked with dots (those beyond ``est`` are left out).
        lost_spans: [first, last] frame index of each run of lost frames, drawn in orange (cut at ``est``'s end).
        ate_rmse_m: the ATE RMSE stated in the title.
        title: first line of the title (e.g. the sequence name).
    """
    plt = _pyplot()
    aligned = est if T_gt_est is None else est.transformed(T_gt_est)
    n = len(est)  # a ground truth shorter than the run: only its first n frames are drawn
    keyframes = [k for k in (keyframes if keyframes is not None else []) if 0 <= k < n]
    lost_spans = [[a, min(b, n - 1)] for a, b in (lost_spans or []) if a < n]
    P = aligned.positions
    ref = np.concatenate([P, gt.positions]) if gt is not None else P
    up, up_sign = up_axis(gt.T_world_cam if gt is not None else aligned.T_world_cam)
    (ta, tb), (sa, sb) = _views(ref, up)
    extent = float(max(np.ptp(ref[:, ta]), np.ptp(ref[:, tb]), 1e-3))
    names = "xyz"
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.4), dpi=100, gridspec_kw={"width_ratios": [1, 1]})
    for ax, (a, b), view in ((axes[0], (ta, tb), f"top view (from above, up = {'-+'[up_sign > 0]}{names[up]})"),
                             (axes[1], (sa, sb), f"side view (up = {'-+'[up_sign > 0]}{names[up]}; height "
                                                 "exaggerated when small)")):
        if gt is not None:
            ax.plot(gt.positions[:, a], gt.positions[:, b], "-", color="0.25", lw=2.2, label="ground truth")
        ax.plot(P[:, a], P[:, b], "-", color="tab:red", lw=1.4, label="estimate")
        for k, (i0, i1) in enumerate(lost_spans or []):
            seg = P[max(i0 - 1, 0):i1 + 1]
            ax.plot(seg[:, a], seg[:, b], "-", color="tab:orange", lw=4, alpha=0.8,
                    label=f"lost ({sum(j1 - j0 + 1 for j0, j1 in lost_spans)} frames)" if k == 0 else None)
        if keyframes:
            kf = P[np.asarray(keyframes, int)]
            ax.plot(kf[:, a], kf[:, b], "o", ms=3.5, mfc="white", mec="tab:red", mew=1.0,
                    label=f"keyframes ({len(kf)})")
        ax.plot(P[0, a], P[0, b], "o", color="tab:green", ms=7, label="start")
        ax.set_xlabel(f"{names[a]} [m]")
        ax.set_ylabel(f"{names[b]} [m]")
        if ax is axes[0]:  # to scale, with a scale bar
            ax.set_aspect("equal", adjustable="datalim")
            _scale_bar(ax, extent)
        else:  # the height at least 10 % of the top view's extent, so that noise does not fill the plot
            mid, half = 0.5 * (ref[:, b].max() + ref[:, b].min()), max(0.55 * np.ptp(ref[:, b]), 0.05 * extent)
            ax.set_ylim(mid - half, mid + half)
        if b == up and up_sign < 0:  # e.g. camera frames (and KITTI's ground truth): y points down
            ax.invert_yaxis()
        ax.grid(True, alpha=0.3)
        ax.set_title(view, fontsize=10)
    axes[0].legend(loc="best", fontsize=8)
    if gt is not None:
        frame = "estimate aligned to ground truth by SE(3) (rotation + translation, no scale)"
        if ate_rmse_m is not None:
            frame += f"; ATE RMSE {ate_rmse_m:.3f} m"
    else:
        frame = "no ground truth; map frame = first camera (x right, y down, z forward), metres as estimated"
    fig.suptitle(f"{title}\n{frame}" if title else frame, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_depth_preview(path: str | Path, image: np.ndarray, depth_m: np.ndarray, range_m: tuple[float, float],
                       title: str = "") -> None:
    """Write the image beside its depth coloured over a fixed range, with a colour bar in metres.

    Args:
        path: PNG file.
        image: (H, W, 3) uint8 RGB.
        depth_m: (H, W) metres, 0 / NaN / inf = invalid (drawn black).
        range_m: (near, far) of the colour scale; the same for every preview of a run so that colours
            compare across frames.
        title: caption (e.g. the frame number).
    """
    if image.ndim != 3 or image.shape[2] != 3 or depth_m.shape != image.shape[:2]:
        raise ValueError(f"expected an (H, W, 3) image and (H, W) depth, got {image.shape} and {depth_m.shape}")
    plt = _pyplot()
    h, w = depth_m.shape
    d = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, np.nan)
    cmap = plt.get_cmap(DEPTH_CMAP).with_extremes(bad="black")
    width_in = 11.0
    fig, axes = plt.subplots(1, 2, figsize=(width_in, width_in / 2 * h / w + 0.7), dpi=100, layout="constrained")
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    shown = axes[1].imshow(d, cmap=cmap, vmin=range_m[0], vmax=range_m[1], interpolation="nearest")
    valid = d[np.isfinite(d)]
    axes[1].set_title(f"metric depth (median {np.median(valid):.2f} m)" if valid.size else "metric depth (none valid)",
                      fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    bar = fig.colorbar(shown, ax=axes, fraction=0.025, pad=0.01, extend="max")
    bar.set_label("depth [m]")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
