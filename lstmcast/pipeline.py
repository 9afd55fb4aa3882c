"""The one place that chains the steps: CSV → series → split → scaler → windows → model → files.

The CLI and the integration tests call these functions; each returns plain data describing
what it wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmcast import checkpoint, evaluate, frame, lock, metrics, scaling
from lstmcast.atomic import ensure_dir, render_path, write_text
from lstmcast.config import Config, TrainConfig, config_from_dict, quantile_levels, to_yaml
from lstmcast.errors import CheckpointError, ConfigError, DataError, Interrupted, OutputError
from lstmcast.model import StackedLSTM, build, parameter_count
from lstmcast.report import Reporter
from lstmcast.split import Split, check_length, origins
from lstmcast.train import Stopped, Trainer, loss_function, loss_on
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
    plot_data: dict[str, Any] | None = None  # the recent history and the forecast columns, for --plot


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


@dataclass(frozen=True)
class TrainOptions:
    """Command-line choices that are about this run, not the model (so not in the config)."""

    resume: bool = False
    init_from: Path | None = None
    refit_scaler: bool = False
    wait: float | None = None


def train(cfg: Config, reporter: Reporter, options: TrainOptions = TrainOptions()) -> TrainOutcome:
    out_dir = Path(cfg.output.dir)
    ensure_dir(out_dir)
    if not os.access(out_dir, os.W_OK):
        raise OutputError(f"output folder {out_dir} is not writable — choose another with --out or output.dir")
    with lock.hold(out_dir, options.wait):
        _remove_stray_temporaries(out_dir)
        reporter.attach_log(out_dir / "train.log")
        return _train_locked(cfg, reporter, options, out_dir)


TRAIN_OUTPUTS = ("model.pt", "state.pt", "config.yaml", "metrics.json", "history.csv")


def _remove_stray_temporaries(out_dir: Path) -> None:
    """Temporary files of a run killed mid-write (`kill -9`); safe to delete while holding the lock."""
    for name in TRAIN_OUTPUTS:
        for stray in out_dir.glob(f".{name}.*.tmp"):
            stray.unlink(missing_ok=True)


def _train_locked(cfg: Config, reporter: Reporter, options: TrainOptions, out_dir: Path) -> TrainOutcome:
    started = time.perf_counter()
    state_path = out_dir / "state.pt"
    resume_state = checkpoint.load_state(state_path) if options.resume else None
    init = checkpoint.load(options.init_from) if options.init_from else None

    prep = prepare(cfg, reporter)
    series, split = prep.series, prep.split
    if series.freq is not None:  # the resolved config records the frequency actually used
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, freq=series.freq))
    w, m, t = cfg.window, cfg.model, cfg.train
    fingerprint = hashlib.sha256(series.values.tobytes()).hexdigest()[:16]
    if resume_state is not None:
        _check_resumable(resume_state, cfg, fingerprint, state_path)
        scaler = resume_state["scaler"]
    elif init is not None and not options.refit_scaler:
        scaler = init["scaler"]
    else:
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
        quantiles=quantile_levels(t),
        cell=m.cell,
    )
    model = StackedLSTM(**model_args).to(device)
    if init is not None:
        _warm_start(model, model_args, init, cfg, Path(options.init_from or ""))
    trainer = Trainer(
        model,
        windows,
        starts["train"],
        starts["val"],
        lookback=w.lookback,
        n_targets=series.n_targets,
        cfg=t,
        progress=reporter,
    )
    if resume_state is not None:
        trainer.load_state_dict(resume_state["trainer"])
        reporter.info(f"resuming from {state_path}: epoch {trainer.epoch}, step {trainer.step}")

    def save_state(tr: Trainer) -> None:
        checkpoint.save_state(
            state_path,
            {"config": cfg.to_dict(), "scaler": scaler, "data_fingerprint": fingerprint, "trainer": tr.state_dict()},
        )

    with reporter.training(t.epochs), _stop_on_signals(trainer):
        try:
            result = trainer.run(on_epoch_end=save_state)
        except Stopped as stop:
            save_state(trainer)
            name = signal.Signals(stop.signum).name
            raise Interrupted(
                f"interrupted by {name} in epoch {stop.epoch} after step {stop.step}; resumable state written to "
                f"{state_path} — continue with: lstmcast train CONFIG --resume (same config and data)",
                128 + stop.signum,
            ) from None

    scores = _score(model, scaled, windows, starts, parts, series, scaler, cfg)
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
    history = [dataclasses.asdict(p) for p in result.history]
    frame.write_frame(out_dir / "history.csv", frame.table(history))
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
            "test_start": series.label(split.train + split.val) if split.test else None,
            "data_period": [first, last],
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "metrics": scores,
        },
    )
    state_path.unlink(missing_ok=True)  # finished: nothing left to resume
    reporter.info(
        f"trained {result.epochs_run} epochs in {result.seconds:.1f}s (best epoch {result.best_epoch}); "
        + _summary(scores)
    )
    return TrainOutcome(out_dir, ckpt_path, scores)


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT/SIGTERM ask the trainer to stop after its current batch; a second SIGINT aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if trainer.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.request_stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _check_resumable(state: dict[str, Any], cfg: Config, fingerprint: str, path: Path) -> None:
    """A resume must continue the same run: same config (train.epochs may grow) and the same data."""
    saved, now = _flatten(state["config"]), _flatten(cfg.to_dict())
    for key in sorted(set(saved) | set(now)):
        if key != "train.epochs" and saved.get(key) != now.get(key):
            raise ConfigError(
                f"{path} was written with {key} = {saved.get(key)!r} but the config now says {now.get(key)!r} — "
                "resume with the same config, or train from scratch without --resume"
            )
    if state["data_fingerprint"] != fingerprint:
        raise DataError(
            f"the data differs from the run saved in {path} — resume on the same data, or train without --resume"
        )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _warm_start(
    model: StackedLSTM, model_args: dict[str, Any], init: dict[str, Any], cfg: Config, source: Path
) -> None:
    """Start from a checkpoint's weights; its architecture and columns must match this config's."""
    for key, value in model_args.items():
        if key not in ("dropout", "cell") and init["model_args"].get(key) != value:
            raise ConfigError(
                f"--init-from {source} has {key} = {init['model_args'].get(key)!r} but this config gives {value!r} — "
                "warm starts need the same architecture, window and columns"
            )
    columns = {"target": list(cfg.data.target), "features": list(cfg.data.features)}
    if {k: init["columns"][k] for k in columns} != columns:
        raise ConfigError(
            f"--init-from {source} was trained on columns {init['columns']} — use the same target and features"
        )
    model.load_state_dict(init["model_state"])


def _score(
    model: StackedLSTM,
    scaled: torch.Tensor,
    windows: torch.Tensor,
    starts: dict[str, torch.Tensor],
    parts: dict[str, np.ndarray],
    series: frame.Series,
    scaler: dict[str, Any],
    cfg: Config,
) -> dict[str, Any]:
    """Losses on each part (scaled), and test errors in original units next to naive baselines."""
    w, nt = cfg.window, series.n_targets
    loss_fn = loss_function(cfg.train.loss, quantile_levels(cfg.train))
    scores: dict[str, Any] = {"loss": cfg.train.loss}
    for part in ("train", "val", "test"):
        idx = starts[part]
        scores[f"{part}_loss"] = loss_on(model, windows, idx, w.lookback, nt, loss_fn) if len(idx) else None
    if len(parts["test"]):
        bt = evaluate.run(model, scaled, series.values, parts["test"], scaler)
        result = evaluate.score(bt, series.values, frame.season_length(series.freq))
        for name, errors in result["overall"].items():
            flat = {f"test_{k}": v for k, v in errors.items()}
            if name == "model":
                scores.update(flat)
            else:  # baselines on exactly the same test windows, so the comparison is like for like
                scores[name] = {"season": result["season"] if name == "seasonal_naive" else 1, **flat}
        scores["relative_skill"] = result["relative_skill"]
        if "quantiles" in result:
            scores["test_quantiles"] = result["quantiles"]
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


def load_model(payload: dict[str, Any], source: Path, cell: str | None = None) -> StackedLSTM:
    """The checkpoint's model, optionally with the other cell (fused ↔ reference: same weights)."""
    args = dict(payload["model_args"])
    if cell is not None:
        args["cell"] = cell
    model = build(args)
    try:
        model.load_state_dict(payload["model_state"])
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"{source}: weights do not fit the model it describes ({str(exc).splitlines()[0][:120]}) — it is damaged"
        ) from None
    return model.eval()


