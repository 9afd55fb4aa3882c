"""Pictures for people (optional extra: pip install 'lstmcast[plot]', which brings matplotlib)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast.errors import LstmcastError


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LstmcastError("--plot needs matplotlib — install lstmcast[plot] (pip install 'lstmcast[plot]')") from None


def _pyplot() -> Any:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only; cron has no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    from lstmcast.atomic import atomic_write

    atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))


def plot_evaluation(path: Path, report: dict[str, Any], backtest: Any, dataset: Any) -> None:
    """Error by horizon step for the model and the baselines, and the forecast of one example origin."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    steps = range(1, report["horizon"] + 1)
    for name, per_step in report["per_step"].items():
        left.plot(steps, per_step["mae"], label=name.replace("_", " "))
    left.set(xlabel="horizon step", ylabel="MAE", title="error by horizon step")
    left.legend()
    i = len(backtest.origins) // 2
    origin, horizon = int(backtest.origins[i]), report["horizon"]
    start = max(int(dataset.offsets[backtest.series[i]]), origin - 3 * horizon)
    past = list(range(start - origin, 0))
    right.plot(past, dataset.values[start:origin, 0], color="grey", label="history")
    future = list(range(horizon))
    right.plot(future, backtest.actual[i, :, 0], color="black", label="actual")
    right.plot(future, backtest.forecast[i, :, 0], color="tab:blue", label="forecast")
    if backtest.quantiles is not None:
        right.fill_between(
            future, backtest.quantiles[i, :, 0, 0], backtest.quantiles[i, :, 0, -1], alpha=0.25, label="interval"
        )
    series = dataset.ids[backtest.series[i]]
    which = f" of series {series}" if series is not None else ""
    right.set(title=f"{report['targets'][0]}{which}: one origin", xlabel="steps from the origin")
    right.legend()
    _save(fig, path)
    plt.close(fig)


@dataclass
class ForecastPanel:
    """One series' recent history and forecast columns (target, then target_q… per quantile level)."""

    title: str
    history_x: Any
    history_y: Any  # (rows, targets)
    future_x: Any
    columns: dict[str, Any]
    targets: list[str]


def plot_forecast(path: Path, panels: list[ForecastPanel]) -> None:
    """History and forecast, with the widest interval band when quantiles exist; one row per series and target."""
    plt = _pyplot()
    rows = [(p, j) for p in panels for j in range(len(p.targets))]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 3 * len(rows)), squeeze=False)
    for (panel, j), ax in zip(rows, axes[:, 0], strict=True):
        target = panel.targets[j]
        ax.plot(panel.history_x, panel.history_y[:, j], color="grey", label="history")
        ax.plot(panel.future_x, panel.columns[target], color="tab:blue", label="forecast")
        band = quantile_columns(panel.columns, target)
        if len(band) >= 2:
            low, high = band[0], band[-1]
            ax.fill_between(panel.future_x, panel.columns[low], panel.columns[high], alpha=0.25, label=f"{low}–{high}")
        ax.set_title(f"{target} — {panel.title}" if panel.title else target)
        ax.legend()
    _save(fig, path)
    plt.close(fig)


def quantile_columns(columns: dict[str, Any], target: str) -> list[str]:
    """The target's quantile columns ordered by level (q2.5 before q10), not as strings."""
    prefix, levels = f"{target}_q", {}
    for name in columns:
        with contextlib.suppress(ValueError):
            if name.startswith(prefix):
                levels[name] = float(name[len(prefix) :])
    return sorted(levels, key=levels.__getitem__)


def plot_score(path: Path, report: dict[str, Any]) -> None:
    """MASE over time (by week, or by origin when asked) for the served forecasts and both baselines."""
    plt = _pyplot()
    key = "origin" if "origin" in report["by"] else "week"
    rows = report["by"].get(key, [])
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, style in (("served", "-o"), ("seasonal_naive", "--"), ("naive", ":")):
        ax.plot([r[key] for r in rows], [r[name]["mase"] for r in rows], style, label=name.replace("_", " "))
    ax.set_xlabel(key)
    ax.set_ylabel("MASE (mean over series)")
    ax.set_title(f"realised accuracy: {report['scored']} forecasts, {report['series']} series")
    ax.legend()
    fig.autofmt_xdate()
    _save(fig, path)
    plt.close(fig)


def plot_tuning(path: Path, trials_csv: Path) -> None:
    """Each trial's validation MASE (pruned trials as crosses at the bottom) and the best so far."""
    import pandas as pd

    plt = _pyplot()
    frame = pd.read_csv(trials_csv)
    fig, ax = plt.subplots(figsize=(8, 4))
    done = frame[frame["state"] == "COMPLETE"]
    ax.plot(done["number"], done["validation_mase"], "o", label="complete")
    ax.plot(done["number"], done["validation_mase"].cummin(), "-", label="best so far")
    pruned = frame[frame["state"] == "PRUNED"]
    if len(pruned) and len(done):
        ax.plot(pruned["number"], [done["validation_mase"].min()] * len(pruned), "x", color="grey", label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation MASE (mean over series)")
    ax.legend()
    _save(fig, path)
    plt.close(fig)
