"""`lstmcast tune`: good settings for new data, searched on validation rows only, within a time budget.

CONFIG + the data's frequency and lengths ──space (default, or --space YAML)──▶ Optuna study (TPE,
seeded; median pruning on the validation loss at every validation; stored in a database, so a
rerun — or another process pointed at the same storage — continues it) ──each trial: a real
`train` into DIR/trials/N, scored by its validation MASE──▶ DIR/best.yaml, DIR/trials.csv,
DIR/report.json [, DIR/model/ with --train or --ensemble].

The test part is never read by the search: a trial's score is the model's mean validation MASE
over series (the same numbers `train.select` uses), so trials with different losses, window
norms and lookbacks compare on one scale. The pruner reads the validation MAE on the scaled data
at every validation (measured for tune whatever the training loss), so it compares trials of
different losses too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast import config, durations
from lstmcast.atomic import ensure_dir
from lstmcast.config import Config, load_config
from lstmcast.errors import ConfigError, Interrupted, LstmcastError
from lstmcast.extras import require
from lstmcast.flows import starter
from lstmcast.flows import study as studies
from lstmcast.flows.space import (
    MAX_STEPS,
    Dim,
    check_space,
    default_space,
    lstm_steps,
    read_space,
    search_defaults,
    starting_points,
    with_values,
)
from lstmcast.flows.starter import DataFacts
from lstmcast.flows.tracking import Run
from lstmcast.learn.loop import Validation
from lstmcast.locations import redact
from lstmcast.report import Reporter, to_json

PACE_SECONDS = 10.0  # a trial's pace is judged after this long of optimiser steps …
PACE_MARGIN = 1.25  # … and it is stopped early only if it would overrun by more than 25 %
# A trial may be pruned only in the second half of its own schedule: earlier, a long cosine run at a high learning
# rate looks worse than a short one ending at the same step (on M4 the pruner cut every 12-epoch trial at epoch 1).
PRUNE_FROM = 0.5


# ---------------------------------------------------------------------------- trials


class BudgetSpent(Exception):
    """The wall-clock budget ran out in the middle of a trial."""


class TrialTooLong(Exception):
    """One trial ran past `--trial-limit`, or its pace would take it past the limit or the budget: the search goes
    on without it (a cheaper trial may still fit)."""

    def __init__(self, reason: str = "", stopped: str = "trial limit") -> None:
        super().__init__(reason)
        self.stopped = stopped


class TrialWatch:
    """What stops a trial: the budget's deadline, its own limit, a pace that would pass either (projected after
    PACE_SECONDS of steps), and the pruner, fed the validation MAE at every validation."""

    def __init__(self, trial: Any, deadline: float, limit: float, epochs: int) -> None:
        self.trial, self.deadline, self.epochs = trial, deadline, epochs
        self.trial_deadline = time.monotonic() + limit
        self.first: tuple[float, int] | None = None  # (time, steps) at the first step: setup is not pace
        self.steps = 0  # the trial's optimiser steps in all

    def after_step(self, epoch: int, done: int, total: int) -> None:
        now, steps = time.monotonic(), (epoch - 1) * total + done
        self.steps = self.epochs * total
        if now > self.deadline:
            raise BudgetSpent
        if now > self.trial_deadline:
            raise TrialTooLong
        if self.first is None:
            self.first = (now, steps)
            return
        seen, counted = now - self.first[0], steps - self.first[1]
        if seen < PACE_SECONDS or counted < 20:
            return
        end = now + seen / counted * (self.steps - steps) / PACE_MARGIN  # the end at this pace, less a margin
        if end > self.deadline:
            raise TrialTooLong(
                f"its pace would end it {_duration(end - self.deadline)} after the budget", "budget pace"
            )
        if end > self.trial_deadline:
            raise TrialTooLong(f"its pace would take {_duration(end - self.trial_deadline)} past the trial limit")

    def after_validation(self, point: Validation, epochs: int) -> None:
        if point.val_mae is None:
            return
        self.trial.report(float(point.val_mae), point.step)
        if point.step >= PRUNE_FROM * self.steps and self.trial.should_prune():
            raise _pruned(self.trial, f"validation MAE {point.val_mae:.4g} (scaled) at step {point.step}")


@dataclass
class Search:
    """One `tune` invocation: the base config, the space, the folder, the deadline."""

    base: Config
    space: list[Dim]
    out: Path
    deadline: float
    reporter: Reporter
    stop: bool = False
    max_steps: int | None = None  # the default space: at most this many LSTM steps (lookback / patch)
    trial_limit: float = math.inf  # seconds one trial may train
    mine: list[int] = dataclasses.field(default_factory=list)  # trials this process ran whose folders remain
    interrupted: Interrupted | None = None
    tracker: Run | None = None  # MLflow: the tune run each trial nests under (flows.tracking)

    def objective(self, trial: Any) -> float:

        from lstmcast.flows.training import TrainOptions, train

        values = {d.key: d.suggest(trial) for d in self.space}
        steps = lstm_steps({**search_defaults(self.base), **values})
        if self.max_steps is not None and steps > self.max_steps:
            raise _pruned(trial, f"{steps} LSTM steps (lookback / patch) is more than {self.max_steps}")
        folder = self.out / "trials" / str(trial.number)
        self.mine.append(trial.number)
        try:
            cfg = with_values(self.base, {**values, "output.dir": str(folder)})
        except ConfigError as exc:  # e.g. a lookback that is not a multiple of the patch
            raise _pruned(trial, f"invalid combination: {exc}") from None
        watch = TrialWatch(trial, self.deadline, self.trial_limit, cfg.train.epochs)
        reporter = Reporter(quiet=True, interactive=False)
        try:
            tracker = self.tracker.trial(trial.number) if self.tracker is not None else None
            outcome = train(cfg, reporter, TrainOptions(watch=watch, tracker=tracker))
        except BudgetSpent:
            trial.set_user_attr("stopped", "budget")
            self.stop = True
            raise _pruned(trial, "the budget ran out") from None
        except TrialTooLong as exc:
            trial.set_user_attr("stopped", exc.stopped)
            raise _pruned(trial, str(exc) or f"ran past the trial limit ({_duration(self.trial_limit)})") from None
        except Interrupted as exc:
            shutil.rmtree(folder, ignore_errors=True)  # a trial is never resumed: the study goes on instead
            self.stop = True
            self.interrupted = Interrupted(
                f"interrupted by {signal.Signals(exc.signum).name} during trial {trial.number}; the study is kept "
                "(that trial counts as failed) — run the same lstmcast tune again to continue it",
                exc.signum,
            )
            raise self.interrupted from None
        except LstmcastError as exc:  # this setting cannot train (too long a lookback, divergence): a bad point
            trial.set_user_attr("error", redact(str(exc)))
            raise _pruned(trial, str(exc)) from None
        finally:
            reporter.close()
        value = outcome.metrics.get("selection", {}).get("validation_mase", {}).get("model")
        if value is None or not math.isfinite(value):
            raise _pruned(trial, "no validation MASE")
        trial.set_user_attr("train_seconds", round(outcome.metrics.get("train_seconds", 0.0), 1))
        trial.set_user_attr("epochs_run", outcome.metrics.get("epochs_run"))
        return float(value)

    def after_trial(self, study: Any, trial: Any) -> None:
        """Keep the best trial's folder only (disk stays bounded); one line per trial; stop when asked."""
        if self.tracker is not None:  # the trial's nested MLflow run: its values, validation MASE and end
            self.tracker.after_trial(study, trial)
        best = _best(study)
        for number in [n for n in self.mine if best is None or n != best.number]:
            shutil.rmtree(self.out / "trials" / str(number), ignore_errors=True)
            self.mine.remove(number)
        left = max(0.0, self.deadline - time.monotonic())
        result = (
            "pruned" if trial.state.name != "COMPLETE" or trial.value is None else f"validation MASE {trial.value:.4g}"
        )
        best_text = "—" if best is None else f"{best.value:.4g} (trial {best.number})"
        self.reporter.info(f"trial {trial.number} {result}; best {best_text}; {_duration(left)} left")
        if self.stop or left <= 0:
            study.stop()


