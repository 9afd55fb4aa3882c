"""MLflow tracking (`--track URI` or `track.uri`; `pip install 'lstmcast[mlflow]'`): what train, tune and evaluate
log, and the `champion` alias promote keeps on the registered model. docs/tracking.md says what goes where.

    Tracking (one invocation: the client and the failure rule) ──run()──▶ Run (one MLflow run, made on its first
    write; `trial()` and `child()` nest tune's trials and winner under it) ◀── the training flow through
    TrainOptions.tracker: `config()` once resolved, `member(k)` as the Trainer's Observer (each validation
    point), `finish_train()` with the final metrics and the files

Nothing is logged unless asked, and mlflow is imported on the first write only. The store is a side channel: a
failure (a server that is down, a store that cannot be written) is one `warning:` line, after which nothing more is
sent and the command goes on; with `track.required` (`--track-required`) it is one `error:` line and exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lstmcast import __version__
from lstmcast.config import Config, TrackConfig
from lstmcast.errors import ConfigError, Interrupted, LockedError, LstmcastError, shown
from lstmcast.extras import require
from lstmcast.locations import is_url
from lstmcast.report import Reporter

R = TypeVar("R")

CHAMPION = "champion"  # the alias promote keeps on the version of the model in service
MODEL_ID = "lstmcast.model_id"  # tag on runs and model versions: the checkpoint's id (as in promotions.jsonl)
BATCH = 100  # MLflow takes at most 100 params (and 1,000 metrics) per call
PARAM_CHARS = 6000  # MLflow's longest param value
REASON_CHARS = 160  # of a failure's cause, in the one warning or error line
# MLflow's defaults retry a dead server for about four minutes a call; a run that was not asked to wait for its
# tracking server should not. Each applies only where the environment does not say otherwise.
MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # a job asked to log to its own store, not to call anywhere else
    "MLFLOW_CONFIGURE_LOGGING": "false",  # mlflow's own log lines would bypass lstmcast's one-line warnings
}


class TrackingError(LstmcastError):
    """The tracking store failed and `track.required` makes that the run's failure."""


@dataclass(frozen=True)
class Target:
    """Where and how to log: the store's URI, the experiment, the registered model, the failure rule."""

    uri: str
    experiment: str = "lstmcast"
    model: str | None = None
    required: bool = False


def target(track: TrackConfig, uri: str | None = None, required: bool = False) -> Target | None:
    """--track URI (else track.uri) and --track-required (or track.required); None when no store is named.

    Checked before any work: a password in the URI is refused, and mlflow must be installed."""
    chosen = track.uri if uri is None else uri
    if chosen is None or not chosen.strip():
        return None
    if urlsplit(chosen).password:
        raise ConfigError(
            f"the tracking URI {shown(_without_password(chosen))} holds a password, which would be written into "
            "config.yaml and the checkpoint — give it in MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead"
        )
    require("mlflow", "mlflow", "--track (track.uri)")
    chosen = chosen if is_url(chosen) else Path(chosen).expanduser().resolve().as_uri()
    return Target(chosen, track.experiment, track.model, required or track.required)


def _without_password(uri: str) -> str:
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", uri)


def track_sets(uri: str | None, required: bool) -> list[str]:
    """--track and --track-required as the `--set` overrides of the keys they stand for (the resolved config keeps
    them: a retrain from config.yaml, best.yaml or --resume logs to the same store)."""
    sets = [] if uri is None else [f"track.uri={json.dumps(uri)}" if uri.strip() else "track.uri=null"]  # '': off
    return sets + (["track.required=true"] if required else [])


# ---------------------------------------------------------------------------- the connection and its failure rule


