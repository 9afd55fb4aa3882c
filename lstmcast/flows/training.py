"""Training as named steps, in the order the data flows (docs/architecture.md):

    prepare (load, validate, split) → fingerprint → scaler → windows → model → fit members
    → score → write outputs

`predict`, `evaluate` and `inspect` (beside this module) use a checkpoint. The CLI
calls these functions; each returns plain data describing what it wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lstmcast import lock
from lstmcast.atomic import check_targets, ensure_dir, write_text
from lstmcast.config import Config, quantile_levels, to_yaml
from lstmcast.cores import FairShare
from lstmcast.data import calendar, sinks
from lstmcast.errors import ConfigError, DataError, Interrupted, OutputError, shown
from lstmcast.flows.prepare import Prepared, check_memory, data_fingerprint, model_dims, prepare
from lstmcast.flows.tracking import Run
from lstmcast.forecast import backtest as evaluate
from lstmcast.learn import distributed
from lstmcast.learn.dataset import Dataset, assemble, fit_scaler
from lstmcast.learn.device import device_for, use_threads
from lstmcast.learn.loop import FitResult, Stopped, Trainer, Validation, Watch, loss_function, loss_on
from lstmcast.learn.scaling import Scaler
from lstmcast.learn.windows import StartRuns
from lstmcast.model import checkpoint
from lstmcast.model.checkpoint import Checkpoint, RunState
from lstmcast.model.lstm import (
    Dims,
    Ensemble,
    Forecaster,
    StackedLSTM,
    build,
    parameter_count,
)
from lstmcast.model.selection import Selection
from lstmcast.model.selection import mean as baselines_mean
from lstmcast.report import Reporter, to_json

TRAIN_OUTPUTS = ("model.pt", "state.pt", "config.yaml", "metrics.json", "history.csv")
TRAIN_LOSS_SAMPLE = 10_000  # training windows scored after training (evenly spaced): bounded time on any data


@dataclass
class TrainOutcome:
    out_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TrainOptions:
    """Command-line choices that are about this run, not the model (so not in the config)."""

    resume: bool = False
    init_from: Path | None = None
    refit_scaler: bool = False
    wait: float | None = None
    resume_command: str = "lstmcast train CONFIG --resume"  # what to run to continue after a stop
    watch: Watch | None = None  # who may stop the run (tune's trials); it also gets the validation MAE
    tracker: Run | None = None  # the MLflow run this training logs into (flows.tracking); rank 0 only


# ---------------------------------------------------------------------------- train


def train(cfg: Config, reporter: Reporter, options: TrainOptions = TrainOptions()) -> TrainOutcome:
    """Train and write the run's files. Under torchrun only rank 0 locks, logs and writes."""
    out_dir = Path(cfg.output.dir)
    world = distributed.from_env()
    device = device_for(cfg.train)  # before any work: a precision this machine cannot run is a user error
    ensure_dir(out_dir)
    if not os.access(out_dir, os.W_OK):
        raise OutputError(f"output folder {out_dir} is not writable — choose another with --out or output.dir")
    with lock.hold(out_dir, options.wait) if world.main else contextlib.nullcontext():
        if world.main:
            check_targets(
                *(out_dir / name for name in TRAIN_OUTPUTS)
            )  # a folder or FIFO there: refused before training
            _remove_stray_temporaries(out_dir)
            reporter.attach_log(out_dir / "train.log")
        outcome = _Run(cfg, reporter, options, out_dir, world, device).execute()
    # After a failure there is no finish(): torchrun stops the other ranks, which may be mid-collective.
    distributed.finish()
    return outcome


def _remove_stray_temporaries(out_dir: Path) -> None:
    """Temporary files of a run killed mid-write (`kill -9`); safe to delete while holding the lock."""
    for name in TRAIN_OUTPUTS:
        for stray in out_dir.glob(f".{name}.*.tmp"):
            stray.unlink(missing_ok=True)


