"""A run as a rerun recording (``rerun-sdk``, the optional ``viz`` extra): scrub through images, poses,
tracked features, keyframe depth, points, the trajectory and the mesh in the rerun viewer.

Entities (all 3D ones in the map frame ``world`` = the first camera's frame, x right, y down, z forward,
metres; timelines ``frame`` (index, the default) and ``time`` (the frame's timestamp: a date when it
counts seconds since 1970, else seconds)):

* ``world/camera`` (per frame): ``Transform3D`` = the pose ``T_world_cam`` as tracked (online);
  ``world/camera/image``: its ``Pinhole`` (frustum), the image (JPEG) and ``features`` (``Points2D``, the
  keyframe corners tracked into this frame).
* ``keyframe/depth`` (per keyframe): ``EncodedDepthImage`` (16-bit PNG in millimetres, ``meter`` = 1000, at
  most 640 px wide) over one colour range per run (rerun's turbo, near = blue; hover shows metres),
  ``keyframe/depth_scale``: the colour bar with metre ticks (static);
  ``world/map/kf_NNNNNN``: the keyframe's depth back-projected to coloured points; ``world/trajectory``:
  the trajectory so far (the final poses at the end, as written to ``trajectory_tum.txt``);
  ``world/keyframes``: keyframe centres.
* ``world/ground_truth`` (static, when the sequence has it): the ground truth placed at the first camera
  (``T_first_cam_world_gt`` = inverse of the first GT pose: no alignment fitted).
* ``world/loop_closures``: one segment per closure (:meth:`RerunRecorder.log_loop_closure`).
* ``world/mesh`` (at the end): the TSDF mesh.
* ``plots/inliers``, ``plots/tracked`` (per frame) and ``log`` (status changes).
"""
from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np

from mono_metric.errors import InputError
from mono_metric.eval.plot import depth_range_m

VIEW_HINT = "open it with: rerun FILE.rrd (pip install 'mono_metric[viz]' provides the viewer)"


def _rerun():
    try:
        import rerun as rr
    except ImportError as err:
        raise InputError("the rerun recording needs rerun-sdk; install it with pip install 'mono_metric[viz]'") from err
    return rr


def viewer_executable() -> str | None:
    """The ``rerun`` viewer: on PATH, else the one installed beside this Python (a venv not activated)."""
    if shutil.which("rerun"):
        return None  # rerun finds it
    beside = Path(sys.executable).parent / "rerun"
    return str(beside) if beside.is_file() else None


def grpc_url(address: str) -> str:
    """'host:port' or a full 'rerun+http://...' URL -> the viewer's gRPC proxy URL."""
    if "://" in address:
        return address
    host, _, port = address.partition(":")
    return f"rerun+http://{host or '127.0.0.1'}:{port or 9876}/proxy"