class Tracking:
    """One invocation's client, experiment and failure rule: the first failure is one warning line and nothing
    more is sent; with `required` it is a TrackingError (exit 2), and so is every later call."""

    def __init__(self, target: Target, reporter: Reporter) -> None:
        self.target, self.reporter = target, reporter
        self._client: Any = None
        self._experiment: str | None = None
        self.failure: str | None = None
        for key, value in MLFLOW_DEFAULTS.items():  # before mlflow is first imported
            os.environ.setdefault(key, value)
        if target.uri.startswith("file:"):  # asked for by name: MLflow 3 keeps the file store in maintenance mode
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    def call(self, what: str, action: Callable[[Any], R], *, quiet: bool = False) -> R | None:
        """`action(client)`, or None once the store has failed; `quiet` while another error is on its way out."""
        if self.failure is not None:
            if self.target.required and not quiet:
                raise TrackingError(self.failure)
            return None
        try:
            with _hushed():
                return action(self.client())
        except Exception as exc:  # the store's, the network's or mlflow's: all are the store failing
            self.fail(what, exc, quiet=quiet)
            return None

    def fail(self, what: str, exc: BaseException, *, quiet: bool = False) -> None:
        """The first failure: one warning line (the command goes on), or with `required` a TrackingError."""
        self.failure = f"MLflow tracking at {self.target.uri} failed while {what}: {_reason(exc)}"
        if not self.target.required:
            self.reporter.warning(f"{self.failure} — the run goes on without tracking")
        elif not quiet:
            raise TrackingError(
                f"{self.failure} — fix the store or the server, or drop --track-required (track.required) "
                "to go on with a warning"
            ) from None

    def client(self) -> Any:
        if self._client is None:
            import mlflow

            registry = os.environ.get("MLFLOW_REGISTRY_URI") or self.target.uri
            # also the process's default: MLflow's file registry reads model versions through a default client,
            # which would otherwise make ./mlflow.db in the working directory
            mlflow.set_tracking_uri(self.target.uri)
            self._client = mlflow.MlflowClient(tracking_uri=self.target.uri, registry_uri=registry)
        return self._client

    def experiment(self, client: Any) -> str:
        """The experiment's id, made if it does not exist (by whichever process gets there first)."""
        if self._experiment is None:
            name = self.target.experiment
            found = client.get_experiment_by_name(name)
            if found is None:
                try:
                    self._experiment = client.create_experiment(name, artifact_location=self.artifacts())
                except Exception:  # another process made it a moment ago
                    found = client.get_experiment_by_name(name)
                    if found is None:
                        raise
            if found is not None:
                self._experiment = found.experiment_id
        assert self._experiment is not None
        return self._experiment

    def artifacts(self) -> str | None:
        """Where a new experiment keeps its files: beside a SQLite store, in `mlartifacts/` (MLflow's default for
        a database store is ./mlruns in whatever folder the command runs from; cron's is `/`). Elsewhere, the
        store's own default (inside a file store; the server's choice)."""
        uri = self.target.uri
        if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///:memory:"):
            return None
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()

    def run(self, name: str, command: str, **tags: str) -> Run:
        return Run(self, name, tags={"lstmcast.command": command, "lstmcast.version": __version__, **tags})


def _reason(exc: BaseException) -> str:
    """The cause in a few words: the OS's (`[Errno 111] Connection refused`) where there is one, else the first
    sentence of the message (mlflow's go on with advice for its own API), at most REASON_CHARS."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    found = re.findall(r"\[Errno -?\d+\] [^'\")\]]+(?:'[^']*')?", text)
    first = found[-1].strip() if found else re.split(r"(?<=[.!?]) ", text, maxsplit=1)[0]
    return first if len(first) <= REASON_CHARS else first[: REASON_CHARS - 1] + "…"


@contextlib.contextmanager
def _hushed() -> Iterator[None]:
    """While the store is called, its libraries neither log nor warn: what matters (a failure) lstmcast says once."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


# ---------------------------------------------------------------------------- one MLflow run


