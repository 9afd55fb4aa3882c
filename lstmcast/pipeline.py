"""The one place that chains the steps: CSV → series → split → scaler → windows → model → files.

The CLI and the integration tests call these functions; each returns plain data describing
what it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmcast import checkpoint, frame, metrics, scaling
from lstmcast.atomic import ensure_dir, write_text
from lstmcast.config import Config, TrainConfig, config_from_dict, to_yaml
from lstmcast.errors import CheckpointError, ConfigError, DataError, OutputError
from lstmcast.model import StackedLSTM, build, parameter_count
from lstmcast.report import Reporter
from lstmcast.split import Split, check_length, origins
from lstmcast.train import LOSSES, fit, loss_on, predict_windows
from lstmcast.windows import window_view


@dataclass
class Prepared:
    series: frame.Series
    split: Split
    data_path: Path


@dataclass
class TrainOutcome:
    out_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]


@dataclass
class PredictOutcome:
    path: Path
    rows: int
    first: str
    last: str


# ---------------------------------------------------------------------------- shared steps


def prepare(cfg: Config, reporter: Reporter) -> Prepared:
    """Load and validate the config's data and check it is long enough for every split."""
    d = cfg.data
    if d.path is None:
        raise ConfigError("data.path is not set — add it to the config or pass --data CSV")
    if not d.target:
        raise ConfigError("data.target is not set — name the column (or list of columns) to forecast")
    data_path = Path(d.path)
    series = frame.load_series(
        data_path,
        timestamp=d.timestamp,
        target=d.target,
        features=d.features,
        freq=d.freq,
        missing=d.missing,
        start=d.start,
        end=d.end,
    )
    if series.filled_rows or series.filled_cells:
        reporter.info(
            f"filled {series.filled_rows} missing rows and {series.filled_cells} empty cells in {data_path} ({d.missing})"
        )
    split = check_length(
        series.rows, cfg.window.lookback, cfg.window.horizon, d.split.val, d.split.test, str(data_path)
    )
    return Prepared(series, split, data_path)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA GPU is visible — set train.device to auto or cpu")
    return torch.device(name)


def _use_threads(train: TrainConfig) -> None:
    torch.set_num_threads(train.threads or os.cpu_count() or 1)


# ---------------------------------------------------------------------------- train


def train(cfg: Config, reporter: Reporter) -> TrainOutcome:
    out_dir = Path(cfg.output.dir)
    ensure_dir(out_dir)
    if not os.access(out_dir, os.W_OK):
        raise OutputError(f"output folder {out_dir} is not writable — choose another with --out or output.dir")
    reporter.attach_log(out_dir / "train.log")
    started = time.perf_counter()

    prep = prepare(cfg, reporter)
    series, split = prep.series, prep.split
    if series.freq is not None:  # the resolved config records the frequency actually used
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, freq=series.freq))
    w, m, t = cfg.window, cfg.model, cfg.train
    scaler = scaling.fit(series.values[: split.train])
    device = _device(t.device)
    _use_threads(t)

    scaled = torch.from_numpy(scaling.transform(series.values, scaler)).to(device)
    windows = window_view(scaled, w.lookback + w.horizon)
    parts = origins(split, w.lookback, w.horizon, w.stride)
    starts = {k: torch.as_tensor(v - w.lookback, device=device) for k, v in parts.items()}
    reporter.info(
        f"{series.rows} rows of {prep.data_path} ({series.freq or 'steps'}): "
        f"{len(parts['train'])} training, {len(parts['val'])} validation, {len(parts['test'])} test windows; "
        f"training on {device} with {torch.get_num_threads()} threads"
    )

    torch.manual_seed(t.seed)
    model_args = dict(
        n_inputs=len(series.columns),
        n_targets=series.n_targets,
        lookback=w.lookback,
        horizon=w.horizon,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        dropout=m.dropout,
        patch=m.patch,
        norm=w.norm,
    )
    model = StackedLSTM(**model_args).to(device)
    with reporter.training(t.epochs):
        result = fit(
            model,
            windows,
            starts["train"],
            starts["val"],
            lookback=w.lookback,
            n_targets=series.n_targets,
            cfg=t,
            progress=reporter,
        )

    scores = _score(model, windows, starts, parts, series, scaler, cfg)
    scores.update(
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        stopped_early=result.stopped_early,
        train_seconds=round(result.seconds, 3),
        total_seconds=round(time.perf_counter() - started, 3),
        parameters=parameter_count(model),
        windows={k: len(v) for k, v in parts.items()},
    )

    write_text(out_dir / "config.yaml", to_yaml(cfg))
    write_text(out_dir / "metrics.json", json.dumps(scores, indent=2) + "\n")
    history = [
        {
            "epoch": p.epoch,
            "step": p.step,
            "train_loss": p.train_loss,
            "val_loss": p.val_loss,
            "best_epoch": p.best_epoch,
            "seconds": round(p.seconds, 3),
        }
        for p in result.history
    ]
    import pandas as pd

    frame.write_frame(out_dir / "history.csv", pd.DataFrame(history))
    ckpt_path = out_dir / "model.pt"
    first, last = series.label(0), series.label(series.rows - 1)
    checkpoint.save(
        ckpt_path,
        {
            "config": cfg.to_dict(),
            "model_args": model_args,
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "scaler": scaler,
            "columns": {
                "timestamp": cfg.data.timestamp,
                "target": list(cfg.data.target),
                "features": list(cfg.data.features),
            },
            "freq": series.freq,
            "series": None,
            "train_period": [first, series.label(split.train - 1)],
            "data_period": [first, last],
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "metrics": scores,
        },
    )
    reporter.info(
        f"trained {result.epochs_run} epochs in {result.seconds:.1f}s (best epoch {result.best_epoch}); "
        + _summary(scores)
    )
    return TrainOutcome(out_dir, ckpt_path, scores)