@dataclass
class _Run:
    """One training run, step by step; `execute` reads like the data-flow diagram."""

    cfg: Config
    reporter: Reporter
    options: TrainOptions
    out_dir: Path
    world: distributed.World
    device: torch.device
    state: RunState | None = None  # what --resume continues, then what an interruption saves
    members: list[StackedLSTM] = field(default_factory=list)
    share: FairShare | None = None  # this process's threads, recounted while training
    results: list[FitResult] = field(default_factory=list)

    @property
    def state_path(self) -> Path:
        return self.out_dir / "state.pt"

    @property
    def tracker(self) -> Run | None:
        return self.options.tracker if self.world.main else None

    def execute(self) -> TrainOutcome:
        started = time.perf_counter()
        resumed = checkpoint.load_state(self.state_path) if self.options.resume else None
        init = checkpoint.load(self.options.init_from) if self.options.init_from else None
        with self.reporter.timed("load"):
            prep = prepare(self.cfg, self.reporter)
        if prep.freq is not None:  # the resolved config records the frequency actually used
            self.cfg = dataclasses.replace(self.cfg, data=dataclasses.replace(self.cfg.data, freq=prep.freq))
        dims = model_dims(self.cfg, prep)
        check_memory(self.cfg, prep, dims)
        if (
            self.tracker is not None
        ):  # the config as resolved: the first write, so a dead store is known before training
            self.tracker.config(self.cfg)
        if init is not None:
            _check_init_columns(init, self.cfg, Path(self.options.init_from or ""))
        fingerprint = data_fingerprint(prep.panel)
        scaler = self._scaler(prep, fingerprint, resumed, init)
        self.state = resumed or RunState(self.cfg.to_dict(), scaler, fingerprint)
        distributed.start(self.world, self.device)
        self.share = use_threads(self.cfg.train, self.world.local_size)
        with self.reporter.timed("windows"):
            ds = _windows(self.cfg, prep, scaler, self.device)
        self._describe(prep, ds)
        model = self._fit_members(ds, dims, init)
        if not self.world.main:  # every rank holds the same weights; rank 0 scores and writes them
            return TrainOutcome(self.out_dir, self.out_dir / "model.pt", {})
        with self.reporter.timed("score"):
            selection = evaluate.select(model, ds, calendar.season_length(prep.freq))
            scores = _score(model, ds, prep, self.cfg, selection)
        scores.update(self._run_facts(model, ds, prep, started))
        self._report_selection(selection)
        with self.reporter.timed("write"):
            path = self._write_outputs(prep, dims, scaler, scores, selection)
        self.state_path.unlink(missing_ok=True)  # finished: nothing left to resume
        if self.tracker is not None:
            self.tracker.finish_train(self.out_dir, scores, path)
        self.reporter.info(_final_line(self.results, scores))
        return TrainOutcome(self.out_dir, path, scores)

    def _scaler(self, prep: Prepared, fingerprint: str, resumed: RunState | None, init: Checkpoint | None) -> Scaler:
        """The resumed run's scaler, a warm start's (unless refitted), or one fitted on the training rows."""
        if resumed is not None:
            _check_resumable(resumed, self.cfg, fingerprint, self.state_path)
            return resumed.scaler
        if init is not None and not self.options.refit_scaler:
            return init.scaler
        return fit_scaler(prep.panel, prep.splits, self.cfg.data.scaling)

    def _describe(self, prep: Prepared, ds: Dataset) -> None:
        n_series = f"{len(ds.ids)} series, " if len(ds.ids) > 1 else ""
        parts = ds.parts
        self.reporter.info(
            f"{n_series}{prep.rows} rows of {prep.data_path} ({prep.freq or 'steps'}): "
            f"{len(parts['train'])} training, {len(parts['val'])} validation, {len(parts['test'])} test windows; "
            f"training on {self.device} with {torch.get_num_threads()} threads"
            + (f" in each of {self.world.size} processes (DDP)" if self.world.distributed else "")
        )

    def _fit_members(self, ds: Dataset, dims: Dims, init: Checkpoint | None) -> Forecaster:
        """Train train.ensemble members (seeds seed, seed + 1, …), continuing a resumed run's."""
        assert self.state is not None
        t = self.cfg.train
        self.results = [_result_from_dict(r) for r in self.state.results]
        for weights in self.state.members:
            self.members.append(_loaded(build(self.cfg, dims).to(self.device), weights))
        for k in range(len(self.members), t.ensemble):
            torch.manual_seed(t.seed + k)
            member = build(self.cfg, dims).to(self.device)
            if init is not None:
                _warm_start(member, init, Path(self.options.init_from or ""))
            self._fit_one(member, k, ds)
            self.members.append(member)
            if k + 1 < t.ensemble:
                self._save_state(None)  # a finished member survives an interruption of the next one
        return self.members[0] if len(self.members) == 1 else Ensemble(self.members)

    def _fit_one(self, member: StackedLSTM, k: int, ds: Dataset) -> None:
        assert self.state is not None
        t = dataclasses.replace(self.cfg.train, seed=self.cfg.train.seed + k)
        starts = _starts(ds, self.cfg.window.lookback, self.device)
        with self.reporter.timed("setup"):
            trainer = Trainer(
                member,
                ds.data,
                starts["train"],
                starts["val"],
                cfg=t,
                progress=self.reporter,
                world=self.world,
                share=self.share,
                watch=self.options.watch,
                observers=[self.tracker.member(k, t.ensemble)] if self.tracker is not None else [],
            )
        if self.state.trainer is not None and k == len(self.state.members):
            trainer.load_state_dict(self.state.trainer)
            self.reporter.info(
                f"resuming from {self.state_path}: member {k + 1}, epoch {trainer.epoch}, step {trainer.step}"
            )
        if self.cfg.train.ensemble > 1:
            self.reporter.info(f"ensemble member {k + 1} of {self.cfg.train.ensemble} (seed {t.seed})")
        with self.reporter.training(t.epochs), _stop_on_signals(trainer, self.world):
            try:
                with self.reporter.timed("train"):
                    self.results.append(trainer.run(on_epoch_end=self._save_state))
            except Stopped as stop:
                self._save_state(trainer)
                raise Interrupted(
                    f"interrupted by {signal.Signals(stop.signum).name} in epoch {stop.epoch} after step {stop.step}; "
                    f"resumable state written to {self.state_path} — continue with: {self.options.resume_command} "
                    "(same config and data)",
                    stop.signum,
                ) from None

    def _save_state(self, trainer: Trainer | None) -> None:
        """What --resume needs: the finished members, their results and the trainer in progress."""
        if not self.world.main or self.state is None:
            return
        self.state.members = [_cpu_state(m) for m in self.members]
        self.state.results = [_result_dict(r) for r in self.results]
        self.state.trainer = None if trainer is None else trainer.state_dict()
        checkpoint.save_state(self.state_path, self.state)

    def _run_facts(self, model: Forecaster, ds: Dataset, prep: Prepared, started: float) -> dict[str, Any]:
        result = self.results[0]
        return {
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "train_seconds": round(sum(r.seconds for r in self.results), 3),
            "ensemble": len(self.results),
            "total_seconds": round(time.perf_counter() - started, 3),
            "parameters": parameter_count(model),
            "windows": {k: len(v) for k, v in ds.parts.items()},
            "skipped_series": prep.skipped,
        }

    def _report_selection(self, selection: Selection | None) -> None:
        """One line on what validation chose: how many series each forecaster serves, and a few that switched."""
        mode = self.cfg.train.select
        if selection is None:
            if mode == "best":
                self.reporter.info(
                    "train.select: best found no validation windows (data.split.val is 0): "
                    "the model serves every series"
                )
            return
        mix = selection.mix(mode)
        switched = [str(sid) for sid in selection.ids if sid is not None and selection.choice(sid, mode) != "model"]
        text = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in mix.items() if n)
        if switched:
            text += f" (e.g. {', '.join(shown(s, 40) for s in switched[:3])})"
        self.reporter.info(
            f"forecaster per series, chosen on {selection.windows} validation windows (train.select: {mode}): {text}; "
            f"new series: {selection.overall(mode).replace('_', ' ')}"
        )

    def _write_outputs(
        self, prep: Prepared, dims: Dims, scaler: Scaler, scores: dict[str, Any], selection: Selection | None
    ) -> Path:
        write_text(self.out_dir / "config.yaml", to_yaml(self.cfg))
        write_text(self.out_dir / "metrics.json", to_json(scores, indent=2) + "\n")
        history = [_history_row(k, p) for k, r in enumerate(self.results) for p in r.history]
        sinks.write_frame(self.out_dir / "history.csv", sinks.table(history))
        ids = list(prep.panel.ids)
        path = self.out_dir / "model.pt"
        checkpoint.save(
            path,
            Checkpoint(
                config=self.cfg,
                dims=dims,
                members=[_cpu_state(m) for m in self.members],
                scaler=scaler,
                calendar=prep.calendar,
                series=None if ids == [None] else [str(sid) for sid in ids],
                **_periods(prep),
                time_zone=calendar.zone_name(prep.panel),
                metrics=scores,
                selection=selection,
                created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            ),
        )
        return path