@dataclass
class Run:
    """One MLflow run, made on its first write (after its parent's). Every method is a no-op once the store failed."""

    tracking: Tracking
    name: str
    parent: Run | None = None
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: bool = True  # tune's trials log no files (their folders are deleted)
    run_id: str | None = None
    ended: bool = False
    children: dict[int, Run] = field(default_factory=dict)  # tune: open trial runs by trial number

    def begin(self) -> str | None:
        if self.run_id is None and not self.ended:
            parent = self.parent.begin() if self.parent is not None else None
            if self.parent is not None and parent is None:
                return None
            tags = {**self.tags, **({"mlflow.parentRunId": parent} if parent else {})}
            self.run_id = self.tracking.call(
                "starting a run",
                lambda c: c.create_run(self.tracking.experiment(c), run_name=self.name, tags=tags).info.run_id,
            )
        return self.run_id

    def log(self, *, params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None) -> None:
        """Params (as text) and metrics (at step 0) in batches MLflow accepts."""
        if self.begin() is None:
            return
        from mlflow.entities import Metric, Param

        now = _now_ms()
        items = [Param(_key(k), _param(v)) for k, v in (params or {}).items()]
        points = [Metric(_key(k), v, now, 0) for k, v in (metrics or {}).items()]
        self.log_points(points, items)

    def log_points(self, points: list[Any], params: list[Any] | None = None) -> None:
        """MLflow Metric points (each with its own step) and Params."""
        run_id, params = self.begin(), params or []
        if run_id is None:
            return
        for start in range(0, max(len(points), len(params)), BATCH):
            chunk, given = points[start : start + BATCH], params[start : start + BATCH]
            self.tracking.call("logging", lambda c, m=chunk, p=given: c.log_batch(run_id, metrics=m, params=p))

    def config(self, cfg: Config, **more: Any) -> None:
        """The resolved config as params, one per key (`train.lr`, `data.target`, …), and any `more`."""
        self.log(params={**flat(cfg.to_dict()), **more})

    def metrics(self, values: Mapping[str, Any]) -> None:
        """The numbers of a nested result (metrics.json, a report) as metrics named by their path (`naive.test_mae`)."""
        self.log(metrics=numbers(values))

    def tag(self, key: str, value: Any) -> None:
        if self.begin() is not None:
            self.tracking.call("tagging", lambda c: c.set_tag(self.run_id, key, str(value)[:PARAM_CHARS]))

    def files(self, *paths: Path | None) -> None:
        """Copy these files into the run's artifacts (those that exist)."""
        if not self.artifacts or self.begin() is None:
            return
        for path in paths:
            if path is not None and Path(path).is_file():
                self.tracking.call(f"copying {Path(path).name}", lambda c, p=path: c.log_artifact(self.run_id, str(p)))

    def member(self, k: int, of: int) -> Points:
        """The Trainer's observer for ensemble member k (0-based) of `of`: history.csv's columns, live."""
        return Points(self, "history." if of == 1 else f"history.member{k + 1}.")

    def finish_train(self, out_dir: Path, scores: Mapping[str, Any], checkpoint: Path) -> None:
        """After train wrote its files: metrics.json's numbers, the checkpoint's id and the files."""
        from lstmcast.data.sinks import model_id

        self.metrics(scores)
        if self.begin() is None:
            return
        self.tag(MODEL_ID, model_id(checkpoint))
        self.tag("lstmcast.out_dir", out_dir)
        names = ("model.pt", "metrics.json", "history.csv", "config.yaml")
        self.files(*(out_dir / name for name in names))

    def end(self, status: str = "FINISHED", *, quiet: bool = False) -> None:
        """End this run (and any trial still open under it) with an MLflow status."""
        for child in list(self.children.values()):
            child.end(status, quiet=True)
        self.children.clear()
        if self.run_id is not None and not self.ended:
            self.tracking.call("ending a run", lambda c: c.set_terminated(self.run_id, status), quiet=quiet)
        self.ended = True

    # ------------------------------------------------------------------ tune
    def child(self, name: str, command: str, artifacts: bool = True) -> Run:
        return Run(self.tracking, name, self, {**self.tags, "lstmcast.command": command}, artifacts)

    def trial(self, number: int) -> Run:
        """The nested run of tune's trial `number`: its training logs into it; `after_trial` ends it."""
        run = self.child(f"trial {number}", "tune trial", artifacts=False)
        run.tags["lstmcast.trial"] = str(number)
        self.children[number] = run
        return run

    def after_trial(self, study: Any, trial: Any) -> None:
        """Optuna's callback: the trial's values, its validation MASE (when it finished) and how it ended."""
        run = self.children.pop(trial.number, None)
        if run is None:  # stopped before training (too many LSTM steps, an invalid combination): still a trial
            run = self.trial(trial.number)
            self.children.pop(trial.number)
            run.log(params=trial.params)
        state = trial.state.name
        run.tag("lstmcast.trial_state", state.lower())
        if "pruned" in trial.user_attrs:
            run.tag("lstmcast.pruned", trial.user_attrs["pruned"])
        if state == "COMPLETE" and trial.value is not None:
            run.log(metrics={"validation_mase": float(trial.value)})
        run.end({"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED"))

    def finish_tune(self, summary: Mapping[str, Any], folder: Path) -> None:
        """The search space as params, the study's counts and best MASE as metrics, its files as artifacts."""
        space = {f"space.{key}": json.dumps(dim) for key, dim in summary.get("space", {}).items()}
        best = summary.get("best") or {}
        counts = {k: summary.get(k) for k in ("trials", "complete", "pruned", "trials_this_run")}
        self.log(params=space, metrics=numbers({**counts, "best_validation_mase": best.get("validation_mase")}))
        if best:
            self.tag("lstmcast.best_trial", best.get("trial"))
        plot = summary.get("outputs", {}).get("plot")
        self.files(folder / "best.yaml", folder / "trials.csv", folder / "report.json", Path(plot) if plot else None)


