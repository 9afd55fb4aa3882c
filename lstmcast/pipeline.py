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

from lstmcast import checkpoint, distributed, evaluate, frame, lock, metrics, scaling, sinks
from lstmcast.atomic import ensure_dir, render_path, write_text
from lstmcast.calendar import calendar_features, calendar_names, future_labels, row_at, season_length
from lstmcast.config import Config, TrainConfig, config_from_dict, quantile_levels, to_yaml
from lstmcast.dataset import Dataset, assemble, fit_scaler
from lstmcast.errors import CheckpointError, ConfigError, DataError, Interrupted, OutputError
from lstmcast.model import Ensemble, StackedLSTM, build, parameter_count
from lstmcast.report import Reporter
from lstmcast.split import Split, check_length, origins
from lstmcast.train import FitResult, Stopped, Trainer, Validation, loss_function, loss_on
from lstmcast.windows import StartRuns


@dataclass
class Prepared:
    panel: frame.Panel
    splits: list[Split]
    data_path: Path
    calendar: list[str]
    skipped: list[str]

    @property
    def rows(self) -> int:
        return sum(series.rows for _, series in self.panel)

    @property
    def freq(self) -> str | None:
        return self.panel[0][1].freq


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
    series: int = 1


# ---------------------------------------------------------------------------- shared steps


def prepare(cfg: Config, reporter: Reporter) -> Prepared:
    """Load and validate the config's data; every series kept is long enough for every split."""
    d, w = cfg.data, cfg.window
    if d.path is None:
        raise ConfigError("data.path is not set — add it to the config or pass --data CSV")
    if not d.target:
        raise ConfigError("data.target is not set — name the column (or list of columns) to forecast")
    data_path = Path(d.path)
    panel = frame.load_panel(
        data_path,
        series_id=d.series_id,
        timestamp=d.timestamp,
        target=d.target,
        features=d.features,
        future_features=d.future_features,
        freq=d.freq,
        missing=d.missing,
        start=d.start,
        end=d.end,
    )
    _report_filled(panel, reporter, d.missing)
    if len(panel) == 1:
        splits = [check_length(panel[0][1].rows, w.lookback, w.horizon, d.split.val, d.split.test, str(data_path))]
        kept, skipped = panel, []
    else:
        kept, splits, skipped = [], [], []
        for sid, series in panel:
            try:
                splits.append(check_length(series.rows, w.lookback, w.horizon, d.split.val, d.split.test, ""))
                kept.append((sid, series))
            except DataError:
                skipped.append(str(sid))
        if not kept:
            longest = max(series.rows for _, series in panel)
            check_length(longest, w.lookback, w.horizon, d.split.val, d.split.test, f"{data_path}: the longest series")
        if skipped:
            reporter.info(
                f"skipped {len(skipped)} of {len(panel)} series too short for lookback + horizon in every split"
            )
    calendar = calendar_names(d.calendar, kept[0][1].freq) if d.timestamp else []
    return Prepared(kept, splits, data_path, calendar, skipped)


def _report_filled(panel: frame.Panel, reporter: Reporter, missing: str) -> None:
    rows = sum(s.filled_rows for _, s in panel)
    cells = sum(s.filled_cells for _, s in panel)
    if rows or cells:
        reporter.info(f"filled {rows} missing rows and {cells} empty cells ({missing})")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA GPU is visible — set train.device to auto or cpu")
    return torch.device(name)