class RerunRecorder:
    """Logs a run to rerun: to a ``.rrd`` file, a spawned viewer and/or a running viewer.

    The pipeline calls :meth:`begin`, :meth:`log_frame` (every frame; keyframes included) and :meth:`end`;
    a loop closing back end calls :meth:`log_loop_closure`.

    Args:
        path: ``.rrd`` file to write, or None.
        spawn: start a local viewer and stream to it.
        connect: stream to a running viewer at this address ('host:port' or a rerun+http URL).
        application_id: rerun application id (the viewer groups recordings by it).
        jpeg_quality: images are stored as JPEG of this quality (0-100).
        max_points_per_keyframe: back-projected depth points kept per keyframe (subsampled on a grid).
        depth_max_width: keyframe depth images wider than this are stored downscaled (nearest pixel).
    """

    def __init__(self, path: str | Path | None = None, spawn: bool = False, connect: str | None = None,
                 application_id: str = "mono_metric", jpeg_quality: int = 85, max_points_per_keyframe: int = 10000,
                 depth_max_width: int = 640):
        rr = _rerun()
        if path is None and not spawn and connect is None:
            raise InputError("RerunRecorder needs a path (.rrd), spawn=True or connect=ADDRESS")
        self.rr, self.path = rr, None if path is None else Path(path)
        self.jpeg_quality, self.max_points = int(jpeg_quality), int(max_points_per_keyframe)
        self.depth_max_width = int(depth_max_width)
        self.rec = rr.RecordingStream(application_id, recording_id=str(uuid.uuid4()))
        sinks = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(self.path)))
        if spawn:
            rr.spawn(connect=False, executable_path=viewer_executable())
            sinks.append(rr.GrpcSink())
        if connect is not None:
            sinks.append(rr.GrpcSink(grpc_url(connect)))
        self.rec.set_sinks(*sinks, default_blueprint=layout())
        self.camera = None
        self.depth_range_m: tuple[float, float] | None = None
        self.max_depth_m: float | None = None
        self._closures: list[np.ndarray] = []

    # ----------------------------------------------------------------- the pipeline's calls
    def begin(self, name: str, camera, gt=None, max_depth_m: float | None = None, note: str = "") -> None:
        """Static parts: coordinates, the camera's frustum, the ground truth (a ``Trajectory`` or None).

        Args:
            name: sequence name.
            camera: the :class:`~mono_metric.camera.Camera` the frames are tracked with.
            gt: ground-truth trajectory (world frame of the data), drawn from the first camera.
            max_depth_m: depth beyond this is not drawn (and caps the colour range).
            note: where the intrinsics came from (shown in the ``info`` document).
        """
        rr, rec = self.rr, self.rec
        self.camera, self.max_depth_m = camera, max_depth_m
        rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Y_DOWN, static=True)
        frustum_m = float(np.clip((max_depth_m or 10.0) / 30.0, 0.1, 3.0))  # 0.33 m indoors, 2.7 m on roads
        rec.log("world/camera/image", rr.Pinhole(image_from_camera=camera.K, resolution=[camera.width, camera.height],
                                                 image_plane_distance=frustum_m), static=True)
        text = (f"# {name}\n\nMap frame: the first camera (x right, y down, z forward), metres.\n\n"
                f"Camera: fx {camera.fx:.1f}, fy {camera.fy:.1f}, cx {camera.cx:.1f}, cy {camera.cy:.1f} px, "
                f"{camera.width}x{camera.height} ({note or 'intrinsics given with the data'}).\n")
        if gt is not None and len(gt):
            P = (np.linalg.inv(gt.T_world_cam[0]) @ gt.T_world_cam)[:, :3, 3]
            rec.log("world/ground_truth", rr.LineStrips3D([P], colors=[[210, 210, 210]], radii=rr.Radius.ui_points(1.5)),
                    static=True)
            text += "\nGround truth (light grey): placed at the first camera, no alignment fitted.\n"
        rec.log("info", rr.TextDocument(text, media_type=rr.MediaType.MARKDOWN), static=True)

    def log_frame(self, frame, result, odometry=None) -> None:
        """One tracked frame: pose, image, tracked features; on keyframes also depth, points, trajectory.

        Args:
            frame: the :class:`~mono_metric.types.Frame` (index, timestamp, image).
            result: its :class:`~mono_metric.types.TrackResult`.
            odometry: the :class:`~mono_metric.odometry.Odometry` (tracked pixels, trajectory so far), or None.
        """
        rr, rec = self.rr, self.rec
        self._time(frame.index, frame.timestamp)
        T = np.asarray(result.T_world_cam, np.float64)
        rec.log("world/camera", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]))
        rec.log("world/camera/image/rgb", rr.Image(frame.image).compress(jpeg_quality=self.jpeg_quality))
        if odometry is not None:  # none on a lost frame
            uv = odometry.tracked_pixels if result.status != "lost" else np.zeros((0, 2))
            rec.log("world/camera/image/features", rr.Points2D(uv, colors=[[60, 220, 60]],
                                                               radii=rr.Radius.ui_points(2.5)))
        rec.log("plots/inliers", rr.Scalars(float(result.inliers)))
        rec.log("plots/tracked", rr.Scalars(float(result.tracked)))
        if result.status in ("lost", "reinitialised"):
            level = rr.TextLogLevel.WARN if result.status == "lost" else rr.TextLogLevel.INFO
            rec.log("log", rr.TextLog(f"frame {frame.index}: {result.status}", level=level))
        if result.keyframe and result.depth_m is not None:
            self._keyframe(frame, result, odometry)

    def log_loop_closure(self, frame_index: int, T_world_cam: np.ndarray, matched_T_world_cam: np.ndarray,
                         matched_index: int | None = None) -> None:
        """A loop closure found at ``frame_index``: a segment between the two camera centres (map frame).

        Args:
            frame_index: the frame that closed the loop (sets the time of the log).
            T_world_cam: (4, 4) its pose.
            matched_T_world_cam: (4, 4) pose of the frame or keyframe it was matched to.
            matched_index: that frame's index (for the text log).
        """
        rr, rec = self.rr, self.rec
        self.rec.set_time("frame", sequence=int(frame_index))
        self._closures.append(np.stack([np.asarray(T_world_cam)[:3, 3], np.asarray(matched_T_world_cam)[:3, 3]]))
        rec.log("world/loop_closures", rr.LineStrips3D(self._closures, colors=[[250, 0, 250]],
                                                       radii=rr.Radius.ui_points(2.0)))
        rec.log("log", rr.TextLog(f"frame {frame_index}: loop closed with frame {matched_index}",
                                  level=rr.TextLogLevel.INFO))

    def end(self, trajectory, mesh=None) -> None:
        """The final trajectory (``Trajectory``, as written to ``trajectory_tum.txt``) and the mesh (an
        Open3D ``TriangleMesh`` or None), logged at the last frame."""
        rr, rec = self.rr, self.rec
        if len(trajectory):
            self._time(len(trajectory) - 1, trajectory.timestamps[-1])
            rec.log("world/trajectory", rr.LineStrips3D([trajectory.positions], colors=[[230, 60, 60]],
                                                        radii=rr.Radius.ui_points(1.5)))
        if mesh is not None and len(mesh.triangles):
            colors = np.asarray(mesh.vertex_colors)
            rec.log("world/mesh", rr.Mesh3D(
                vertex_positions=np.asarray(mesh.vertices, np.float32),
                triangle_indices=np.asarray(mesh.triangles, np.uint32),
                vertex_normals=np.asarray(mesh.vertex_normals, np.float32) if mesh.has_vertex_normals() else None,
                vertex_colors=(np.clip(colors, 0, 1) * 255).astype(np.uint8) if len(colors) else None))
        self.close()

    def close(self) -> None:
        """Flush and close the sinks (the ``.rrd`` file is complete after this)."""
        self.rec.flush()
        self.rec.disconnect()

    # ----------------------------------------------------------------- internals
    def _time(self, index: int, timestamp: float) -> None:
        self.rec.set_time("frame", sequence=int(index))
        if timestamp > 1e8:  # seconds since 1970 (TUM, EuRoC, phone videos): shown as dates
            self.rec.set_time("time", timestamp=float(timestamp))
        else:  # seconds from the start of the sequence (KITTI, image folders, synthetic)
            self.rec.set_time("time", duration=float(timestamp))

    def _keyframe(self, frame, result, odometry) -> None:
        rr, rec = self.rr, self.rec
        depth = np.asarray(result.depth_m, np.float32)
        valid = np.isfinite(depth) & (depth > 0)
        if self.max_depth_m:
            valid &= depth < self.max_depth_m
        if self.depth_range_m is None:  # one colour range per run, from the first keyframe (as depth/*.png)
            self.depth_range_m = depth_range_m(depth, self.max_depth_m)
            rec.log("keyframe/depth_scale", rr.Image(depth_colorbar(self.depth_range_m)), static=True)
        mm = np.clip(np.round(np.where(valid, depth, 0) * 1000.0), 0, 65535).astype(np.uint16)
        if mm.shape[1] > self.depth_max_width:  # a 16-bit PNG at most this wide: ~0.1 MB per keyframe
            h = round(mm.shape[0] * self.depth_max_width / mm.shape[1])
            mm = cv2.resize(mm, (self.depth_max_width, h), interpolation=cv2.INTER_NEAREST)
        rec.log("keyframe/depth", rr.EncodedDepthImage(cv2.imencode(".png", mm)[1].tobytes(), media_type="image/png",
                                                       meter=1000.0, colormap="turbo",
                                                       depth_range=[1000 * v for v in self.depth_range_m]))
        T = np.asarray(result.T_world_cam, np.float64)
        step = max(1, int(np.ceil(np.sqrt(valid.sum() / max(self.max_points, 1)))))
        v, u = np.nonzero(valid[::step, ::step])
        v, u = v * step, u * step
        if self.camera is not None and len(v):
            xyz = self.camera.backproject(np.stack([u, v], 1).astype(np.float64), depth[v, u])
            rec.log(f"world/map/kf_{frame.index:06d}", rr.Points3D(
                xyz @ T[:3, :3].T + T[:3, 3], colors=frame.image[v, u], radii=rr.Radius.ui_points(1.5)))
        if odometry is not None:
            traj = odometry.trajectory()
            rec.log("world/trajectory", rr.LineStrips3D([traj.positions], colors=[[230, 60, 60]],
                                                        radii=rr.Radius.ui_points(1.5)))
            centres = np.array([k.T_world_cam[:3, 3] for k in odometry.keyframes()]).reshape(-1, 3)
            rec.log("world/keyframes", rr.Points3D(centres, colors=[[255, 160, 0]], radii=rr.Radius.ui_points(4.0)))


