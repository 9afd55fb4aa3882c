"""The command line's shared options and how their values become domain objects (config, source, destination).

Choices come from `vocabulary`, where the domain names them once; nothing here imports torch,
pandas or numpy, so `--help` stays fast (benchmarks/perf.py figure 2).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from lstmcast import vocabulary
from lstmcast.errors import LstmcastError


def choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum whose members are `values`: what Typer turns into a checked choice with its list in --help."""
    return Enum(name, [(v, v) for v in values], type=str)  # type: ignore[return-value]


Fallback = choices("Fallback", vocabulary.FALLBACKS)
Select = choices("Select", vocabulary.SELECTIONS)
ShortHistory = choices("ShortHistory", vocabulary.SHORT_HISTORY)
Metric = choices("Metric", vocabulary.METRICS)
By = choices("By", vocabulary.SCORE_BY)
Engine = choices("Engine", vocabulary.ENGINES)


def value(choice: Enum | None) -> str | None:
    return None if choice is None else str(choice.value)


def check_wait(value: float | None) -> float | None:
    """--wait: a finite number of seconds ≥ 0 (click's FLOAT takes nan, inf and negatives)."""
    if value is not None:
        from lstmcast.lock import check_wait as check

        check(value)
    return value


def check_seed(value: int | None) -> int | None:
    """--seed: a whole number 0 … 2**32 − 1, what the samplers take (click's INT takes any)."""
    if value is not None and not 0 <= value < 2**32:
        raise LstmcastError(f"--seed {value} is out of range — give a whole number from 0 to {2**32 - 1}")
    return value


ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
CheckpointArg = Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set train.lr=0.0005 (repeatable)."),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        help="With a database URL as --data: a table name or a SELECT (overrides data.query).",
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print the details log files get (e.g. every series skipped).")
]
LogOpt = Annotated[Path | None, typer.Option("--log-file", help="Append the log lines (timestamped) to this file too.")]
ProfileOpt = Annotated[
    bool,
    typer.Option(
        "--profile", help="Print where the run's time went (load, windows, train, write); also LSTMCAST_PROFILE=1."
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON summary line on stdout at the end (status, outputs, metrics).")
]
WaitOpt = Annotated[
    float | None,
    typer.Option(
        callback=check_wait,
        help="Wait up to this many seconds (finite, ≥ 0) for another run to release the output folder.",
    ),
]
ShortHistoryOpt = Annotated[
    ShortHistory | None,
    typer.Option(
        help="A series the model trained on, given fewer rows than its lookback (or most series so): error "
        "refuses (a truncated extract?), fallback forecasts it by the fallback [default: the checkpoint's "
        "predict.short_history].",
        show_default=False,
    ),
]
FallbackOpt = Annotated[
    Fallback | None,
    typer.Option(
        help="Forecaster for series the model cannot serve (too short, unseen, non-finite); error refuses "
        "[default: the checkpoint's predict.fallback].",
        show_default=False,
    ),
]
SelectOpt = Annotated[
    Select | None,
    typer.Option(
        help="best: serve each series with the forecaster that won on its validation windows; model: the "
        "model wherever it can [default: the checkpoint's train.select].",
        show_default=False,
    ),
]
ArchiveOpt = Annotated[
    str | None,
    typer.Option(
        help="Also record the forecast in this archive (database URL, or a SQLite file path) for lstmcast score "
        "[default: LSTMCAST_ARCHIVE, else the config's archive.url].",
        show_default=False,
    ),
]
EngineOpt = Annotated[
    Engine | None,
    typer.Option(
        help="local: this process (a Parquet data set streams a batch of series at a time); ray: a Ray cluster "
        "(lstmcast[ray]; --out must be a folder DIR/) [default: the checkpoint's engine.kind].",
        show_default=False,
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        help="With --engine ray: the cluster to join (host:6379, ray://host:10001) [default: engine.address, else a "
        "local Ray, or RAY_ADDRESS].",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="With --engine ray: worker actors, each holding the model [default: engine.workers].",
        show_default=False,
    ),
]
CpusOpt = Annotated[
    float | None,
    typer.Option(
        "--cpus-per-worker",
        min=0.01,
        help="With --engine ray: CPUs each worker reserves [default: engine.cpus_per_worker].",
        show_default=False,
    ),
]
RegroupOpt = Annotated[
    bool,
    typer.Option(
        "--regroup",
        help="With --engine ray: gather each series' rows first (a shuffle), for a data set whose series span files.",
    ),
]
NoArchiveOpt = Annotated[
    bool, typer.Option("--no-archive", help="Do not record this forecast, whatever the defaults say.")
]
TrackOpt = Annotated[
    str | None,
    typer.Option(
        "--track",
        metavar="URI",
        help="Log to MLflow at this tracking URI: file:///…, sqlite:///…, http://… (needs lstmcast[mlflow]) "
        "[default: track.uri].",
        show_default=False,
    ),
]
TrackRequiredOpt = Annotated[
    bool,
    typer.Option(
        "--track-required",
        help="A tracking store that fails is an error (exit 2), not one warning line (also track.required).",
    ),
]


# ---------------------------------------------------------------------------- values → domain objects


def load(
    config: Path, overrides: list[str] | None, data: str | None, out: Path | None = None, query: str | None = None
) -> Any:
    """The config with --data, --query, --out and --set applied; an optional extra its data needs checked now."""
    from lstmcast.atomic import render_path
    from lstmcast.config import load_config

    _check_query(data, query)
    # Paths typed on the command line are relative to the working directory.
    values = {"data.path": data, "data.query": query, "output.dir": render_path(out) if out is not None else None}
    cfg = load_config(config, overrides or [], {k: v for k, v in values.items() if v is not None})
    if cfg.data.path is not None:  # an optional extra the data needs: missing now, not after training
        from lstmcast.data.sources import source_of

        source_of(cfg.data.path, cfg.data.query).require()
    return cfg


def _check_query(data: str | None, query: str | None) -> None:
    from lstmcast.locations import is_url, refuse_secrets

    refuse_secrets(data, "--data")  # first: a libpq string holding a password is refused as such, never echoed
    if query is not None and data is not None and not is_url(data):
        raise LstmcastError(f"--query reads from a database, but --data {data} is a file — drop --query or give a URL")


def source(data: str | None, query: str | None) -> Any:
    """--data (a CSV, a Parquet file or folder, or a database URL) and --query, its extras checked before any work.

    Without --query a database URL reads the table or SELECT the checkpoint was trained from (its data.query).
    """
    if data is None:
        return None
    from lstmcast.data.sources import source_of

    _check_query(data, query)
    found = source_of(data, query)
    found.require(need_query=False)
    return found


def destination(out: str | None, table: str | None, checkpoint: Path) -> Any:
    """--out as a path (CSV, or Parquet by its suffix) or, for a database URL, the --table to write into."""
    from lstmcast.extras import require
    from lstmcast.locations import is_url, refuse_secrets

    refuse_secrets(out, "--out")
    if out is None or not is_url(out):
        if table is not None:
            raise LstmcastError(
                "--table needs --out DATABASE_URL (e.g. --out sqlite:///forecasts.db --table forecasts)"
            )
        if out is None:
            return None
        from lstmcast.data.sinks import output_of

        found = output_of(out)
        if out.endswith(".parquet") or not isinstance(found, Path):
            require("pyarrow", "parquet", f"--out {out}")
        return found
    from lstmcast.data.sqlsink import Table

    found = Table(out, "forecasts" if table is None else table, Path(checkpoint))
    found.require()
    return found


def require_plot(plot: Path | None) -> None:
    """--plot needs matplotlib (lstmcast[plot]): missing is one line before any work."""
    if plot is not None:
        from lstmcast.forecast.plots import require_matplotlib

        require_matplotlib()


def tracked_checkpoint(checkpoint: Path, track: str | None, required: bool) -> Any:
    """--track/--track-required for a command on a checkpoint, else its own track.* (mlflow checked now)."""
    from lstmcast.flows.tracking import for_checkpoint

    return for_checkpoint(checkpoint, track, required)


def tracked_config(config: Path, overrides: list[str] | None, track: str | None, required: bool) -> Any:
    """--track/--track-required for a command on a config file, as two more --set overrides (mlflow checked now)."""
    from lstmcast.flows.tracking import for_config_file

    return for_config_file(config, overrides, track, required)