def _use_threads(train: TrainConfig, processes_here: int = 1) -> None:
    """Every core by default, shared among the processes torchrun started on this machine."""
    torch.set_num_threads(train.threads or max(1, (os.cpu_count() or 1) // processes_here))


# ---------------------------------------------------------------------------- train


@dataclass(frozen=True)
class TrainOptions:
    """Command-line choices that are about this run, not the model (so not in the config)."""

    resume: bool = False
    init_from: Path | None = None
    refit_scaler: bool = False
    wait: float | None = None


def train(cfg: Config, reporter: Reporter, options: TrainOptions = TrainOptions()) -> TrainOutcome:
    """Train and write the run's files. Under torchrun only rank 0 locks, logs and writes."""
    out_dir = Path(cfg.output.dir)
    world = distributed.from_env()
    ensure_dir(out_dir)
    if not os.access(out_dir, os.W_OK):
        raise OutputError(f"output folder {out_dir} is not writable — choose another with --out or output.dir")
    with lock.hold(out_dir, options.wait) if world.main else contextlib.nullcontext():
        if world.main:
            _remove_stray_temporaries(out_dir)
            reporter.attach_log(out_dir / "train.log")
        outcome = _train_locked(cfg, reporter, options, out_dir, world)
    # After a failure there is no finish(): torchrun stops the other ranks, which may be mid-collective.
    distributed.finish()
    return outcome


TRAIN_OUTPUTS = ("model.pt", "state.pt", "config.yaml", "metrics.json", "history.csv")


def _remove_stray_temporaries(out_dir: Path) -> None:
    """Temporary files of a run killed mid-write (`kill -9`); safe to delete while holding the lock."""
    for name in TRAIN_OUTPUTS:
        for stray in out_dir.glob(f".{name}.*.tmp"):
            stray.unlink(missing_ok=True)


def _train_locked(
    cfg: Config, reporter: Reporter, options: TrainOptions, out_dir: Path, world: distributed.World
) -> TrainOutcome:
    started = time.perf_counter()
    state_path = out_dir / "state.pt"
    resume_state = checkpoint.load_state(state_path) if options.resume else None
    init = checkpoint.load(options.init_from) if options.init_from else None

    with reporter.timed("load"):
        prep = prepare(cfg, reporter)
    if prep.freq is not None:  # the resolved config records the frequency actually used
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, freq=prep.freq))
    w, m, t = cfg.window, cfg.model, cfg.train
    digest = hashlib.sha256()
    for sid, series in prep.panel:
        digest.update(f"{sid}".encode())
        digest.update(np.ascontiguousarray(series.values).data)  # the bytes, without copying them
    fingerprint = digest.hexdigest()[:16]
    if resume_state is not None:
        _check_resumable(resume_state, cfg, fingerprint, state_path)
        scaler = resume_state["scaler"]
    elif init is not None and not options.refit_scaler:
        scaler = init["scaler"]
    else:
        scaler = fit_scaler(prep.panel, prep.splits, cfg.data.scaling)
    device = distributed.start(world, _device(t.device))
    _use_threads(t, world.local_size)

    ids = [sid for sid, _ in prep.panel]
    embed = m.series_embedding > 0
    with reporter.timed("windows"):
        ds = assemble(
            prep.panel,
            scaler,
            lookback=w.lookback,
            horizon=w.horizon,
            calendar=prep.calendar,
            n_future_features=len(cfg.data.future_features),
            splits=prep.splits,
            stride=w.stride,
            device=device,
            series_codes=list(range(len(ids))) if embed else None,
        )
    starts: dict[str, torch.Tensor | StartRuns] = {
        "train": StartRuns(ds.parts["train"], w.lookback, device),  # computed batch by batch: no per-window index
        **{k: torch.as_tensor(ds.parts[k].array() - w.lookback, device=device) for k in ("val", "test")},
    }
    n_series = f"{len(ids)} series, " if len(ids) > 1 else ""
    reporter.info(
        f"{n_series}{prep.rows} rows of {prep.data_path} ({prep.freq or 'steps'}): "
        f"{len(ds.parts['train'])} training, {len(ds.parts['val'])} validation, {len(ds.parts['test'])} test windows; "
        f"training on {device} with {torch.get_num_threads()} threads"
        + (f" in each of {world.size} processes (DDP)" if world.distributed else "")
    )

    torch.manual_seed(t.seed)
    first_series = prep.panel[0][1]
    model_args = dict(
        n_inputs=ds.data.rows.shape[1],
        n_targets=first_series.n_targets,
        lookback=w.lookback,
        horizon=w.horizon,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        dropout=m.dropout,
        patch=m.patch,
        norm=w.norm,
        quantiles=quantile_levels(t),
        cell=m.cell,
        n_future=ds.data.n_future,
        n_series=len(ids) if embed else 0,
        series_embedding=m.series_embedding,
    )
    # train.ensemble members differ only by seed; each is trained in full, then forecasts are combined.
    done = [] if resume_state is None else resume_state.get("members", [])
    results: list[FitResult] = [
        FitResult(**{**r, "history": [Validation(**p) for p in r["history"]]})
        for r in ([] if resume_state is None else resume_state.get("results", []))
    ]
    members: list[StackedLSTM] = []
    for state in done:
        member = StackedLSTM(**model_args).to(device)
        member.load_state_dict(state)
        members.append(member)
    for k in range(len(done), t.ensemble):
        member_cfg = dataclasses.replace(t, seed=t.seed + k)
        torch.manual_seed(member_cfg.seed)
        member = StackedLSTM(**model_args).to(device)
        if init is not None:
            _warm_start(member, model_args, init, cfg, Path(options.init_from or ""))
        with reporter.timed("setup"):
            trainer = Trainer(
                member, ds.data, starts["train"], starts["val"], cfg=member_cfg, progress=reporter, world=world
            )
        if resume_state is not None and resume_state.get("trainer") is not None and k == len(done):
            trainer.load_state_dict(resume_state["trainer"])
            reporter.info(f"resuming from {state_path}: member {k + 1}, epoch {trainer.epoch}, step {trainer.step}")
        if t.ensemble > 1:
            reporter.info(f"ensemble member {k + 1} of {t.ensemble} (seed {member_cfg.seed})")

        def save_state(tr: Trainer | None) -> None:
            if not world.main:
                return
            checkpoint.save_state(
                state_path,
                {
                    "config": cfg.to_dict(),
                    "scaler": scaler,
                    "data_fingerprint": fingerprint,
                    "members": [_cpu_state(m) for m in members],
                    "results": [_result_dict(r) for r in results],
                    "trainer": None if tr is None else tr.state_dict(),
                },
            )

        with reporter.training(t.epochs), _stop_on_signals(trainer, world):
            try:
                with reporter.timed("train"):
                    results.append(trainer.run(on_epoch_end=save_state))
            except Stopped as stop:
                save_state(trainer)
                name = signal.Signals(stop.signum).name
                raise Interrupted(
                    f"interrupted by {name} in epoch {stop.epoch} after step {stop.step}; resumable state written to "
                    f"{state_path} — continue with: lstmcast train CONFIG --resume (same config and data)",
                    128 + stop.signum,
                ) from None
        members.append(member)
        if k + 1 < t.ensemble:
            save_state(None)  # a finished member survives an interruption of the next one
    model = members[0] if len(members) == 1 else Ensemble(members)
    result = results[0]
    if not world.main:  # every rank holds the same weights; rank 0 scores and writes them
        return TrainOutcome(out_dir, out_dir / "model.pt", {})

    with reporter.timed("score"):
        scores = _score(model, ds, starts, prep.freq, cfg)
    scores.update(
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        stopped_early=result.stopped_early,
        train_seconds=round(sum(r.seconds for r in results), 3),
        ensemble=len(results),
        total_seconds=round(time.perf_counter() - started, 3),
        parameters=parameter_count(model),
        windows={k: len(v) for k, v in ds.parts.items()},
    )

    with reporter.timed("write"):
        write_text(out_dir / "config.yaml", to_yaml(cfg))
        write_text(out_dir / "metrics.json", json.dumps(scores, indent=2) + "\n")
        history = [{"member": k + 1, **dataclasses.asdict(p)} for k, r in enumerate(results) for p in r.history]
        sinks.write_frame(out_dir / "history.csv", sinks.table(history))
        ckpt_path = out_dir / "model.pt"
        single = len(ids) == 1 and ids[0] is None
        labels = _periods(prep)
        checkpoint.save(
            ckpt_path,
            {
                "config": cfg.to_dict(),
                "model_args": model_args,
                "model_state": _cpu_state(members[0]),
                "ensemble_states": [_cpu_state(m) for m in members[1:]],
                "scaler": scaler,
                "columns": {
                    "timestamp": cfg.data.timestamp,
                    "target": list(cfg.data.target),
                    "features": list(cfg.data.features),
                    "future_features": list(cfg.data.future_features),
                    "series_id": cfg.data.series_id,
                },
                "calendar": prep.calendar,
                "freq": prep.freq,
                "series": None if single else ids,
                **labels,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "metrics": scores,
            },
        )
    state_path.unlink(missing_ok=True)  # finished: nothing left to resume
    reporter.info(
        f"trained {result.epochs_run} epochs in {scores['train_seconds']:.1f}s (best epoch {result.best_epoch}"
        + (f", {len(results)} ensemble members" if len(results) > 1 else "")
        + "); "
        + _summary(scores)
    )
    return TrainOutcome(out_dir, ckpt_path, scores)


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer, world: distributed.World) -> Iterator[None]:
    """SIGINT/SIGTERM ask the trainer to stop after its current batch; a second SIGINT aborts at once.

    Under torchrun the launcher, not a person, sends the signals, and it may repeat them while
    rank 0 writes the resumable state: repeats are ignored until the process exits (the
    launcher still SIGKILLs after 30 s, so nothing can hang).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if trainer.stop_signal is not None and signum == signal.SIGINT and not world.distributed:
            raise KeyboardInterrupt
        trainer.request_stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    stopping = False
    try:
        yield
    except Interrupted:
        stopping = world.distributed  # a peer's signal may reach this rank only now
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, signal.SIG_IGN if stopping else h)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _result_dict(result: FitResult) -> dict[str, Any]:
    return {**dataclasses.asdict(result), "history": [dataclasses.asdict(p) for p in result.history]}


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
    columns = {k: list(getattr(cfg.data, k)) for k in ("target", "features", "future_features")}
    if {k: init["columns"].get(k, []) for k in columns} != columns:
        raise ConfigError(
            f"--init-from {source} was trained on columns {init['columns']} — use the same target and features"
        )
    model.load_state_dict(init["model_state"])


def _periods(prep: Prepared) -> dict[str, Any]:
    """Time ranges for the checkpoint's card; `test_start` lets evaluate default to the test period."""
    _sid, first = prep.panel[0]
    split = prep.splits[0]
    single = len(prep.panel) == 1
    return {
        "train_period": [first.label(0), first.label(split.train - 1)] if single else None,
        "data_period": [first.label(0), first.label(first.rows - 1)] if single else None,
        "test_start": first.label(split.train + split.val) if single and split.test else None,
    }