def _pruned(trial: Any, reason: str) -> Exception:
    """Optuna's TrialPruned, with the reason kept in the study (trials.csv's `user_attrs_pruned`)."""
    import optuna

    trial.set_user_attr("pruned", redact(reason)[:200])
    return optuna.TrialPruned(reason)


def _best(study: Any) -> Any:
    done = _complete(study)
    return min(done, key=lambda t: t.value) if done else None


def _complete(study: Any) -> list[Any]:
    """Finished trials with a validation MASE (a pruned trial's value is its last validation MAE)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes else f"{sec}s"


# ---------------------------------------------------------------------------- the study


def parse_budget(text: str, option: str = "--budget") -> float:
    """`30m`, `2h`, `90s` or a number of seconds → seconds (> 0, at most a year)."""
    return durations.seconds(text, option, most=365 * durations.DAY)


@contextlib.contextmanager
def _stop_on_term(search: Search) -> Iterator[None]:
    """SIGTERM/SIGINT between trials: finish the bookkeeping, write the outputs, then exit 143/130."""
    caught: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        caught.append(signum)
        search.stop = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if caught:
        raise Interrupted(
            f"interrupted by {signal.Signals(caught[0]).name}; the study is kept — run the same tune again to continue",
            caught[0],
        )


def run(
    config_path: Path,
    out: Path,
    budget: float,
    reporter: Reporter,
    *,
    trials: int | None = None,
    space_path: Path | None = None,
    storage: str | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    trial_limit: float | None = None,
    tracker: Run | None = None,
) -> dict[str, Any]:
    """Search until the budget or `trials` finished trials (each one at most `trial_limit` s); write the outputs."""
    require("optuna", "tune", "lstmcast tune")

    started = time.monotonic()
    base = load_config(config_path, overrides or [])
    if base.data.split.val == 0:
        raise ConfigError(f"{config_path}: data.split.val is 0 — tune scores trials on validation rows; give some")
    space = read_space(space_path) if space_path else None  # a bad space file: refused before the data is read
    facts = starter.data_facts(base.data)
    space = space or default_space(base, facts)
    check_space(base, space, str(space_path or "the default space"))
    url = studies.storage_url(out, storage)
    ensure_dir(out)
    study_run = _open_study(base, out, url, seed)
    max_steps = None if space_path else MAX_STEPS
    done_before = len(study_run.trials)
    if not study_run.trials:  # a new study starts from sane points: the config as written, then `init`'s settings
        for point in starting_points(base, space, facts, max_steps):
            study_run.enqueue_trial(point)
    limit = default_trial_limit(budget) if trial_limit is None else trial_limit
    search = Search(base, space, out, started + budget, reporter, max_steps=max_steps, trial_limit=limit)
    search.tracker = tracker
    callbacks = [search.after_trial]
    if trials is not None:
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        callbacks.append(MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    reporter.info(f"searching {len(space)} settings of {config_path} for {_duration(budget)} into {out}")
    with _stop_on_term(search), studies.storage_errors(url):
        if trials is None or _finished(study_run) < trials:
            with contextlib.suppress(Interrupted):  # a trial's SIGTERM: the outputs are written first
                study_run.optimize(search.objective, callbacks=callbacks, timeout=budget, gc_after_trial=True)
        summary = write_outputs(study_run, base, space, out, facts)
    if search.interrupted is not None:
        raise search.interrupted
    summary["trials_this_run"] = len(study_run.trials) - done_before
    return summary


def _open_study(base: Config, out: Path, url: str, seed: int | None) -> Any:
    """The study of this config's problem (`study.problem`): created, or continued; --out must hold no other."""
    import optuna

    name = studies.claim(out, studies.problem(base))
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported by lstmcast, in one line
    optuna.logging.disable_default_handler()
    with studies.storage_errors(url):
        return optuna.create_study(
            study_name=name,
            storage=studies.open_storage(url),
            sampler=optuna.samplers.TPESampler(seed=base.train.seed if seed is None else seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
            direction="minimize",
            load_if_exists=True,
        )


def default_trial_limit(budget: float) -> float:
    """A quarter of the budget (at least a minute): at least four trials, whatever the space holds."""
    return min(budget, max(budget / 4, 60.0))


def _finished(study: Any) -> int:
    return sum(t.state.is_finished() and t.state.name != "FAIL" for t in study.trials)


def write_outputs(study: Any, base: Config, space: list[Dim], out: Path, facts: DataFacts) -> dict[str, Any]:
    """best.yaml (a complete config), trials.csv, report.json; the summary."""
    from lstmcast.atomic import write_text
    from lstmcast.data import sinks

    best = _best(study)
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    if len(frame):
        frame["duration"] = frame["duration"].dt.total_seconds().round(1)
        # Optuna keeps a pruned trial's last report (a scaled validation MAE) as its value: not a MASE
        frame["value"] = frame["value"].where(frame["state"] == "COMPLETE")
        frame = frame.rename(columns={"value": "validation_mase"})
        for column in frame.columns:  # a reason stored with the trial may name a URL
            if frame[column].dtype == object or str(frame[column].dtype) in ("str", "string"):
                frame[column] = frame[column].map(lambda v: redact(v) if isinstance(v, str) else v)
        sinks.write_frame(out / "trials.csv", frame)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "trials": len(study.trials),
        "complete": sum(t.state.name == "COMPLETE" for t in study.trials),
        "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "space": {d.key: d.to_dict() for d in space},
        "data": dataclasses.asdict(facts),
        "outputs": {"trials": str(out / "trials.csv"), "report": str(out / "report.json")},
    }
    if best is not None:
        cfg = with_values(base, {**best.params, "output.dir": str(out / "model")})
        write_text(out / "best.yaml", _best_yaml(cfg, best))
        summary["best"] = {"trial": best.number, "validation_mase": best.value, "params": best.params}
        summary["outputs"]["best"] = str(out / "best.yaml")
        summary["top"] = [
            {"trial": t.number, "validation_mase": t.value, "params": t.params}
            for t in sorted(_complete(study), key=lambda t: t.value)[:5]
        ]
        summary["importance"] = _importance(study)
    summary["problem"] = studies.problem(base)
    write_text(out / "report.json", to_json(summary, indent=2) + "\n")
    return summary


