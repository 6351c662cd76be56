"""Validation shared by every typed config (run, training, realism): keys, types and ranges checked, each
error an :class:`InputError` naming the key."""
from __future__ import annotations

import dataclasses
import types
import typing

from mono_metric.errors import InputError


def check_choice(key: str, value, options) -> None:
    if value not in options:
        raise InputError(f"config {key}={value!r} is not one of {list(options)}")


def check_range(key: str, value, lo, hi) -> None:
    if not lo <= value <= hi:
        raise InputError(f"config {key}={value!r} is out of range [{lo}, {hi}]")


def check_pair(key: str, value, lo, hi, integer: bool = False, ordered: bool = True) -> None:
    """``value`` must be two numbers in [lo, hi] (integers when ``integer``), ascending when ``ordered``."""
    kind = int if integer else (int, float)
    if not (isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, kind) and not isinstance(v, bool) and lo <= v <= hi for v in value)
            and (not ordered or value[0] <= value[1])):
        what = "integers" if integer else "numbers"
        raise InputError(f"config {key}={value!r} must be two {what} in [{lo}, {hi}]"
                         + (", the first not larger" if ordered else ""))


def build_section(cls, data: dict, prefix: str = ""):
    """Instantiate dataclass ``cls`` from ``data``, checking keys and types recursively."""
    if not isinstance(data, dict):
        raise InputError(f"config section {prefix or 'root'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown config key {prefix}{unknown[0]}; known keys: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        key, hint = f"{prefix}{name}", hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build_section(hint, value or {}, f"{key}.")
        else:
            kwargs[name] = _coerce(key, value, hint)
    return cls(**kwargs)


def _coerce(key: str, value, hint):
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is list and isinstance(value, list):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t in (int, str, bool) and type(value) is t:
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise InputError(f"config {key}={value!r} has the wrong type: expected {names}")