def _score(
    model: StackedLSTM, ds: Dataset, starts: dict[str, torch.Tensor | StartRuns], freq: str | None, cfg: Config
) -> dict[str, Any]:
    """Losses on each part (scaled), and test errors in original units next to naive baselines."""
    loss_fn = loss_function(cfg.train.loss, quantile_levels(cfg.train))
    scores: dict[str, Any] = {"loss": cfg.train.loss}
    for part in ("train", "val", "test"):
        idx = starts[part]
        scores[f"{part}_loss"] = loss_on(model, ds.data, idx, loss_fn) if len(idx) else None
    if len(ds.parts["test"]):
        bt = evaluate.run(model, ds, ds.parts["test"].array())
        result = evaluate.score(bt, ds, season_length(freq))
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


def load_model(payload: dict[str, Any], source: Path, cell: str | None = None) -> StackedLSTM | Ensemble:
    """The checkpoint's model, optionally with the other cell (fused ↔ reference: same weights)."""
    args = dict(payload["model_args"])
    if cell is not None:
        args["cell"] = cell
    members = []
    for state in [payload["model_state"], *payload.get("ensemble_states", [])]:
        model = build(args)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"{source}: weights do not fit the model it describes ({str(exc).splitlines()[0][:120]}) — it is damaged"
            ) from None
        members.append(model)
    return (members[0] if len(members) == 1 else Ensemble(members)).eval()


