"""Pictures for people (optional extra: pip install 'lstmcast[plot]', which brings matplotlib)."""

from __future__ import annotations

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


def plot_forecast(
    path: Path, history_x: Any, history_y: Any, future_x: Any, columns: dict[str, Any], targets: list[str]
) -> None:
    """The end of the history and the forecast, with the interval band when quantiles exist; one panel per target."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3 * len(targets)), squeeze=False)
    for j, (target, ax) in enumerate(zip(targets, axes[:, 0], strict=True)):
        ax.plot(history_x, history_y[:, j], color="grey", label="history")
        ax.plot(future_x, columns[target], color="tab:blue", label="forecast")
        band = sorted(k for k in columns if k.startswith(f"{target}_q"))
        if len(band) >= 2:
            ax.fill_between(future_x, columns[band[0]], columns[band[-1]], alpha=0.25, label=f"{band[0]}–{band[-1]}")
        ax.set_title(target)
        ax.legend()
    _save(fig, path)
    plt.close(fig)