def _history_row(member: int, point: Validation) -> dict[str, Any]:
    """One history.csv row; val_mae only when it was measured (tune's trials)."""
    row = {"member": member + 1, **dataclasses.asdict(point)}
    if row["val_mae"] is None:
        del row["val_mae"]
    return row


def _windows(cfg: Config, prep: Prepared, scaler: Scaler, device: torch.device) -> Dataset:
    """The scaled rows of every series in one tensor, with the origins of each split part."""
    return assemble(
        prep.panel,
        scaler,
        lookback=cfg.window.lookback,
        horizon=cfg.window.horizon,
        calendar=prep.calendar,
        n_future_features=len(cfg.data.future_features),
        splits=prep.splits,
        stride=cfg.window.stride,
        device=device,
        series_codes=list(range(len(prep.panel))) if cfg.model.series_embedding > 0 else None,
    )


def _starts(ds: Dataset, lookback: int, device: torch.device) -> dict[str, torch.Tensor | StartRuns]:
    """Window starts of each part: training's computed batch by batch (no per-window index)."""
    return {
        "train": StartRuns(ds.parts["train"], lookback, device),
        **{k: ds.data.starts(ds.parts[k].array()) for k in ("val", "test")},
    }


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


def _loaded(model: StackedLSTM, weights: dict[str, torch.Tensor]) -> StackedLSTM:
    model.load_state_dict(weights)
    return model