def _load_for(
    payload: dict[str, Any],
    data_path: Path,
    reporter: Reporter,
    only: list[str] | None = None,
    future_rows: int = 0,
) -> frame.Panel:
    """Read a CSV the way the checkpoint's training data was read: same columns, frequency and gap policy.

    `future_rows`: predict with known-future covariates, whose values for the forecast rows follow each series.
    """
    cols, missing = payload["columns"], payload["config"]["data"]["missing"]
    future_features = cols.get("future_features", [])
    panel = frame.load_panel(
        data_path,
        series_id=cols.get("series_id"),
        timestamp=cols["timestamp"],
        target=cols["target"],
        features=cols["features"],
        future_features=future_features,
        future_rows=future_rows if future_features else 0,
        freq=payload["freq"] or "auto",
        missing=missing,
    )
    if only:
        known = {sid for sid, _ in panel}
        absent = [sid for sid in only if sid not in known]
        if absent:
            raise DataError(
                f"{data_path}: no series {absent[0]!r} — it has {len(known)} series, e.g. {sorted(known)[:3]}"
            )
        panel = [(sid, series) for sid, series in panel if sid in only]
    _report_filled(panel, reporter, missing)
    return panel


def _dataset_for(
    payload: dict[str, Any],
    model: StackedLSTM,
    panel: frame.Panel,
    reporter: Reporter,
    splits: list[Split] | None = None,
) -> Dataset:
    """Scale and window data for a trained model: its scaler, calendar and series embedding."""
    trained = payload.get("series") or [None]
    codes = None
    if model.embedding is not None:
        unknown = [sid for sid, _ in panel if sid not in trained]
        if unknown:
            raise DataError(
                f"series {unknown[0]!r} was not in the training data and the model learned one vector per series "
                "(model.series_embedding) — retrain including it"
            )
        codes = [trained.index(sid) for sid, _ in panel]
    ds = assemble(
        panel,
        payload["scaler"],
        lookback=model.lookback,
        horizon=model.horizon,
        calendar=payload.get("calendar", []),
        n_future_features=len(payload["columns"].get("future_features", [])),
        splits=splits,
        series_codes=codes,
    )
    if ds.unseen:
        reporter.warning(
            f"{len(ds.unseen)} series not seen in training (e.g. {ds.unseen[0]!r}) are scaled by their own history"
        )
    return ds


