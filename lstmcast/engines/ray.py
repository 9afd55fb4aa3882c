"""Predict a Parquet data set on a Ray cluster: one actor per worker holds the model, and each maps the function
every forecast goes through (`forecast.partition.Predictor`) over partitions of whole series.

Parquet data set ──files (whole series each: the lake layout), or rows regrouped by series (--regroup)──▶
actor pool (the checkpoint loaded once per worker) ──forecast rows──▶ a Parquet data set written into a
temporary folder, finished by _SUCCESS and swapped in whole [──▶ the archive, by the driver, in one transaction]

Files are read by lstmcast's own readers on the workers, so a bad cell is named by file and row as in one
process; a series found in two partitions (its rows in two files) ends the run with one line and nothing
written. Ray is the optional extra `lstmcast[ray]`; a local Ray on this machine needs no cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lstmcast.atomic import OutputFolder, atomic_folder, check_targets
from lstmcast.data import db
from lstmcast.data.sources import Source, parquet_files
from lstmcast.errors import ConfigError, DataError, LstmcastError, shown
from lstmcast.extras import require
from lstmcast.flows.predict import PredictOutcome, archive_frame, archive_target
from lstmcast.forecast.partition import Choices, Predictor
from lstmcast.report import Reporter
from lstmcast.vocabulary import FORECASTERS

WRITE_CPUS = 0.1  # a writer mostly waits on the disk: it must not wait for a CPU the workers hold
QUIET = {"RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass(frozen=True)
class Cluster:
    """Where and how wide: a Ray cluster's address (None: a local Ray), worker actors, CPUs each."""

    address: str | None = None
    workers: int = 0  # 0: one per CPU of the cluster
    cpus: float = 1.0


@contextlib.contextmanager
def connected(cluster: Cluster) -> Iterator[Any]:
    """Ray, started locally or joined at `cluster.address` (a Ray already started in this process is used as is)."""
    require("ray", "ray", "--engine ray")
    import ray

    _quiet(ray)
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if cluster.address is None and cluster.workers:
        options["num_cpus"] = max(1, int(cluster.workers * cluster.cpus))
    if cluster.address is not None:
        _reachable(cluster.address)
    try:
        ray.init(address=cluster.address, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach a Ray cluster at {cluster.address}: {_first_line(exc)} — start it (ray start --head) "
            "or check --address (or engine.address)"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet(ray: Any) -> None:
    """Ray's own log lines and progress bars off: a cron job prints lstmcast's lines only."""
    import ray.data

    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):  # a worker's error comes back as lstmcast's one line
        logging.getLogger(name).setLevel(logging.CRITICAL)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.raise_original_map_exception = True  # a worker's DataError comes back as itself: one line, as locally


CONNECT_SECONDS = 5.0  # a cluster that does not answer this fast is reported, not waited for (Ray would wait minutes)


def _reachable(address: str) -> None:
    """A Ray address whose host does not accept a connection is one line now, not minutes of Ray's retries."""
    import socket

    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address}: {exc.strerror or exc} — start it (ray start --head) "
            "or check --address (or engine.address)"
        ) from None


class _FilesForecaster:
    """A worker: the checkpoint loaded once; each call forecasts the Parquet files it is given, file by file."""

    def __init__(self, path: str, choices: Choices, batch_rows: int) -> None:
        self.predictor = Predictor.load(path, choices)
        self.batch_rows = batch_rows

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        frames = [
            self.predictor.frame(made)
            for file in batch["file"]
            for _, made in self.predictor.batches(Source(str(file)), self.batch_rows)
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class _FrameForecaster:
    """A worker for regrouped rows: each call gets whole series (any number) and returns their forecasts."""

    def __init__(self, path: str, choices: Choices) -> None:
        self.predictor = Predictor.load(path, choices)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self.predictor(batch)


def predict(
    ckpt_path: Path,
    source: Source,
    out: Any,
    reporter: Reporter,
    *,
    cluster: Cluster,
    choices: Choices | None = None,
    archive_flag: str | None = None,
    no_archive: bool = False,
    regroup: bool = False,
    batch_rows: int = 2_000_000,
) -> PredictOutcome:
    """`lstmcast predict --engine ray`: the forecast of every series of a Parquet data set, as a data set."""
    if source.kind != "parquet":
        raise ConfigError(f"--engine ray reads a Parquet file or folder (a data set); {source} is not one")
    if not isinstance(out, OutputFolder):
        raise ConfigError(
            "--engine ray writes a Parquet data set: give --out a folder, ending with '/' (e.g. --out forecasts/)"
        )
    check_targets(out)
    with reporter.timed("load"):
        predictor = Predictor.load(ckpt_path, choices or Choices())  # the checkpoint checked before any work
        store = archive_target(predictor.ckpt, archive_flag, no_archive)
    files = parquet_files(source)
    with connected(cluster) as ray, reporter.timed("forecast"), atomic_folder(out.path) as folder:
        ds = _plan(ray, predictor, ckpt_path, files, cluster, regroup, batch_rows, predictor.choices)
        _run(lambda: ds.write_parquet(str(folder), ray_remote_args={"num_cpus": WRITE_CPUS}))
        written = _read_back(folder, predictor)
    return _outcome(written, out, predictor, store, reporter)


def _plan(
    ray: Any, predictor: Predictor, path: Path, files: list[Path], cluster: Cluster, regroup: bool, batch_rows: int,
    choices: Choices,
) -> Any:  # fmt: skip
    """The Ray Data pipeline: files to the workers, or the rows regrouped by series first."""
    workers = cluster.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cluster.cpus))
    options: dict[str, Any] = {"num_cpus": cluster.cpus, "batch_format": "pandas"}
    options["compute"] = ray.data.ActorPoolStrategy(size=workers)
    options["ray_remote_args_fn"] = lambda: {"max_restarts": 0}  # a worker that dies fails the run (rerun it)
    if not regroup:
        items = ray.data.from_items([{"file": str(f)} for f in files], override_num_blocks=len(files))
        args = (str(path), choices, batch_rows)
        with _no_deprecation_notes():
            return items.map_batches(_FilesForecaster, batch_size=1, fn_constructor_args=args, **options)
    d = predictor.ckpt.config.data
    columns = [c for c in (d.series_id, d.timestamp, *d.target, *d.features, *d.future_features) if c]
    rows = ray.data.read_parquet([str(f) for f in files], filesystem=_local_files()).select_columns(columns)
    # Shuffled to the end first: the shuffle's own tasks need the CPUs the workers would otherwise hold.
    grouped = rows.repartition(max(workers, len(files)), shuffle=True, keys=[d.series_id]).materialize()
    with _no_deprecation_notes():
        return grouped.map_batches(
            _FrameForecaster, batch_size=None, fn_constructor_args=(str(path), choices), **options
        )