def _load_for(payload: dict[str, Any], data_path: Path, reporter: Reporter) -> frame.Series:
    """Read a CSV the way the checkpoint's training data was read: same columns, frequency and gap policy."""
    cols, missing = payload["columns"], payload["config"]["data"]["missing"]
    series = frame.load_series(
        data_path,
        timestamp=cols["timestamp"],
        target=cols["target"],
        features=cols["features"],
        freq=payload["freq"] or "auto",
        missing=missing,
    )
    if series.filled_rows or series.filled_cells:
        reporter.info(f"filled {series.filled_rows} missing rows and {series.filled_cells} empty cells ({missing})")
    return series


def predict(ckpt_path: Path, data_path: Path, out_path: Path | None, reporter: Reporter) -> PredictOutcome:
    payload = checkpoint.load(ckpt_path)
    model = load_model(payload, ckpt_path)
    series = _load_for(payload, data_path, reporter)
    if series.rows < model.lookback:
        raise DataError(
            f"{data_path} has {series.rows} rows but the model reads the last {model.lookback} (window.lookback) — "
            "supply more history"
        )
    _use_threads(config_from_dict(payload["config"], source=str(ckpt_path)).train)
    history = torch.from_numpy(scaling.transform(series.values[-model.lookback :], payload["scaler"]))
    with torch.no_grad():
        raw = model(history[None])[0].numpy()  # (horizon, nt[, Q])
    targets = payload["columns"]["target"]
    columns, blocks = list(targets), []
    if model.quantiles:
        per_level = scaling.inverse(np.moveaxis(raw, -1, 0), payload["scaler"], slice(0, len(targets)))  # (Q, H, nt)
        blocks.append(per_level[model.median])
        for level, block in zip(model.quantiles, per_level, strict=True):
            columns += [f"{t}_{metrics.quantile_name(level)}" for t in targets]
            blocks.append(block)
    else:
        blocks.append(scaling.inverse(raw, payload["scaler"], slice(0, len(targets))))
    labels = frame.future_labels(series, model.horizon)
    out = render_path(out_path, origin=labels[0]) if out_path is not None else Path(ckpt_path).parent / "forecast.csv"
    table = np.concatenate(blocks, axis=1)
    frame.write_forecast(out, labels, columns, table, payload["columns"]["timestamp"] or "step")
    recent = slice(max(0, series.rows - 3 * model.horizon), series.rows)
    plot_data = {
        "history_x": series.index[recent] if series.index is not None else np.arange(series.rows)[recent],
        "history_y": series.values[recent, : len(targets)],
        "future_x": labels,
        "columns": dict(zip(columns, table.T, strict=True)),
        "targets": targets,
    }
    return PredictOutcome(out, model.horizon, str(labels[0]), str(labels[-1]), plot_data)


