"""Place recognition: a global descriptor per keyframe and a candidate search over older keyframes.

Two descriptors (``backend.descriptor``):

- ``bow``: bag of binary words. The vocabulary is built online from the first keyframe's ORB
  descriptors (k-majority clustering in Hamming space, a few iterations); every keyframe becomes an
  L1-normalised word histogram, compared by tf-idf cosine with document frequencies counted online.
- ``thumbnail``: the grey image pooled to 32x24, zero-mean and unit-norm, compared by dot product.

Candidates must also pass a metric-pose prior: with metric depth the drift is bounded by a fraction of the
path travelled, so a keyframe farther than ``proximity_min_m + proximity_ratio * path`` from the new one
cannot be the same place.
"""
from __future__ import annotations

import cv2
import numpy as np

THUMB_WH = (32, 24)


def thumbnail_descriptor(gray: np.ndarray) -> np.ndarray:
    """(768,) float32 unit-norm pooled image of (H, W) uint8 ``gray``."""
    small = cv2.resize(gray, THUMB_WH, interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1)
    small -= small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-6)


class BinaryVocabulary:
    """Binary words (``words``, (K, 32) uint8) from ORB descriptors by k-majority clustering.

    Args:
        descriptors: (N, 32) uint8 ORB descriptors to cluster.
        words: vocabulary size K (at most N).
        iterations: assignment / bitwise-majority rounds.
        seed: initial word sampling.
    """

    def __init__(self, descriptors: np.ndarray, words: int = 256, iterations: int = 3, seed: int = 0):
        desc = np.asarray(descriptors, np.uint8)
        if desc.ndim != 2 or desc.shape[1] != 32 or len(desc) == 0:
            raise ValueError(f"expected (N, 32) uint8 ORB descriptors, got {desc.shape}")
        rng = np.random.default_rng(seed)
        self.words = desc[rng.choice(len(desc), min(words, len(desc)), replace=False)].copy()
        bits = np.unpackbits(desc, axis=1)
        for _ in range(iterations):
            label = self.assign(desc)
            for k in range(len(self.words)):
                members = bits[label == k]
                if len(members):
                    self.words[k] = np.packbits(members.mean(0) >= 0.5)
        self.df = np.zeros(len(self.words))  # keyframes containing each word
        self.documents = 0

    def assign(self, desc: np.ndarray) -> np.ndarray:
        """(N,) nearest word (Hamming) of (N, 32) descriptors."""
        if len(desc) == 0:
            return np.zeros(0, int)
        _, nearest = cv2.batchDistance(np.asarray(desc, np.uint8), self.words, cv2.CV_32S, normType=cv2.NORM_HAMMING,
                                       K=1, update=0, crosscheck=False)  # BFMatcher.match's search, as an array
        return nearest[:, 0].astype(int)

    def histogram(self, desc: np.ndarray) -> np.ndarray:
        """(K,) float32 L1-normalised word histogram of (N, 32) descriptors."""
        h = np.bincount(self.assign(desc), minlength=len(self.words)).astype(np.float32) if len(desc) else \
            np.zeros(len(self.words), np.float32)
        return h / max(float(h.sum()), 1.0)

    def add_document(self, histogram: np.ndarray) -> None:
        self.df += histogram > 0
        self.documents += 1

    def scores(self, query: np.ndarray, database: np.ndarray) -> np.ndarray:
        """(M,) tf-idf cosine similarity of a (K,) histogram to (M, K) histograms."""
        idf = np.log((self.documents + 1.0) / (self.df + 1.0)).astype(np.float32)
        q, d = query * idf, database * idf
        return d @ q / np.maximum(np.linalg.norm(d, axis=1) * np.linalg.norm(q), 1e-12)


def proximity_mask(positions: np.ndarray, path_m: np.ndarray, query: int, ratio: float, min_m: float) -> np.ndarray:
    """(K,) bool: keyframes close enough to keyframe ``query`` given the drift bound.

    Args:
        positions: (K, 3) keyframe centres (m).
        path_m: (K,) path length travelled up to each keyframe (m).
        query: index of the new keyframe.
        ratio, min_m: the bound ``min_m + ratio * |path_m[query] - path_m[k]|``.
    """
    dist = np.linalg.norm(positions - positions[query], axis=1)
    return dist <= min_m + ratio * np.abs(path_m[query] - path_m)