def predict(
    ckpt_path: Path, data_path: Path, out_path: Path | None, reporter: Reporter, only: list[str] | None = None
) -> PredictOutcome:
    with reporter.timed("load"):
        payload = checkpoint.load(ckpt_path)
        model = load_model(payload, ckpt_path)
        panel = _load_for(payload, data_path, reporter, only, future_rows=model.horizon)
    short = [(sid, s.rows) for sid, s in panel if s.rows < model.lookback]
    if short:
        sid, rows = short[0]
        which = f"series {sid!r} in " if sid is not None else ""
        more = f" ({len(short)} series are too short)" if len(short) > 1 else ""
        raise DataError(
            f"{which}{data_path} has {rows} rows but the model reads the last {model.lookback} (window.lookback){more} — "
            "supply more history"
        )
    _use_threads(config_from_dict(payload["config"], source=str(ckpt_path)).train)
    with reporter.timed("windows"):
        ds = _dataset_for(payload, model, panel, reporter)
    lookback, horizon = model.lookback, model.horizon
    ends = ds.offsets[1:]  # one past each series' last row
    labels = [future_labels(series, horizon) for _, series in panel]
    future = _future_inputs(payload, panel, ds, labels) if model.n_future else None
    x = ds.data.rows[torch.as_tensor((ends - lookback)[:, None] + np.arange(lookback))]  # (S, lookback, C)
    series_codes = ds.data.series_of_row[torch.as_tensor(ends - 1)] if ds.data.series_of_row is not None else None
    with torch.no_grad(), reporter.timed("forecast"):
        raw = model(x, future, series_codes).numpy()  # (S, horizon, nt[, Q])
    targets = payload["columns"]["target"]
    nt = len(targets)
    series_index = np.arange(len(panel))
    columns, blocks = list(targets), []
    if model.quantiles:
        per_level = scaling.inverse_rows(np.moveaxis(raw, -1, 1), ds.mean, ds.std, series_index, slice(0, nt))
        blocks.append(per_level[:, model.median])
        for q, level in enumerate(model.quantiles):
            columns += [f"{t}_{metrics.quantile_name(level)}" for t in targets]
            blocks.append(per_level[:, q])
    else:
        blocks.append(scaling.inverse_rows(raw, ds.mean, ds.std, series_index, slice(0, nt)))
    table = np.concatenate(blocks, axis=-1)  # (S, horizon, columns)
    first = labels[0][0]
    out = render_path(out_path, origin=first) if out_path is not None else Path(ckpt_path).parent / "forecast.csv"
    label_name = payload["columns"]["timestamp"] or "step"
    series_col = payload["columns"].get("series_id") if payload.get("series") or len(panel) > 1 else None
    with reporter.timed("write"):
        sinks.write_forecast(out, labels, columns, table, label_name, [sid for sid, _ in panel], series_col)
    _sid0, series0 = panel[0]
    recent = slice(max(0, series0.rows - 3 * horizon), series0.rows)
    plot_data = {
        "history_x": series0.index[recent] if series0.index is not None else np.arange(series0.rows)[recent],
        "history_y": series0.values[recent, :nt],
        "future_x": labels[0],
        "columns": dict(zip(columns, table[0].T, strict=True)),
        "targets": targets,
    }
    last = max(lab[-1] for lab in labels)
    return PredictOutcome(out, horizon, str(first), str(last), plot_data, len(panel))


