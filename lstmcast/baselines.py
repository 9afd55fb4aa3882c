"""The naive forecasters lstmcast can serve a series with, and the per-series choice made on validation.

Numpy only. `seasonal_naive` repeats the last season, `naive` the last value. After training,
`Selection` records each forecaster's validation error on every series (MASE: the same windows
for all three) and which forecaster serves it; predict falls back to a baseline for a series the
model cannot serve. For quantile models, a baseline's quantiles come from its validation
residuals per horizon step (`spread`), scaled to each series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmcast import metrics

BASELINES = ("seasonal_naive", "naive")
FORECASTERS = ("model", *BASELINES)


def season_of(name: str, season: int) -> int:
    """The period a baseline repeats: the season for seasonal naive, 1 for naive."""
    return season if name == "seasonal_naive" else 1


def forecasts(values: np.ndarray, origins: np.ndarray, horizon: int, season: int, starts: np.ndarray) -> dict:
    """Each baseline's (N, horizon, columns) forecasts from the rows before each origin."""
    return {
        name: metrics.seasonal_naive(values, origins, horizon, season_of(name, season), starts) for name in BASELINES
    }


def at_end(values: np.ndarray, horizon: int, name: str, season: int) -> np.ndarray:
    """(horizon, columns): baseline `name` forecast from all of `values` (one series' rows)."""
    end = np.array([len(values)])
    return metrics.seasonal_naive(values, end, horizon, season_of(name, season), end - len(values))[0]


def scale(history: np.ndarray, season: int) -> np.ndarray:
    """(columns,) the typical step-to-step error of a series: its MASE denominator, else its spread, else 1."""
    s = metrics.mase_scale(history, season)
    spread = history.std(axis=0) if len(history) > 1 else np.full(history.shape[1], np.nan)
    s = np.where(np.isfinite(s) & (s > 0), s, spread)
    return np.where(np.isfinite(s) & (s > 0), s, 1.0)


def residual_spread(forecast: np.ndarray, actual: np.ndarray, scales: np.ndarray, levels: list[float]) -> list:
    """(horizon, targets, Q) quantiles of the scaled errors actual − forecast, centred so the median adds 0.

    `scales` is (N, targets): each origin's series scale. Pooled over series: a short series has
    too few validation windows for quantiles of its own.
    """
    errors = (actual - forecast) / scales[:, None, :]
    q = np.quantile(errors, levels, axis=0)  # (Q, horizon, targets)
    q = q - np.quantile(errors, 0.5, axis=0)[None]
    return np.moveaxis(q, 0, -1).tolist()


@dataclass(frozen=True)
class Selection:
    """Validation errors of every forecaster on every training series, and which one serves each.

    `scores[name][k]` is forecaster `name`'s validation MASE on series `ids[k]` (None without
    validation windows). `spread` maps a baseline to its scaled residual quantiles (quantile models).
    """

    ids: list[str | None]
    scores: dict[str, list[float | None]]
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
        return "model" if mode == "model" else _best({n: s[k] for n, s in self.scores.items()})

    def overall(self, mode: str = "best") -> str:
        """The forecaster with the lowest mean validation MASE over series: the choice for new series."""
        return "model" if mode == "model" else _best({n: mean(s) for n, s in self.scores.items()})

    def best_baseline(self) -> str:
        return _best({n: mean(self.scores[n]) for n in BASELINES}, prefer="seasonal_naive")

    def mix(self, mode: str) -> dict[str, int]:
        """How many training series each forecaster serves."""
        chosen = [self.choice(sid, mode) for sid in self.ids]
        return {name: chosen.count(name) for name in FORECASTERS}

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "scores": self.scores, "windows": self.windows, "spread": self.spread}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Selection:
        scores = {str(n): [None if x is None else float(x) for x in v] for n, v in raw["scores"].items()}
        if set(scores) != set(FORECASTERS) or any(len(v) != len(raw["ids"]) for v in scores.values()):
            raise ValueError("selection scores do not cover every forecaster and series")
        return cls(list(raw["ids"]), scores, int(raw["windows"]), dict(raw.get("spread") or {}))


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