# ---------------------------------------------------------------------------- evaluate


def evaluate_checkpoint(
    ckpt_path: Path,
    data_path: Path,
    reporter: Reporter,
    *,
    start: str | None = None,
    end: str | None = None,
    stride: int = 1,
    season: int | None = None,
) -> dict[str, Any]:
    """Rolling-origin backtest of a checkpoint on a CSV, by default over its test period."""
    payload = checkpoint.load(ckpt_path)
    model = load_model(payload, ckpt_path)
    series = _load_for(payload, data_path, reporter)
    lookback, horizon = model.lookback, model.horizon
    candidates = np.arange(lookback, series.rows - horizon + 1)
    if start is None and payload.get("test_start") is None:
        raise DataError(f"{ckpt_path} was trained without a test part — pass --start to choose the origins")
    first = _row_at(series, start if start is not None else payload["test_start"], "--start")
    last = _row_at(series, end, "--end") if end is not None else series.rows - 1
    origins = candidates[(candidates >= first) & (candidates + horizon - 1 <= last)][::stride]
    if not len(origins):
        raise DataError(
            f"no forecast origins in {data_path} between {series.label(min(first, series.rows - 1))} and "
            f"{series.label(last)} with lookback {lookback} and horizon {horizon} — widen --start/--end or supply more rows"
        )
    _use_threads(config_from_dict(payload["config"], source=str(ckpt_path)).train)
    scaled = torch.from_numpy(scaling.transform(series.values, payload["scaler"]))
    bt = evaluate.run(model, scaled, series.values, origins, payload["scaler"])
    result = evaluate.score(bt, series.values, season or frame.season_length(series.freq))
    result.update(
        checkpoint=str(ckpt_path),
        data=str(data_path),
        stride=stride,
        horizon=horizon,
        targets=payload["columns"]["target"],
        first_origin=series.label(int(origins[0])),
        last_origin=series.label(int(origins[-1])),
    )
    result["_backtest"] = bt  # for plots; the CLI drops it before writing JSON
    result["_labels"] = series
    return result


