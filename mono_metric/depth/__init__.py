"""Depth: the canonical camera transform (more to come: Metric3D models, weights)."""
