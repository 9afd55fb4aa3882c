"""The per-series choice of forecaster a checkpoint stores: validation errors and who serves each series.

Made by `forecast.backtest.select` after training (the rule is `forecast.baselines.decide`), read
by `forecast.serve` at predict time. Plain data in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmcast.vocabulary import BASELINES, FORECASTERS


@dataclass(frozen=True)
class Selection:
    """Validation errors of every forecaster on every training series, and which one serves each.

    `scores[name][k]` is forecaster `name`'s validation MASE on series `ids[k]` (None without
    validation windows); `chosen[k]` serves it under train.select: best (`decide`). `spread` maps a
    baseline to its scaled residual quantiles (quantile models).
    """

    ids: list[str | None]
    scores: dict[str, list[float | None]]
    chosen: list[str]
    default: str  # the panel's choice under train.select: best: new series get it
    windows: int  # validation windows compared, over all series
    spread: dict[str, list] = field(default_factory=dict)
    _row: dict[str | None, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row", {sid: k for k, sid in enumerate(self.ids)})

    def choice(self, sid: str | None, mode: str) -> str | None:
        """The forecaster for a training series (None for a series it never saw)."""
        k = self._row.get(sid)
        if k is None:
            return None
        return "model" if mode == "model" else self.chosen[k]

    def overall(self, mode: str = "best") -> str:
        """The choice for a series training never saw: the panel's default."""
        return "model" if mode == "model" else self.default

    def best_baseline(self) -> str:
        return _best({n: mean(self.scores[n]) for n in BASELINES}, prefer="seasonal_naive")

    def mix(self, mode: str) -> dict[str, int]:
        """How many training series each forecaster serves."""
        chosen = [self.choice(sid, mode) for sid in self.ids]
        return {name: chosen.count(name) for name in FORECASTERS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "scores": self.scores,
            "chosen": list(self.chosen),
            "default": self.default,
            "windows": self.windows,
            "spread": self.spread,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Selection:
        scores = {str(n): [None if x is None else float(x) for x in v] for n, v in raw["scores"].items()}
        chosen = [str(c) for c in raw["chosen"]]
        n = len(raw["ids"])
        if set(scores) != set(FORECASTERS) or any(len(v) != n for v in scores.values()) or len(chosen) != n:
            raise ValueError("selection scores do not cover every forecaster and series")
        default = str(raw["default"])
        if not {*chosen, default} <= set(FORECASTERS):
            unknown = sorted({*chosen, default} - set(FORECASTERS))[0]
            raise ValueError(f"unknown forecaster in the selection: {unknown}")
        return cls(list(raw["ids"]), scores, chosen, default, int(raw["windows"]), dict(raw.get("spread") or {}))


def _best(scores: dict[str, float | None], prefer: str = "model") -> str:
    """The lowest score; `prefer` wins ties and stands when it has no score (no evidence against it)."""
    if scores.get(prefer) is None:
        return prefer
    best = prefer
    for name, value in scores.items():
        if value is not None and value < scores[best]:  # type: ignore[operator]
            best = name
    return best


def mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None
