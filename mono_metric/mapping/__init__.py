"""Mapping: the dense TSDF map and point cloud (tsdf.py) and the local bundle adjustment over keyframes
(local_ba.py)."""