def _result_dict(result: FitResult) -> dict[str, Any]:
    return {**dataclasses.asdict(result), "history": [dataclasses.asdict(p) for p in result.history]}


def _result_from_dict(raw: dict[str, Any]) -> FitResult:
    return FitResult(**{**raw, "history": [Validation(**p) for p in raw["history"]]})


def _check_resumable(state: RunState, cfg: Config, fingerprint: str, path: Path) -> None:
    """A resume must continue the same run: same config (train.epochs may grow) and the same data."""
    saved, now = _flatten(state.config), _flatten(cfg.to_dict())
    for key in sorted(set(saved) | set(now)):
        if key != "train.epochs" and saved.get(key) != now.get(key):
            raise ConfigError(
                f"{path} was written with {key} = {shown(saved.get(key))} but the config now says {shown(now.get(key))} — "
                "resume with the same config, or train from scratch without --resume"
            )
    if state.fingerprint != fingerprint:
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


def _check_init_columns(init: Checkpoint, cfg: Config, source: Path) -> None:
    """A warm start reads the same columns (checked before its scaler meets the data)."""
    columns = {k: list(getattr(cfg.data, k)) for k in ("target", "features", "future_features")}
    theirs = {k: list(getattr(init.config.data, k)) for k in columns}
    if theirs != columns:
        raise ConfigError(f"--init-from {source} was trained on columns {theirs} — use the same target and features")