def _future_inputs(payload: dict[str, Any], panel: frame.Panel, ds: Dataset, labels: list[Any]) -> torch.Tensor:
    """(series, horizon, n_future): the given future features, scaled like training, then the calendar."""
    n_ff = len(payload["columns"].get("future_features", []))
    calendar = payload.get("calendar", [])
    blocks = []
    for i, ((_, series), idx) in enumerate(zip(panel, labels, strict=True)):
        parts = []
        if n_ff:
            cols = slice(series.values.shape[1] - n_ff, series.values.shape[1])
            parts.append(((series.future - ds.mean[i, cols]) / ds.std[i, cols]).astype(np.float32))
        if calendar:
            parts.append(calendar_features(idx, calendar))
        blocks.append(np.concatenate(parts, axis=1))
    return torch.from_numpy(np.stack(blocks))


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
    """Rolling-origin backtest of a checkpoint on a CSV, by default over its test period (each series' own)."""
    with reporter.timed("load"):
        payload = checkpoint.load(ckpt_path)
        model = load_model(payload, ckpt_path)
        panel = _load_for(payload, data_path, reporter)
    cfg = config_from_dict(payload["config"], source=str(ckpt_path))
    lookback, horizon = model.lookback, model.horizon
    use_test_part = start is None and payload.get("test_start") is None
    if use_test_part and cfg.data.split.test == 0:
        raise DataError(f"{ckpt_path} was trained without a test part — pass --start to choose the origins")
    _use_threads(cfg.train)
    with reporter.timed("windows"):
        ds = _dataset_for(payload, model, panel, reporter)
    chosen = []
    for i, (sid, series) in enumerate(panel):
        if use_test_part:  # each series' own test part, split as in training
            where = f"{data_path}" + (f": series {sid!r}" if sid is not None else "")
            split = check_length(series.rows, lookback, horizon, cfg.data.split.val, cfg.data.split.test, where)
            local = origins(split, lookback, horizon)["test"].array()
        else:
            local = np.arange(lookback, series.rows - horizon + 1)
            local = local[local >= _row_at(series, start if start is not None else payload["test_start"], "--start")]
        if end is not None:
            local = local[local + horizon - 1 <= _row_at(series, end, "--end")]
        chosen.append(local[::stride] + ds.offsets[i])
    origins_ = np.concatenate(chosen)
    if not len(origins_):
        raise DataError(
            f"no forecast origins in {data_path} with lookback {lookback} and horizon {horizon} in the chosen period — "
            "widen --start/--end or supply more rows"
        )
    with reporter.timed("forecast"):
        bt = evaluate.run(model, ds, origins_)
    with reporter.timed("score"):
        result = evaluate.score(bt, ds, season or season_length(payload["freq"]))
    first_series, first_index = panel[int(bt.series[0])][1], int(bt.origins[0] - ds.offsets[bt.series[0]])
    last_series, last_index = panel[int(bt.series[-1])][1], int(bt.origins[-1] - ds.offsets[bt.series[-1]])
    result.update(
        checkpoint=str(ckpt_path),
        data=str(data_path),
        stride=stride,
        horizon=horizon,
        targets=payload["columns"]["target"],
        first_origin=first_series.label(first_index),
        last_origin=last_series.label(last_index),
    )
    result["_backtest"] = bt  # for plots; the CLI drops these before writing JSON
    result["_dataset"] = ds
    return result


