"""`lstmcast tune`'s search space: the keys searched and their ranges, from the data or a --space file.

A `Dim` is one config key with its choices or a numeric range. The default space is derived from
the data's facts (`starter`: the same lookback rule `init` uses); a space file is checked value by
value against the config's own rules before any trial runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast import config, yamlsafe
from lstmcast.config import Config
from lstmcast.errors import ConfigError, shown
from lstmcast.flows import starter
from lstmcast.flows.starter import DataFacts

MAX_STEPS = 32  # default space: longer LSTM sequences cost minutes per epoch on CPU (the committed configs use 7–14)


@dataclass(frozen=True)
class Dim:
    """One searched key: a list of choices, or a numeric range (int when both ends are ints)."""

    key: str
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.key, self.choices)
        assert self.low is not None and self.high is not None
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            return trial.suggest_int(self.key, self.low, self.high, step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def holds(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        assert self.low is not None and self.high is not None
        return isinstance(value, int | float) and self.low <= value <= self.high

    def nearest(self, value: Any) -> Any:
        """`value` if the space holds it, else the closest choice (numbers) or the range's nearer end; None if neither."""
        if self.holds(value):
            return value
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if self.choices is not None:
            numbers = [c for c in self.choices if isinstance(c, int | float) and not isinstance(c, bool)]
            return min(numbers, key=lambda c: abs(c - value)) if numeric and numbers else None
        if not numeric:
            return None
        assert self.low is not None and self.high is not None
        return type(self.low)(min(max(value, self.low), self.high))

    def to_dict(self) -> Any:
        if self.choices is not None:
            return list(self.choices)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def default_space(cfg: Config, facts: DataFacts) -> list[Dim]:
    """Knobs that matter, ranged by the data: the lookbacks `starter.lookbacks` finds (the last four), patches
    dividing them, epochs by the data's size (300 … 8,000 optimiser steps)."""
    h = cfg.window.horizon
    unit = starter.season_unit(facts, h)
    lookbacks = starter.lookbacks(facts, h)[-4:]
    patches = [p for p in sorted({1, unit // 4, unit // 2, unit}) if p >= 1 and all(lb % p == 0 for lb in lookbacks)]
    patches = [p for p in patches if lookbacks[0] // p <= MAX_STEPS] or patches[-1:]  # some lookback fits
    per_epoch = max(1, starter.training_windows(facts, cfg.window.lookback, h) // cfg.train.batch_size)
    low_epochs = max(1, math.ceil(300 / per_epoch))
    high_epochs = max(low_epochs + 1, min(100, math.ceil(8000 / per_epoch)))
    space = [
        Dim("train.lr", low=3e-4, high=1e-2, log=True),
        Dim("train.epochs", low=low_epochs, high=high_epochs),
        Dim("train.lr_schedule", choices=["constant", "cosine"]),
        Dim("window.lookback", choices=lookbacks),
        Dim("model.patch", choices=patches),
        Dim("model.hidden_size", choices=[32, 64, 128, 256]),
        Dim("model.num_layers", choices=[1, 2, 3]),
        Dim("model.dropout", choices=[0.0, 0.1, 0.2, 0.3]),
        Dim("window.norm", choices=["last", "mean", "none"]),
        Dim("train.loss", choices=["mae", "mse", "huber"]),
    ]
    if cfg.data.timestamp is not None and facts.freq is not None:
        space.append(Dim("data.calendar", choices=["auto", "none"]))
    return space


def read_space(path: Path) -> list[Dim]:
    """A space file: `section.key: [choices]` or `section.key: {low, high, log, step}` per line.

    Read as a config is (`yamlsafe`): a regular UTF-8 file of at most a megabyte; duplicate keys, alias bombs and
    deep nesting refused, each in one line naming the file and line."""
    raw = yamlsafe.parse(yamlsafe.read_text(path, "--space file"), f"--space {path}")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"--space {path} must map config keys to choices, e.g. model.hidden_size: [64, 128]")
    return [_dim(path, str(key), spec) for key, spec in raw.items()]


def _dim(path: Path, key: str, spec: Any) -> Dim:
    parts = key.split(".")
    if len(parts) != 2 or config.field_at(parts) is None or parts[0] in ("output",):
        raise ConfigError(
            f"--space {path}: {shown(key)} is not a config key to search — write section.key, e.g. train.lr"
        )
    if isinstance(spec, list) and spec:
        return Dim(key, choices=spec)
    if isinstance(spec, dict) and set(spec) <= {"low", "high", "log", "step"} and {"low", "high"} <= set(spec):
        low, high = spec["low"], spec["high"]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not low < high or (spec.get("log") and low <= 0):
            raise ConfigError(f"--space {path}: {key} needs numbers low < high (and low > 0 with log: true)")
        return Dim(key, low=low, high=high, log=bool(spec.get("log")), step=spec.get("step"))
    raise ConfigError(
        f"--space {path}: {key} must be a list of choices or {{low: …, high: …[, log: true]}} — got {shown(spec)}"
    )


def check_space(base: Config, space: list[Dim], source: str) -> None:
    """Every choice (and both ends of every range) gives a valid config on its own (exit 2 otherwise)."""
    for dim in space:
        for value in dim.choices if dim.choices is not None else [dim.low, dim.high]:
            try:
                with_values(base, {dim.key: value})
            except ConfigError as exc:
                if "multiple of model.patch" in str(exc):  # depends on the pair: checked per trial
                    continue
                raise ConfigError(f"--space {source}: {dim.key} = {shown(value)}: {exc}") from None


def with_values(base: Config, values: dict[str, Any]) -> Config:
    """The base config with `values` (dotted keys) set, validated."""
    raw = base.to_dict()
    for key, value in values.items():
        section, name = key.split(".")
        raw[section][name] = value
    return config.config_from_dict(raw, source="the tuned config")


def starting_points(base: Config, space: list[Dim], facts: DataFacts, max_steps: int | None) -> list[dict[str, Any]]:
    """The config's own values and `lstmcast init`'s frequency-aware ones, each moved into the space."""
    suggested = starter.suggest(facts, base.window.horizon)
    flat = {f"{section}.{key}": value for section, values in suggested.items() for key, value in values.items()}
    points = []
    for values in ({d.key: value_at(base, d.key) for d in space}, flat):
        point = {d.key: d.nearest(values[d.key]) for d in space if d.key in values}
        point = {k: v for k, v in point.items() if v is not None}
        steps = lstm_steps({**search_defaults(base), **point})
        if point and point not in points and (max_steps is None or steps <= max_steps):
            points.append(point)
    return points


def search_defaults(cfg: Config) -> dict[str, Any]:
    return {k: value_at(cfg, k) for k in ("window.lookback", "model.patch")}


def lstm_steps(values: dict[str, Any]) -> int:
    return max(1, int(values["window.lookback"]) // max(1, int(values["model.patch"])))


def value_at(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)