def _warm_start(model: StackedLSTM, init: Checkpoint, source: Path) -> None:
    """Start from a checkpoint's weights; its architecture must match this config's."""
    mine, theirs = dataclasses.asdict(model.spec), dataclasses.asdict(init.spec())
    for key, value in mine.items():
        if key not in ("dropout", "cell") and theirs[key] != value:
            raise ConfigError(
                f"--init-from {source} has {key} = {shown(theirs[key])} but this config gives {shown(value)} — "
                "warm starts need the same architecture, window and columns"
            )
    model.load_state_dict(init.members[0])


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


def _score(model: Forecaster, ds: Dataset, prep: Prepared, cfg: Config, selection: Selection | None) -> dict[str, Any]:
    """Losses on each part (scaled), and test errors in original units next to naive baselines.

    With a selection, its validation scores and the test errors of the selected forecasts too.

    The training loss is measured on at most TRAIN_LOSS_SAMPLE evenly spaced training windows:
    a full pass over millions of windows would cost as much as an epoch and tell nothing more.
    """
    loss_fn = loss_function(cfg.train.loss, quantile_levels(cfg.train))
    starts = _starts(ds, cfg.window.lookback, ds.data.rows.device)
    train = starts["train"]
    sample = (
        train[torch.linspace(0, len(train) - 1, min(len(train), TRAIN_LOSS_SAMPLE)).long()] if len(train) else train
    )
    scores: dict[str, Any] = {"loss": cfg.train.loss, "train_loss_windows": len(sample)}
    for part, idx in (("train", sample), ("val", starts["val"]), ("test", starts["test"])):
        scores[f"{part}_loss"] = loss_on(model, ds.data, idx, loss_fn) if len(idx) else None
    choice = None
    if selection is not None:
        scores["selection"] = _selection_summary(selection, cfg.train.select)
        choice = [selection.choice(sid, cfg.train.select) or "model" for sid in ds.ids]
    if len(ds.parts["test"]):
        bt = evaluate.run(model, ds, ds.parts["test"].array())
        result = evaluate.score(bt, ds, calendar.season_length(prep.freq), choice)
        for name, errors in result["overall"].items():
            flat = {f"test_{k}": v for k, v in errors.items()}
            if name == "model":
                scores.update(flat)
            elif name == "selected":  # the forecasts predict serves (train.select), on the same windows
                scores[name] = flat
            else:  # baselines on exactly the same test windows, so the comparison is like for like
                scores[name] = {"season": result["season"] if name == "seasonal_naive" else 1, **flat}
        scores["relative_skill"] = result["relative_skill"]
        if "quantiles" in result:
            scores["test_quantiles"] = result["quantiles"]
    return scores


def _selection_summary(selection: Selection, mode: str) -> dict[str, Any]:
    """metrics.json's record of the selection: the mix, the mean validation MASE of each forecaster."""
    return {
        "mode": mode,
        "validation_windows": selection.windows,
        "mix": selection.mix(mode),
        "new_series": selection.overall(mode),
        "validation_mase": {name: baselines_mean(values) for name, values in selection.scores.items()},
        "switched": [str(sid) for sid in selection.ids if selection.choice(sid, mode) != "model"],
    }


def _final_line(results: list[FitResult], scores: dict[str, Any]) -> str:
    """The last log line of a training run, with figures rounded for people (metrics.json keeps them whole)."""
    first = results[0]
    members = f", {len(results)} ensemble members" if len(results) > 1 else ""
    done = f"trained {first.epochs_run} epochs in {scores['train_seconds']:.1f}s (best epoch {first.best_epoch}{members}); "
    if "test_mae" not in scores:
        val = scores.get("val_loss")
        return done + (f"validation loss {val:.4g}" if val is not None else "no held-out data")
    naive, last = scores["seasonal_naive"], scores["naive"]
    line = done + (
        f"test MAE {scores['test_mae']:.4g} (seasonal naive {naive['test_mae']:.4g}, naive {last['test_mae']:.4g}), "
        f"test RMSE {scores['test_rmse']:.4g} (seasonal naive {naive['test_rmse']:.4g}, naive {last['test_rmse']:.4g})"
    )
    if scores.get("selection", {}).get("switched") and "selected" in scores:
        line += f"; as served (per-series selection): test MAE {scores['selected']['test_mae']:.4g}"
    return line