def _row_at(series: frame.Series, when: str | int, flag: str) -> int:
    """The first row at or after `when` (a time, or a row number for step-indexed data)."""
    if series.index is None:
        try:
            return int(when)
        except ValueError:
            raise DataError(f"{flag} {when!r}: this data has no timestamps, give a row number") from None
    return frame.row_at(series, str(when), flag)


# ---------------------------------------------------------------------------- inspect


def inspect_checkpoint(ckpt_path: Path, data_path: Path | None, reporter: Reporter) -> dict[str, Any]:
    """The checkpoint's card and, with data, what its gates do on that data's windows."""
    payload = checkpoint.load(ckpt_path)
    model = load_model(payload, ckpt_path)
    args, cfg, m = payload["model_args"], payload["config"], payload.get("metrics", {})
    card: dict[str, Any] = {
        "file": str(ckpt_path),
        "lstmcast version": payload["lstmcast_version"],
        "format version": payload["format_version"],
        "created": payload.get("created_at", "?"),
        "model": f"{args['num_layers']} × {args['hidden_size']} LSTM ({args.get('cell', 'fused')} cell), "
        f"patch {args['patch']}, window norm {args['norm']}, dropout {args['dropout']}",
        "parameters": f"{parameter_count(model):,}",
        "window": f"lookback {args['lookback']}, horizon {args['horizon']}, stride {cfg['window']['stride']}",
        "train": f"loss {cfg['train']['loss']}, lr {cfg['train']['lr']}, batch {cfg['train']['batch_size']}, "
        f"epochs {m.get('epochs_run', '?')} of {cfg['train']['epochs']} (best {m.get('best_epoch', '?')}), "
        f"{m.get('train_seconds', '?')} s",
        "targets": ", ".join(payload["columns"]["target"]),
        "features": ", ".join(payload["columns"]["features"]) or "none",
        "frequency": payload["freq"] or "steps",
        "training period": " … ".join(map(str, payload.get("train_period") or ["?"])),
        "data period": " … ".join(map(str, payload.get("data_period") or ["?"])),
        "series": 1 if payload.get("series") is None else len(payload["series"]),
    }
    if m.get("test_mae") is not None:
        naive = m.get("seasonal_naive", {})
        card["test MAE"] = f"{m['test_mae']:.4g} (seasonal naive {naive.get('test_mae', float('nan')):.4g})"
        card["test RMSE"] = f"{m['test_rmse']:.4g} (seasonal naive {naive.get('test_rmse', float('nan')):.4g})"
    report: dict[str, Any] = {"card": card}
    if data_path is not None:
        report["gates"] = _gate_report(payload, model, data_path, reporter)
    return report


def _gate_report(
    payload: dict[str, Any], model: StackedLSTM, data_path: Path, reporter: Reporter
) -> list[dict[str, Any]]:
    """Forget/input/output gate statistics per layer over up to 1,024 windows of the data."""
    from lstmcast.reference import gate_summary

    series = _load_for(payload, data_path, reporter)
    if series.rows < model.lookback:
        raise DataError(
            f"{data_path} has {series.rows} rows; the model reads {model.lookback} per window — supply more"
        )
    scaled = torch.from_numpy(scaling.transform(series.values, payload["scaler"]))
    ends = np.unique(
        np.linspace(model.lookback, series.rows, num=min(1024, series.rows - model.lookback + 1)).astype(int)
    )
    windows = window_view(scaled, model.lookback)
    reference = load_model(payload, Path(""), cell="reference")
    with torch.no_grad():
        steps, _ = reference.lstm_inputs(windows[torch.as_tensor(ends - model.lookback)].transpose(1, 2))
        _, _, gates = reference.lstm(steps, record_gates=True)
    layers = gate_summary(gates)
    for layer in layers:
        layer["memory_steps"] = layer["memory_length"] * model.patch  # LSTM steps → rows of the series
    return layers


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