def layout():
    """The viewer's default layout: the 3D map left; the camera image with its features, the keyframe depth
    with its colour bar, the inlier plot and the log right."""
    import rerun.blueprint as rrb

    return rrb.Blueprint(rrb.Horizontal(
        rrb.Spatial3DView(origin="world", name="map (first camera frame)"),
        rrb.Vertical(
            rrb.Spatial2DView(origin="world/camera/image", name="image and tracked features"),
            rrb.Horizontal(rrb.Spatial2DView(origin="keyframe/depth", name="keyframe depth"),
                           rrb.Spatial2DView(origin="keyframe/depth_scale", name="metres"), column_shares=[5, 1]),
            rrb.Horizontal(rrb.TimeSeriesView(origin="plots", name="inliers / tracked"),
                           rrb.Vertical(rrb.TextLogView(origin="log", name="log"),
                                        rrb.TextDocumentView(origin="info", name="info")))),
        column_shares=[3, 2]), rrb.TimePanel(timeline="frame"))


def depth_colorbar(range_m: tuple[float, float], height: int = 256, width: int = 120) -> np.ndarray:
    """(height, width, 3) uint8 RGB picture of rerun's turbo colour scale over ``range_m`` with ticks in metres
    (far at the top)."""
    from matplotlib import colormaps

    bar_w = 28
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(bar_w, 1)
    img = np.full((height, width, 3), 255, np.uint8)
    img[:, :bar_w] = (colormaps["turbo"](ramp)[..., :3] * 255).astype(np.uint8)
    lo, hi = range_m
    step = max(float(np.ptp(range_m)) / 5, 1e-6)
    p = 10.0 ** np.floor(np.log10(step))
    step = min(m * p for m in (1.0, 2.0, 5.0, 10.0) if m * p >= step)
    for value in np.arange(np.ceil(lo / step) * step, hi + 1e-9, step):
        y = int(round((hi - value) / max(hi - lo, 1e-9) * (height - 1)))
        cv2.line(img, (bar_w, y), (bar_w + 6, y), (0, 0, 0), 1)
        cv2.putText(img, f"{value:g} m", (bar_w + 9, min(max(y + 4, 10), height - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def read_recording(path: str | Path) -> dict[str, "pyarrow.Table"]:
    """The entities of a ``.rrd`` file, read back with rerun's own reader (``rerun.chunk.RrdReader``).

    Returns:
        entity path (e.g. '/world/camera') -> a pyarrow table with one row per logged row: the timeline
        columns ('frame', 'time', 'log_time'; absent for static data) and one column per component
        (e.g. 'Transform3D:translation'), sorted by 'frame' when it is there.
    """
    import pyarrow as pa

    _rerun()
    from rerun.chunk import RrdReader

    import warnings

    batches: dict[str, list] = {}
    with warnings.catch_warnings():  # a streamed file (rerun --save) has no footer: read by a whole-file scan
        warnings.filterwarnings("ignore", message=".*no footer/manifest.*")
        chunks = list(RrdReader(str(path)).stream())
    for chunk in chunks:
        batches.setdefault(chunk.entity_path, []).append(chunk.to_record_batch())
    tables = {}
    for entity, parts in batches.items():
        table = pa.Table.from_batches(parts) if len({b.schema for b in parts}) == 1 else pa.concat_tables(
            [pa.Table.from_batches([b]) for b in parts], promote_options="permissive")
        tables[entity] = table.sort_by("frame") if "frame" in table.column_names else table
    return tables
