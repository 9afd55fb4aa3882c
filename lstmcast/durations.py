"""Durations people type — `90s`, `10m`, `2h`, `7d`, `2w`, or a number of seconds — as seconds.

One parser for every duration lstmcast reads (tune's --budget and --trial-limit, score's spans,
the config's data.timeout and archive.timeout), in linear time and bounded: the text is at most
MAX_CHARS characters and the number at most 15 digits, so a 60,000-character value is refused at
once, and every caller names the largest duration it takes (a span of 99999999999 days is an
error line, not an overflow).
"""

from __future__ import annotations

import math
import re

from lstmcast.errors import ConfigError, shown

MAX_CHARS = 40
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
DAY = 86400.0
_FORM = re.compile(r"\s*(\d{1,15}(?:\.\d{0,9})?|\.\d{1,9})\s*([a-z]{0,3})\s*")


def text(seconds: float) -> str:
    """A duration as the config would write it: 90s, 10m, 2h, 1d."""
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{seconds / UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def seconds(
    value: object,
    what: str,
    *,
    most: float,
    units: tuple[str, ...] = ("s", "m", "h", "d"),
    bare: bool = True,
    example: str = "30m, 2h or 600 (seconds)",
) -> float:
    """`value` (`90s`, `10m`, a number of seconds where `bare`) as seconds > 0 and ≤ `most`; else one ConfigError.

    `what` names the option or key in the message; `units` are those it takes.
    """
    raw = str(value)
    match = _FORM.fullmatch(raw.lower()) if len(raw) <= MAX_CHARS else None
    unit = match.group(2) if match else ""
    if match is None or (unit and unit not in units) or (not unit and not bare):
        raise ConfigError(f"{what} {shown(raw, 60)} is not a duration — write e.g. {example}")
    amount = float(match.group(1)) * (UNITS[unit] if unit else 1.0)
    if not math.isfinite(amount) or amount <= 0:
        raise ConfigError(f"{what} {shown(raw, 60)} is not a positive duration — write e.g. {example}")
    if amount > most:
        raise ConfigError(f"{what} {shown(raw, 60)} is longer than {text(most)} — write e.g. {example}")
    return amount