def _score(
    model: StackedLSTM,
    windows: torch.Tensor,
    starts: dict[str, torch.Tensor],
    parts: dict[str, np.ndarray],
    series: frame.Series,
    scaler: dict[str, Any],
    cfg: Config,
) -> dict[str, Any]:
    """Losses on each part (scaled), and test errors in original units next to seasonal naive."""
    w, nt = cfg.window, series.n_targets
    loss_fn = LOSSES[cfg.train.loss]
    scores: dict[str, Any] = {"loss": cfg.train.loss}
    for part in ("train", "val", "test"):
        idx = starts[part]
        scores[f"{part}_loss"] = loss_on(model, windows, idx, w.lookback, nt, loss_fn) if len(idx) else None
    test = parts["test"]
    if len(test):
        forecast = predict_windows(model, windows, starts["test"], w.lookback, nt).cpu().numpy()
        forecast = scaling.inverse(forecast, scaler, slice(0, nt))
        targets = series.values[:, :nt]
        actual = targets[metrics.horizon_rows(test, w.horizon)]
        season = frame.season_length(series.freq)
        scores.update(test_mae=metrics.mae(forecast, actual), test_rmse=metrics.rmse(forecast, actual))
        # Baselines on exactly the same test windows, so the comparison is like for like.
        for name, period in (("seasonal_naive", season), ("naive", 1)):
            guess = metrics.seasonal_naive(targets, test, w.horizon, period)
            scores[name] = {
                "season": period,
                "test_mae": metrics.mae(guess, actual),
                "test_rmse": metrics.rmse(guess, actual),
            }
    return scores


def _summary(scores: dict[str, Any]) -> str:
    if "test_mae" not in scores:
        return f"validation loss {scores['val_loss']}" if scores.get("val_loss") is not None else "no held-out data"
    naive, last = scores["seasonal_naive"], scores["naive"]
    return (
        f"test MAE {scores['test_mae']:.4g} (seasonal naive {naive['test_mae']:.4g}, naive {last['test_mae']:.4g}), "
        f"test RMSE {scores['test_rmse']:.4g} (seasonal naive {naive['test_rmse']:.4g}, naive {last['test_rmse']:.4g})"
    )


# ---------------------------------------------------------------------------- predict


def load_model(payload: dict[str, Any], source: Path) -> StackedLSTM:
    model = build(payload["model_args"])
    try:
        model.load_state_dict(payload["model_state"])
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"{source}: weights do not fit the model it describes ({str(exc).splitlines()[0][:120]}) — it is damaged"
        ) from None
    return model.eval()


def predict(ckpt_path: Path, data_path: Path, out_path: Path | None, reporter: Reporter) -> PredictOutcome:
    payload = checkpoint.load(ckpt_path)
    cfg = config_from_dict(payload["config"], source=str(ckpt_path))
    cols = payload["columns"]
    series = frame.load_series(
        data_path,
        timestamp=cols["timestamp"],
        target=cols["target"],
        features=cols["features"],
        freq=payload["freq"] or "auto",
        missing=cfg.data.missing,
    )
    if series.filled_rows or series.filled_cells:
        reporter.info(
            f"filled {series.filled_rows} missing rows and {series.filled_cells} empty cells ({cfg.data.missing})"
        )
    lookback, horizon = cfg.window.lookback, cfg.window.horizon
    if series.rows < lookback:
        raise DataError(
            f"{data_path} has {series.rows} rows but the model reads the last {lookback} (window.lookback) — supply more history"
        )
    model = load_model(payload, ckpt_path)
    _use_threads(cfg.train)
    history = torch.from_numpy(scaling.transform(series.values[-lookback:], payload["scaler"]))
    with torch.no_grad():
        forecast = model(history[None]).squeeze(0).numpy()
    forecast = scaling.inverse(forecast, payload["scaler"], slice(0, series.n_targets))
    labels = frame.future_labels(series, horizon)
    out = Path(out_path) if out_path is not None else Path(ckpt_path).parent / "forecast.csv"
    frame.write_forecast(out, labels, cols["target"], forecast, cols["timestamp"] or "step")
    return PredictOutcome(out, horizon, str(labels[0]), str(labels[-1]))


# ---------------------------------------------------------------------------- validate


def validate(cfg: Config, reporter: Reporter) -> dict[str, Any]:
    """Check the config and data as `train` would, without training; a summary of what it found."""
    prep = prepare(cfg, reporter)
    parts = origins(prep.split, cfg.window.lookback, cfg.window.horizon, cfg.window.stride)
    first, last = prep.series.label(0), prep.series.label(prep.series.rows - 1)
    return {
        "data": str(prep.data_path),
        "rows": prep.series.rows,
        "period": f"{first} … {last}",
        "freq": prep.series.freq or "steps",
        "filled": f"{prep.series.filled_rows} rows, {prep.series.filled_cells} cells",
        "split rows": f"train {prep.split.train}, validation {prep.split.val}, test {prep.split.test}",
        "windows": ", ".join(f"{k} {len(v)}" for k, v in parts.items()),
    }
