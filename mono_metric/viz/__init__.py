"""Looking at a run: the rerun recording (:class:`RerunRecorder`, optional ``viz`` extra) and the HTML report."""
from mono_metric.viz.recorder import RerunRecorder, read_recording

__all__ = ["RerunRecorder", "read_recording"]