def _local_files() -> Any:
    """pyarrow's file system for the paths (Ray would otherwise resolve them through fsspec)."""
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


@contextlib.contextmanager
def _no_deprecation_notes() -> Iterator[None]:
    """Ray 2.60 marks `ray_remote_args_fn` (the one way to set an actor's restarts) for removal in 2.64: not news
    for a cron job's log."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated and will be removed in Ray")
        yield


def _run(job: Any) -> Any:
    """Run a Ray job; an lstmcast error raised on a worker is that error here (one line), anything else one line."""
    try:
        return job()
    except Exception as exc:
        cause = _cause(exc)
        if isinstance(cause, LstmcastError):
            raise _own(cause) from None
        raise DataError(
            f"the Ray job failed: {_first_line(cause)} — see the Ray logs of the cluster; nothing was written"
        ) from None


def _own(error: LstmcastError) -> LstmcastError:
    """A worker's lstmcast error as it was raised: Ray appends its retry advice to the message on a new line."""
    line = str(error).split("\n", 1)[0]
    try:
        return type(error)(line)
    except TypeError:  # an error class with more arguments: as it came
        return error


def _cause(exc: BaseException) -> BaseException:
    """A worker's own error from the chain Ray wraps it in (its `cause`): the first lstmcast error, else the last."""
    seen = exc
    for _ in range(20):
        if isinstance(seen, LstmcastError) and not type(seen).__name__.startswith("RayTaskError"):
            return seen
        context = None if seen.__suppress_context__ else seen.__context__
        nxt = getattr(seen, "cause", None) or seen.__cause__ or context
        if nxt is None or nxt is seen:
            break
        seen = nxt
    return seen


def _read_back(folder: Path, predictor: Predictor) -> pd.DataFrame:
    """The forecast just written (before it is swapped in): every series must be whole and once."""
    import pyarrow.parquet as pq

    frame = pq.read_table(folder).to_pandas()
    d = predictor.ckpt.config.data
    key = d.series_id if d.series_id in frame.columns else None
    if key is not None:
        counts = frame.groupby(key, sort=False).size()
        split = counts[counts != predictor.spec.horizon]
        if len(split):
            raise DataError(
                f"series {shown(split.index[0])} has rows in more than one file of the data set, so it would be "
                "forecast from part of its history — write each series into one file (the usual layout), or pass "
                "--regroup to gather the rows of each series first; nothing was written"
            )
    return frame


def _outcome(
    frame: pd.DataFrame, out: OutputFolder, predictor: Predictor, store: Any, reporter: Reporter
) -> PredictOutcome:
    d = predictor.ckpt.config.data
    label = d.timestamp or "step"
    counts = frame["forecaster"].value_counts()
    served = {"forecasters": {name: int(counts.get(name, 0)) // predictor.spec.horizon for name in FORECASTERS}}
    series = int(frame[d.series_id].nunique()) if d.series_id in frame.columns else 1
    written: dict[str, Any] = {"forecast": out}
    if store is not None:
        with reporter.timed("archive"):
            rows = archive_frame(store, predictor, frame, out)
        reporter.info(f"archived {rows} forecast rows in {store}")
        written["archive"] = db.redacted(store.url)
    first, last = (str(frame[label].min()), str(frame[label].max())) if len(frame) else ("", "")
    return PredictOutcome(out, predictor.spec.horizon, first, last, series, written, served)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
