"""One config knob: how it is declared (default, one-line doc, valid range or choices) and how a raw YAML
value is coerced and checked against that declaration. `config` declares the schema with these."""

from __future__ import annotations

import contextlib
import difflib
import math
import types
import typing
from dataclasses import field
from typing import Any

from lstmcast.errors import ConfigError, shown


def knob(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
    path: bool = False,
) -> Any:
    """Declare a config key: its default, a one-line description and what values are valid."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "path": path}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    return field(default_factory=cls, metadata={"doc": doc})


def coerce(value: Any, tp: Any, meta: typing.Mapping[str, Any], key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(value, inner, meta, key)
    if origin is list:
        (item_tp,) = args
        if value is None:
            return []
        if not isinstance(value, list):
            value = [value]
        return [coerce(v, item_tp, meta, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number{range_text(meta)}, got {show(value)}")
        check_range(value, meta, key)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key} must be a number{range_text(meta)}, got {show(value)}")
        check_range(float(value), meta, key)
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # a column named 2024 in the CSV header
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {show(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            more = f" — did you mean {hint[0]}?" if hint else ""
            raise ConfigError(f"{key} = {shown(value)} is not one of {', '.join(choices)}{more}")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module


def check_range(value: float, meta: typing.Mapping[str, Any], key: str) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    too_low = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
    too_high = hi is not None and value > hi
    if too_low or too_high:
        raise ConfigError(f"{key} = {shown(value)} is out of range — it must be{range_text(meta)}")


def range_text(meta: typing.Mapping[str, Any]) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None:
        return ""
    low = f"> {_num(lo)}" if meta.get("lo_open") else f"≥ {_num(lo)}"
    return f" {low} and ≤ {_num(hi)}" if hi is not None else f" {low}"


def _num(x: float | None) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def show(value: Any) -> str:
    return f"{shown(value)} ({type(value).__name__})"