@dataclass
class Points:
    """What the Trainer tells one run at each validation (a learn.loop.Observer): the losses, at the optimiser step."""

    run: Run
    prefix: str

    def on_validation(self, point: Any, epochs: int) -> None:
        if self.run.begin() is None:
            return
        from mlflow.entities import Metric

        now = _now_ms()
        values = {"epoch": point.epoch, "train_loss": point.train_loss, "val_loss": point.val_loss}
        values["val_mae"] = point.val_mae
        self.run.log_points([Metric(self.prefix + k, v, now, point.step) for k, v in numbers(values).items()])


@contextlib.contextmanager
def ending(run: Run | None) -> Iterator[Run | None]:
    """End `run` with the block: FINISHED, KILLED by a signal, FAILED by an error (the error stays the run's)."""
    if run is None:
        yield None
        return
    try:
        yield run
    except BaseException as exc:
        run.end("KILLED" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "FAILED", quiet=True)
        raise
    run.end()


def open_run(found: Target | None, reporter: Reporter, name: str, command: str, **tags: str) -> Run | None:
    """A run for this command, or None when nothing is to be logged."""
    return None if found is None else Tracking(found, reporter).run(name, command, **tags)


@dataclass(frozen=True)
class Tracked:
    """What a command was asked to track, settled before any work: where (None: nowhere), the config (the one the
    command runs, or the checkpoint's), and for a config file the `--set`s that carry --track into it."""

    target: Target | None
    config: Config | None = None
    sets: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def run(self, reporter: Reporter, name: str, command: str, **params: Any) -> Iterator[Run | None]:
        """The command's run for the block (None when not tracking), ended as the block ends. With `params`, the
        config and those are logged at once: a store that is down is known before the work."""
        run = open_run(self.target, reporter, name, command)
        with ending(run):
            if run is not None and params and self.config is not None:
                run.config(self.config, **params)
            yield run

    @contextlib.contextmanager
    def nested(self, parent: Run | None, name: str, command: str) -> Iterator[Run | None]:
        """A run under `parent` for the block (tune's winner), or None."""
        with ending(parent.child(name, command) if parent is not None else None) as run:
            yield run

    def evaluation(self, reporter: Reporter, outcome: Any) -> Any:
        """evaluate's run, after the backtest: see `record_evaluation`. Returns `outcome`."""
        if self.target is not None and self.config is not None:
            name = f"evaluate {Path(outcome.report['checkpoint']).stem}"
            with self.run(reporter, name, "evaluate") as run:
                assert run is not None
                record_evaluation(run, outcome, self.config)
        return outcome

    def promotion(self, reporter: Reporter, folder: Path, record: dict[str, Any], wait: float | None) -> None:
        """promote's decision in the registry (`record_promotion`), when a store is named."""
        if self.target is not None:
            record_promotion(self.target, reporter, folder, record, wait)


def for_config(cfg: Config) -> Tracked:
    """train: the resolved config's track.* (--track and --track-required are in it by now)."""
    return Tracked(target(cfg.track), cfg)


def for_config_file(path: Path, sets: list[str] | None, uri: str | None, required: bool) -> Tracked:
    """tune: CONFIG with its --set overrides and --track/--track-required as two more (so best.yaml keeps them)."""
    from lstmcast.config import load_config

    sets = [*(sets or []), *track_sets(uri, required)]
    cfg = load_config(path, sets)
    return Tracked(target(cfg.track), cfg, sets)


def for_checkpoint(path: Path, uri: str | None, required: bool) -> Tracked:
    """evaluate, promote: --track, else the track.uri the checkpoint was trained with (its experiment and
    registered model too)."""
    from lstmcast.model import checkpoint

    cfg = checkpoint.load(path).config if Path(path).is_file() else None  # a missing one is the command's to say
    return Tracked(target(cfg.track if cfg is not None else TrackConfig(), uri, required), cfg)


# ---------------------------------------------------------------------------- evaluate and promote