def _best_yaml(cfg: Config, best: Any) -> str:
    head = (
        f"# Found by lstmcast tune: trial {best.number}, mean validation MASE {best.value:.4g} (validation rows only).\n"
        "# A complete config: lstmcast train runs it as is (output.dir is the tune folder's model/).\n"
    )
    return head + config.to_yaml(cfg)


def _importance(study: Any) -> dict[str, float] | None:
    """Optuna's parameter importances (its default evaluator), when there are enough finished trials
    (with too few, Optuna warns and returns equal shares: no importance is better than a made-up one)."""
    import warnings

    import optuna

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError, ZeroDivisionError):
            return None
    return None if any("too small" in str(w.message) for w in caught) else found


def train_winner(out: Path, reporter: Reporter, ensemble: int = 1, tracker: Run | None = None) -> dict[str, Any]:
    """Train best.yaml into DIR/model (with `ensemble` members); its validation MASE next to the best trial's."""
    from lstmcast.flows.training import TrainOptions, train

    path = out / "best.yaml"
    if not path.exists():
        raise ConfigError(f"{path} does not exist — no trial has finished yet; tune longer")
    cfg = load_config(path, [f"train.ensemble={ensemble}"] if ensemble > 1 else [])
    outcome = train(cfg, reporter, TrainOptions(tracker=tracker))
    value = outcome.metrics.get("selection", {}).get("validation_mase", {}).get("model")
    return {"checkpoint": str(outcome.checkpoint), "ensemble": ensemble, "validation_mase": value}