def _row_at(series: frame.Series, when: str | int, flag: str) -> int:
    """The first row at or after `when` (a time, or a row number for step-indexed data)."""
    if series.index is None:
        try:
            return int(when)
        except ValueError:
            raise DataError(f"{flag} {when!r}: this data has no timestamps, give a row number") from None
    return row_at(series, str(when), flag)


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

    window = model.lookback + model.horizon
    panel = [(sid, s) for sid, s in _load_for(payload, data_path, reporter) if s.rows >= window]
    if not panel:
        raise DataError(f"{data_path}: no series has {window} rows (lookback + horizon) — supply more")
    ds = _dataset_for(payload, model, panel, reporter)
    valid = np.concatenate([np.arange(ds.offsets[i], ds.offsets[i + 1] - window + 1) for i in range(len(ds.ids))])
    starts = valid[np.unique(np.linspace(0, len(valid) - 1, num=min(1024, len(valid))).astype(int))]
    reference = load_model(payload, Path(""), cell="reference")
    with torch.no_grad():
        x = ds.data.take(torch.as_tensor(starts))[0][0]
        steps, _ = reference.lstm_inputs(x)
        _, _, gates = reference.lstm(steps, record_gates=True)
    layers = gate_summary(gates)
    for layer in layers:
        layer["memory_steps"] = layer["memory_length"] * model.patch  # LSTM steps → rows of the series
        layer["memory_longest_steps"] = layer["memory_longest"] * model.patch
    return layers


# ---------------------------------------------------------------------------- validate


def validate(cfg: Config, reporter: Reporter) -> dict[str, Any]:
    """Check the config and data as `train` would, without training; a summary of what it found."""
    prep = prepare(cfg, reporter)
    w = cfg.window
    windows = {"train": 0, "val": 0, "test": 0}
    for split in prep.splits:
        for k, v in origins(split, w.lookback, w.horizon, w.stride).items():
            windows[k] += len(v)
    first = prep.panel[0][1]
    summary = {"data": str(prep.data_path), "rows": prep.rows, "freq": prep.freq or "steps"}
    if len(prep.panel) > 1:
        summary["series"] = f"{len(prep.panel)} kept, {len(prep.skipped)} too short"
    else:
        summary["period"] = f"{first.label(0)} … {first.label(first.rows - 1)}"
        sp = prep.splits[0]
        summary["split rows"] = f"train {sp.train}, validation {sp.val}, test {sp.test}"
    summary["filled"] = (
        f"{sum(s.filled_rows for _, s in prep.panel)} rows, {sum(s.filled_cells for _, s in prep.panel)} cells"
    )
    summary["calendar"] = ", ".join(prep.calendar) or "none"
    summary["windows"] = ", ".join(f"{k} {v}" for k, v in windows.items())
    return summary