def record_evaluation(run: Run, outcome: Any, cfg: Config) -> None:
    """evaluate's run: the checkpoint's config and what was backtested as params; the scores overall, the relative
    skill and the quantile scores as metrics, the error per horizon step as each metric's steps; the report."""
    from mlflow.entities import Metric

    from lstmcast.data.sinks import model_id

    report = outcome.report
    scalars = {k: v for k, v in report.items() if isinstance(v, (str, int, float, list)) and k != "per_series"}
    run.config(cfg, **{f"evaluate.{k}": v for k, v in scalars.items()})
    run.metrics({k: v for k, v in report.items() if k not in ("per_step", "per_series")})
    now = _now_ms()
    steps = [
        Metric(_key(f"per_step.{name}.{metric}"), float(v), now, h + 1)
        for name, by_metric in report.get("per_step", {}).items()
        for metric, values in by_metric.items()
        for h, v in enumerate(values)
        if _finite(v)
    ]
    run.log_points(steps)
    run.tag(MODEL_ID, model_id(report["checkpoint"]))
    written = outcome.written
    if "report" in written:
        run.files(written["report"], written.get("plot"))
        return
    with tempfile.TemporaryDirectory(prefix="lstmcast-track-") as tmp:
        path = Path(tmp) / "evaluation.json"
        path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        run.files(path, written.get("plot"))


def record_promotion(
    found: Target, reporter: Reporter, folder: Path, record: Mapping[str, Any], wait: float | None = None
) -> None:
    """promote's decision in the registry: the candidate (or the champion put back) as a model version tagged with
    the decision, and the `champion` alias on the version of what DIR/model.pt is now, read under DIR's lock (so
    after promotes that overlap, the alias follows the model in service, whichever finished last)."""
    from lstmcast import lock
    from lstmcast.data.sinks import model_id

    tracking = Tracking(found, reporter)
    name = found.model or Path(folder).resolve().name
    try:
        with lock.hold(folder, wait):
            now = model_id(folder / "model.pt")
            record_it = functools.partial(_record, tracking, name=name, folder=folder, record=record, now=now)
            tracking.call("recording the decision", record_it, quiet=True)
    except LockedError as exc:
        tracking.fail(f"waiting for the lock of {folder}", exc, quiet=True)
    if tracking.failure is not None and found.required:
        raise TrackingError(
            f"{tracking.failure} — the decision ({record['action']}) itself is made and in promotions.jsonl; "
            "fix the store or the server, or drop --track-required (track.required) to go on with a warning"
        )


def _record(tracking: Tracking, client: Any, *, name: str, folder: Path, record: Mapping[str, Any], now: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags={"lstmcast.serving": str(Path(folder).resolve())})
    decided = record.get("candidate") or {}
    if decided.get("id") == (record.get("champion") or {}).get("id"):  # no decision about it: it serves already
        decided = {}
    if record.get("action") == "rollback":
        decided = {"id": record["champion_after"], "path": str(folder / "history" / f"{record['champion_after']}.pt")}
    if decided.get("id"):
        version = _version(tracking, client, name, decided["id"], Path(decided["path"]))
        client.set_model_version_tag(name, version, "lstmcast.decision", record.get("action", ""))
        client.set_model_version_tag(name, version, "lstmcast.reason", str(record.get("reason", ""))[:PARAM_CHARS])
    current = folder / "model.pt"
    client.set_registered_model_alias(name, CHAMPION, _version(tracking, client, name, now, current))


def _version(tracking: Tracking, client: Any, name: str, checkpoint_id: str, path: Path) -> str:
    """The model version of checkpoint `checkpoint_id`: found by its tag, else registered from the train run that
    logged it (its model.pt artifact), else from the file itself."""
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(MODEL_ID) == checkpoint_id:
            return str(version.version)
    experiment = client.get_experiment_by_name(tracking.target.experiment)
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id], f"tags.`{MODEL_ID}` = '{checkpoint_id}' and tags.`lstmcast.command` = 'train'", max_results=1
    )  # fmt: skip
    source, run_id = str(Path(path).resolve()), None
    if runs:
        run_id = runs[0].info.run_id
        source = f"{runs[0].info.artifact_uri.rstrip('/')}/model.pt"
    made = client.create_model_version(name, source, run_id=run_id, tags={MODEL_ID: checkpoint_id})
    return str(made.version)


# ---------------------------------------------------------------------------- values


def flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as one level, keys joined by dots."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def numbers(tree: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a nested mapping (lists and text left out), by their dotted paths."""
    return {k: float(v) for k, v in flat(tree).items() if _finite(v)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _param(value: Any) -> str:
    text = "null" if value is None else json.dumps(value) if isinstance(value, (list, bool)) else str(value)
    return text[:PARAM_CHARS]


def _key(name: str) -> str:
    """A metric or param name MLflow accepts on every store: letters, digits and _ - . / : and space."""
    return re.sub(r"[^\w\-./: ]", "_", name)[:250]


def _now_ms() -> int:
    return int(time.time() * 1000)
