"""Intrinsics from file metadata: 35 mm-equivalent focal lengths in EXIF and QuickTime, a phone default.

The 35 mm-equivalent focal length is defined on the diagonal (CIPA DC-008): a lens of ``f35`` mm on a
36 x 24 mm frame (diagonal 43.27 mm) sees the same diagonal angle, so
``f_px = f35 * diagonal_px / 43.27``.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
# Main cameras of current phones are about 24-28 mm equivalent (a 67-72 degree horizontal FOV in 4:3
# photos and 16:9 video); 26 mm is the most common value.
DEFAULT_FOCAL_35MM = 26.0
_QT_FOCAL_KEY = b"com.apple.quicktime.camera.focal_length.35mm_equivalent"


def focal_px_from_35mm(f35_mm: float, width: int, height: int) -> float:
    """Focal length in pixels of a ``width`` x ``height`` image from its 35 mm-equivalent focal length."""
    return float(f35_mm) * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM


def image_focal_35mm(path: str | Path) -> float | None:
    """EXIF ``FocalLengthIn35mmFilm`` of a JPEG/PNG/TIFF/WebP image, or None."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            value = img.getexif().get_ifd(0x8769).get(0xA405)
    except (OSError, ValueError, SyntaxError, ImportError):
        return None
    return float(value) if value and float(value) > 0 else None


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, payload start, payload end) of the ISO-BMFF boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _read_moov(path: Path) -> bytes | None:
    """The ``moov`` box of an MP4/MOV file (headers are read; media data is skipped)."""
    with open(path, "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            size, kind = struct.unpack(">I4s", head)
            header = 8
            if size == 1:
                size, header = struct.unpack(">Q", f.read(8))[0], 16
            if kind == b"moov":
                return f.read(size - header) if size else f.read()
            if size == 0 or size < header:
                return None
            f.seek(size - header, 1)


def video_focal_35mm(path: str | Path) -> float | None:
    """QuickTime ``com.apple.quicktime.camera.focal_length.35mm_equivalent`` of a video, or None."""
    try:
        moov = _read_moov(Path(path))
    except (OSError, struct.error):
        return None
    if not moov:
        return None
    for kind, a, b in _boxes(moov):
        if kind != b"meta":
            continue
        if moov[a + 4:a + 8] != b"hdlr" and moov[a + 12:a + 16] == b"hdlr":
            a += 4  # an ISO full box (version and flags) rather than QuickTime's plain one
        children = {k: (s, e) for k, s, e in _boxes(moov, a, b)}
        if b"keys" not in children or b"ilst" not in children:
            continue
        ks, ke = children[b"keys"]
        count = struct.unpack(">I", moov[ks + 4:ks + 8])[0]
        index, keys = None, [(k, s, e) for k, s, e in _boxes(moov, ks + 8, ke)][:count]
        for i, (_, s, e) in enumerate(keys, start=1):
            if moov[s:e] == _QT_FOCAL_KEY:
                index = i
        if index is None:
            continue
        for k, s, e in _boxes(moov, *children[b"ilst"]):
            if struct.unpack(">I", k)[0] != index:
                continue
            for dk, ds, de in _boxes(moov, s, e):
                if dk == b"data":
                    value = _data_value(moov[ds:de])
                    return value if value and value > 0 else None
    return None


def _data_value(payload: bytes) -> float | None:
    """A number from a QuickTime ``data`` atom (type indicator, locale, value)."""
    if len(payload) < 9:
        return None
    kind, raw = struct.unpack(">I", payload[:4])[0] & 0xFFFFFF, payload[8:]
    try:
        if kind == 23 and len(raw) == 4:
            return struct.unpack(">f", raw)[0]
        if kind == 24 and len(raw) == 8:
            return struct.unpack(">d", raw)[0]
        if kind in (21, 22) and len(raw) in (1, 2, 4, 8):
            return float(int.from_bytes(raw, "big", signed=kind == 21))
        if kind == 1:
            return float(raw.decode("utf-8").strip())
    except (ValueError, UnicodeDecodeError):
        return None
    return None
