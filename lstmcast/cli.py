"""The `lstmcast` command: parse arguments, call the pipeline, map errors to exit codes.

Heavy modules (torch, pandas) are imported inside the commands, so `--help` and `--version`
start about as fast as typer itself (benchmarks/perf.py figure 2).

Whatever goes wrong ends in one `error: …` line on stderr and a documented exit code: a bad
command line (click's usage text is kept for people, and `--json` still gets its JSON line), a
library warning (one `warning: …` line through the Reporter), a closed stderr (the run goes on)
or a stdout whose reader went away after the work was done (exit 0, quietly).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from lstmcast import __version__
from lstmcast.errors import EXIT_BUG, EXIT_SIGINT, EXIT_USER, Interrupted, LstmcastError
from lstmcast.learn import distributed

# click's exception classes, from the one name typer exports in every version (click may be vendored).
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
ClickException: type[Exception] = _CLICK_ERRORS["ClickException"]
WARNING_CHARS = 200


class Fallback(str, Enum):  # predict.fallback's values (config.PredictConfig)
    auto = "auto"
    seasonal_naive = "seasonal_naive"
    naive = "naive"
    error = "error"


class Select(str, Enum):  # train.select's values
    model = "model"
    best = "best"


# a library warning becomes one line of at most this many characters


class _Group(TyperGroup):
    """The app's group: runs click in non-standalone mode and maps every way out to lstmcast's contract."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        _state.update(reporter=None, stdout_gone=False)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except LstmcastError as exc:  # from an option's check (e.g. --wait nan), before any command ran
            _json_error(_command_in(argv), {"json_output": "--json" in argv}, _one_line(str(exc)), exc.exit_code)
            code = _fail(f"error: {exc}", exc.exit_code).exit_code
        except ClickException as exc:
            code = _usage_failure(exc, argv)
        except typer.Abort:
            code = _fail("error: interrupted", EXIT_SIGINT).exit_code
        except SystemExit:
            if type(sys.stdout).__name__ != "PacifyFlushWrapper":
                raise
            code = 0  # click met a stdout whose reader is gone (`--help | head -1`) and exits 1 for it
            _silence_stdout()
        code = 0 if code is None else code
        _flush_stdout()
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_Group,
    name="lstmcast",
    help="Stacked-LSTM time-series forecasting from one YAML file.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state: dict[str, Any] = {"debug": os.environ.get("LSTMCAST_DEBUG", "") not in ("", "0")}

F = TypeVar("F", bound=Callable[..., Any])


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise); `distributed` reads it without importing torch."""
    return distributed.from_env().rank


RANK_0_REPORTS_WITHIN = 10.0  # seconds a quiet rank waits before exiting, so rank 0's line is not cut off


def _fail(message: str, code: int, *, every_rank: bool = False, wait: bool = True) -> typer.Exit:
    """Print the one error line. Under torchrun, user errors come from inputs all ranks share,
    so only rank 0 reports them; a bug (`every_rank`) may hit one rank alone and names it."""
    rank = _rank()
    if rank == 0 or every_rank:
        _flush_stdout()
        prefix = f"rank {rank}: " if rank else ""
        _stderr(prefix + _one_line(message))  # one line, whatever a library said
    elif wait:  # (not after a stop signal: the launcher is already waiting for every rank to end)
        # The launcher stops every rank as soon as one exits with an error: a quiet rank that
        # exited first would take rank 0 down before it printed. Rank 0 meets the same error
        # and exits first; the launcher then ends this wait.
        time.sleep(RANK_0_REPORTS_WITHIN)
    return typer.Exit(code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _stderr(text: str) -> None:
    """Print on stderr if there is one (a scheduler may have closed it; then the exit code speaks)."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            print(text, file=sys.stderr, flush=True)


def _stdout(text: str) -> None:
    """Print on stdout; a reader that went away (`| head -1`) is no error: the work is done by now."""
    if not _state.get("stdout_gone"):
        with _writing_stdout():
            print(text, flush=True)


@contextlib.contextmanager
def _writing_stdout() -> Iterator[None]:
    """Stdout's reader gone: quiet from then on. Stdout unwritable (its disk full): an `OutputError`."""
    try:
        yield
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        _silence_stdout()
        from lstmcast.errors import OutputError

        raise OutputError(
            f"cannot write to stdout: {exc.strerror or exc} — the run's files, if any, were written; "
            "fix where stdout is redirected"
        ) from None


def _flush_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that nothing (not even the flush at exit) writes to the broken pipe again."""
    _state["stdout_gone"] = True
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, *_: Any, **__: Any) -> None:
    """A Python warning (torch, numpy, pandas…) as one `warning: …` line through the run's Reporter."""
    _library_warning(f"{category.__name__} in {Path(filename).name}:{lineno}: {message}")


def _logged_warnings() -> Any:
    """A stand-in for logging's last resort: a library's log record nobody handles becomes one warning line.

    Built on first use: importing logging would cost `--help` a quarter of its start-up.
    """
    import logging

    class LoggedWarnings(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)

        def emit(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):  # logging would print a traceback for an error raised here
                _library_warning(f"{record.name}: {record.getMessage()}")

    return LoggedWarnings()


def _library_warning(text: str) -> None:
    text = _one_line(text)
    if len(text) > WARNING_CHARS:
        text = text[: WARNING_CHARS - 1] + "…"
    reporter = _state.get("reporter")
    if reporter is not None:
        reporter.warning(text)
    else:
        _stderr(f"warning: {text}")


@contextlib.contextmanager
def _routed_warnings() -> Iterator[None]:
    """During a command, Python warnings and unhandled log records become lstmcast's own warning lines."""
    import logging

    last_resort = logging.lastResort
    logging.lastResort = _logged_warnings()
    try:
        with warnings.catch_warnings():  # restores the filters and showwarning afterwards
            warnings.showwarning = _show_warning
            yield
    finally:
        logging.lastResort = last_resort


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


def handle_errors(command: F) -> F:
    """User errors → one `error:` line and exit 2 (or their own code); bugs → exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            from lstmcast import cores

            with _routed_warnings(), cores.presence():  # counted among the jobs sharing this machine's cores
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokenPipeError:  # stdout's reader went away; only the final lines go there, after the work
            _silence_stdout()
            return None
        except LstmcastError as exc:
            if _state["debug"]:
                _print_traceback()
            _json_error(command.__name__, kwargs, _one_line(str(exc)), exc.exit_code)
            raise _fail(f"error: {exc}", exc.exit_code, wait=not isinstance(exc, Interrupted)) from None
        except KeyboardInterrupt:
            raise _fail("error: interrupted", EXIT_SIGINT) from None
        except Exception as exc:  # a bug in lstmcast, not the user's fault
            _json_error(command.__name__, kwargs, f"internal error: {type(exc).__name__}: {exc}", EXIT_BUG)
            if _state["debug"]:
                _print_traceback()
                raise _fail(f"error: internal error: {type(exc).__name__}: {exc}", EXIT_BUG, every_rank=True) from None
            raise _fail(
                f"error: internal error: {type(exc).__name__}: {exc} — rerun with --debug for the traceback and report it",
                EXIT_BUG,
                every_rank=True,
            ) from None

    return wrapper  # type: ignore[return-value]


def _json_error(command: str | None, kwargs: dict[str, Any], message: str, code: int) -> None:
    """With --json, a failed run still ends with one summary line on stdout."""
    if kwargs.get("json_output") and _rank() == 0:
        import json

        _stdout(json.dumps({"status": "error", "command": command, "exit_code": code, "error": message}))


def _command_in(argv: list[str]) -> str | None:
    """The command a command line asked for (its first word that is not an option), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _usage_failure(exc: Any, argv: list[str]) -> int:
    """A command line click could not parse: its usage lines for people, then one `error:` line."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `lstmcast`: the help, as click shows it
        with contextlib.suppress(OSError, ValueError):
            exc.show()
        return int(exc.exit_code)
    message = _one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if "--json" in argv:
        command = ctx.command.name if ctx is not None and ctx.parent is not None else _command_in(argv)
        _json_error(command, {"json_output": True}, message, EXIT_USER)
    if ctx is not None:
        _stderr(f"{ctx.get_usage()}\nTry '{ctx.command_path} {ctx.help_option_names[0]}' for help.")
    _stderr(f"error: {message}")
    return EXIT_USER


def _show_version(value: bool) -> None:
    if value:
        _stdout(f"lstmcast {__version__}")
        raise typer.Exit()


def _wait_seconds(value: float | None) -> float | None:
    """--wait: a finite number of seconds ≥ 0 (click's FLOAT takes nan, inf and negatives)."""
    if value is not None:
        from lstmcast.lock import check_wait

        check_wait(value)
    return value


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also LSTMCAST_DEBUG=1).")] = False,
) -> None:
    if debug:
        _state["debug"] = True


def _reporter(quiet: bool, log_file: Path | None = None, verbose: bool = False) -> Any:
    """The run's Reporter (library warnings go through it too); --log-file must be a regular file or new."""
    from lstmcast.report import Reporter

    if _rank() > 0:  # under torchrun rank 0 speaks for the job
        reporter = Reporter(open(os.devnull, "w"), quiet=True)  # noqa: SIM115 - lives as long as the run
    else:
        reporter = Reporter(quiet=quiet, verbose=verbose)
        if log_file is not None:
            reporter.attach_log(log_file)
    _state["reporter"] = reporter
    return reporter


ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set train.lr=0.0005 (repeatable)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.")]
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
NoArchiveOpt = Annotated[
    bool, typer.Option("--no-archive", help="Do not record this forecast, whatever the defaults say.")
]
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


QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        help="With a database URL as --data: a table name or a SELECT (overrides data.query).",
        show_default=False,
    ),
]


def _load(
    config: Path, overrides: list[str] | None, data: str | None, out: Path | None = None, query: str | None = None
) -> Any:
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
    from lstmcast.locations import is_url

    if query is not None and data is not None and not is_url(data):
        raise LstmcastError(f"--query reads from a database, but --data {data} is a file — drop --query or give a URL")


def _source(data: str | None, query: str | None) -> Any:
    """--data (a CSV, a Parquet file or folder, or a database URL) and --query, its extras checked before any work.

    Without --query a database URL reads the table or SELECT the checkpoint was trained from (its data.query).
    """
    if data is None:
        return None
    from lstmcast.data.sources import source_of

    _check_query(data, query)
    source = source_of(data, query)
    source.require(need_query=False)
    return source


def _destination(out: str | None, table: str | None, checkpoint: Path) -> Any:
    """--out as a path (CSV, or Parquet by its suffix) or, for a database URL, the --table to write into."""
    from lstmcast.extras import require
    from lstmcast.locations import is_url

    if out is None or not is_url(out):
        if table is not None:
            raise LstmcastError(
                "--table needs --out DATABASE_URL (e.g. --out sqlite:///forecasts.db --table forecasts)"
            )
        if out is not None and out.endswith(".parquet"):
            require("pyarrow", "parquet", "--out *.parquet")
        return Path(out) if out is not None else None
    from lstmcast.data.sqlsink import Table

    destination = Table(out, table or "forecasts", Path(checkpoint))
    destination.require()
    return destination


def _emit_json(summary: dict[str, Any]) -> None:
    import json

    _stdout(json.dumps(summary, default=str))


@app.command()
@handle_errors
def train(
    config: ConfigArg,
    data: Annotated[
        str | None,
        typer.Option(help="CSV, Parquet file or folder, or database URL to train on (overrides data.path)."),
    ] = None,
    query: QueryOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (overrides output.dir); may hold {run_date:%Y-%m-%d}.")
    ] = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run in the output folder.")
    ] = False,
    init_from: Annotated[
        Path | None, typer.Option("--init-from", help="Start from this checkpoint's weights (same architecture).")
    ] = None,
    refit_scaler: Annotated[
        bool,
        typer.Option("--refit-scaler", help="With --init-from: fit the scaler on the new data instead of keeping it."),
    ] = False,
    wait: Annotated[
        float | None,
        typer.Option(
            callback=_wait_seconds,
            help="Wait up to this many seconds (finite, ≥ 0) for another run to release the output folder.",
        ),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            min=1, help="Train with this many processes on this machine (DDP through torch's elastic launcher)."
        ),
    ] = 1,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Train a model from CONFIG; write model.pt, config.yaml, metrics.json, history.csv, train.log."""
    started = time.perf_counter()
    cfg = _load(config, set_, data, out, query)
    if nproc > 1 and not distributed.from_env().distributed:
        from lstmcast import cores
        from lstmcast.learn.launch import run_processes

        cores.leave()  # this process only waits; the workers count themselves

        raise typer.Exit(run_processes(nproc, _without_nproc(sys.argv[1:])))
    reporter = _reporter(quiet, log_file, verbose)
    try:
        with reporter.timed("import"):
            from lstmcast.flows.training import TrainOptions
            from lstmcast.flows.training import train as run

        options = TrainOptions(
            resume=resume,
            init_from=init_from,
            refit_scaler=refit_scaler,
            wait=wait,
            resume_command=_resume_command(config, cfg, data, out, set_ or [], nproc, query),
        )
        outcome = run(cfg, reporter, options)
    finally:
        _close(reporter, started, profile)
    if _rank() > 0:
        return
    if json_output:
        folder = outcome.out_dir
        outputs = {
            name: str(folder / name) for name in ("model.pt", "config.yaml", "metrics.json", "history.csv", "train.log")
        }
        _emit_json(_summary("train", started, outputs=outputs, metrics=outcome.metrics))
    else:
        _stdout(f"checkpoint written to {outcome.checkpoint}")


@app.command()
@handle_errors
def predict(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)],
    data: Annotated[
        str,
        typer.Option(
            help="CSV, Parquet file or folder, or database URL with at least the last window.lookback rows.",
            show_default=False,
        ),
    ],
    query: QueryOpt = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="Forecast file, .csv or .parquet [default: forecast.csv beside the checkpoint]; may hold "
            "{origin:%Y-%m-%d} (the first forecast time) and {run_date:%Y-%m-%d}. Or a database URL (see --table)."
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(help="With --out DATABASE_URL: the table to write into, created if missing.", show_default=False),
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option("--series", help="Forecast (and plot) only this series (repeatable) [default: all]."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the recent history and the forecast (PNG): the first series, or those of --series."
        ),
    ] = None,
    fallback: FallbackOpt = None,
    select: SelectOpt = None,
    archive: ArchiveOpt = None,
    no_archive: NoArchiveOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Forecast window.horizon steps past the last row of --data (every series); write them as CSV, Parquet or rows."""
    started = time.perf_counter()
    source, destination = _source(data, query), _destination(out, table, checkpoint)
    if plot is not None:
        from lstmcast.forecast.plots import require_matplotlib

        require_matplotlib()
    reporter = _reporter(quiet, log_file, verbose)
    try:
        with reporter.timed("import"):
            from lstmcast.flows.predict import predict as run

        outcome = run(
            checkpoint,
            source,
            destination,
            reporter,
            series,
            plot,
            fallback=fallback.value if fallback else None,
            select=select.value if select else None,
            archive_flag=archive,
            no_archive=no_archive,
        )
        reporter.record(_forecast_line(outcome))
    finally:
        _close(reporter, started, profile)
    if json_output:
        outputs = {k: str(v) for k, v in outcome.written.items()}
        _emit_json(
            _summary("predict", started, outputs=outputs, rows=outcome.rows, first=outcome.first, **outcome.served)
        )
        return
    _stdout(_forecast_line(outcome))
    _print_written(outcome.written, skip="forecast")


@app.command()
@handle_errors
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)],
    data: Annotated[
        str,
        typer.Option(help="CSV, Parquet or database URL holding the period to backtest and the history before it."),
    ],
    query: QueryOpt = None,
    stride: Annotated[int, typer.Option(min=1, help="Steps between forecast origins.")] = 1,
    start: Annotated[
        str | None, typer.Option(help="First forecast time to score [default: the checkpoint's test period].")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Last time a forecast may reach [default: the end of the checkpoint's data (data.end)]."),
    ] = None,
    season: Annotated[
        int | None,
        typer.Option(min=1, help="Seasonal period for MASE and seasonal naive [default: from the frequency]."),
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the full report as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw error by horizon step and one example origin (PNG).")] = None,
    select: Annotated[
        Select | None,
        typer.Option(
            help="Score the forecasts predict serves with this selection as 'selected' "
            "[default: the checkpoint's train.select].",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Backtest CHECKPOINT with rolling origins on --data; compare with naive baselines."""
    started = time.perf_counter()
    source = _source(data, query)
    reporter = _reporter(quiet, log_file, verbose)
    if plot is not None:
        from lstmcast.forecast.plots import require_matplotlib

        require_matplotlib()
    try:
        with reporter.timed("import"):
            from lstmcast.flows.evaluate import evaluate_checkpoint

        outcome = evaluate_checkpoint(
            checkpoint,
            source,
            reporter,
            start=start,
            end=end,
            stride=stride,
            season=season,
            report_path=report,
            plot=plot,
            select=select.value if select else None,
        )
    finally:
        _close(reporter, started, profile)
    if json_output:
        outputs = {k: str(v) for k, v in outcome.written.items()}
        _emit_json(_summary("evaluate", started, outputs=outputs, report=outcome.report))
        return
    with _writing_stdout():
        _print_report(outcome.report)
    _print_written(outcome.written)


def _print_written(written: dict[str, Any], skip: str = "") -> None:
    """Name every file a command wrote, once, on stdout."""
    for what, path in written.items():
        if what != skip:
            _stdout(f"{what} written to {path}")


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    console = _stdout_console()
    console.print(
        f"{report['origins']} forecast origins from {report['first_origin']} to {report['last_origin']} "
        f"(stride {report['stride']}, horizon {report['horizon']}, seasonal period {report['season']})",
        markup=False,
        highlight=False,
    )
    from lstmcast.forecast.metrics import METRICS

    table = Table()
    table.add_column("forecaster")
    for metric in METRICS.values():
        table.add_column(metric.label, justify="right")
    for name, scores in report["overall"].items():
        table.add_row(name.replace("_", " "), *[_fmt(scores[k]) for k in METRICS])
    console.print(table)
    console.print(f"relative skill (model MASE / seasonal-naive MASE): {_fmt(report['relative_skill'])}")
    if "selection" in report:
        mix = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in report["selection"]["mix"].items())
        console.print(f"selected = what predict serves (train.select: {report['selection']['mode']}): {mix} series")
    if "quantiles" in report:
        q = report["quantiles"]
        console.print(f"mean pinball loss: {_fmt(q['pinball'])}")
        for interval, share in q["coverage"].items():
            console.print(f"coverage of the {interval} interval: {share:.3f}")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _stdout_console() -> Any:
    """A rich Console on stdout that goes quiet when its reader goes away (rich itself would exit 1)."""
    from rich.console import Console

    class QuietOnBrokenPipe(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            _silence_stdout()

    return QuietOnBrokenPipe()


@app.command()
@handle_errors
def tune(
    config: ConfigArg,
    budget: Annotated[
        str, typer.Option(help="Wall-clock time for the search: 30m, 2h, or seconds.", show_default=False)
    ],
    trials: Annotated[
        int | None, typer.Option(min=1, help="Stop once the study has this many finished trials (all runs together).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the study, best.yaml, trials.csv [default: tune/ beside CONFIG].")
    ] = None,
    space: Annotated[
        Path | None, typer.Option(help="YAML of section.key: [choices] or {low, high[, log]} to search instead.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Study database: a URL (postgresql://… to share across machines) or SQLite path [default: DIR/study.db]."
        ),
    ] = None,
    trial_limit: Annotated[
        str | None,
        typer.Option(help="Stop (prune) one trial after this long [default: a quarter of --budget, at least 1m]."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampler seed [default: train.seed].")] = None,
    set_: SetOpt = None,
    train_best: Annotated[bool, typer.Option("--train", help="Then train best.yaml into DIR/model.")] = False,
    ensemble: Annotated[
        int, typer.Option(min=1, help="Then train best.yaml with this many seeds (train.ensemble) into DIR/model.")
    ] = 1,
    plot: Annotated[
        Path | None, typer.Option(help="Draw each trial's validation MASE and the best so far (PNG).")
    ] = None,
    quiet: QuietOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Search CONFIG's settings on validation rows within --budget; write DIR/best.yaml (trainable as is)."""
    started = time.perf_counter()
    from lstmcast.extras import require

    require("optuna", "tune", "lstmcast tune")
    from lstmcast.flows.tune import parse_budget, storage_url

    seconds = parse_budget(budget)
    limit = None if trial_limit is None else parse_budget(trial_limit, "--trial-limit")
    folder = out if out is not None else config.resolve().parent / "tune"
    storage_url(folder, storage)  # a password in clear is refused before any work
    if plot is not None:
        from lstmcast.forecast.plots import require_matplotlib

        require_matplotlib()
    reporter = _reporter(quiet, log_file)
    try:
        from lstmcast.flows.tune import run, train_winner

        summary = run(
            config, folder, seconds, reporter, trials=trials, space_path=space, storage=storage, seed=seed,
            overrides=set_ or [], trial_limit=limit,
        )  # fmt: skip
        if train_best or ensemble > 1:
            summary["trained"] = train_winner(folder, reporter, ensemble)
        if plot is not None:
            from lstmcast.forecast.plots import plot_tuning

            plot_tuning(plot, folder / "trials.csv")
            summary["outputs"]["plot"] = str(plot)
    finally:
        _close(reporter, started, False)
    if json_output:
        _emit_json(_summary("tune", started, **summary))
    else:
        _print_tune(summary)


def _print_tune(summary: dict[str, Any]) -> None:
    best = summary.get("best")
    _stdout(
        f"{summary['trials']} trials ({summary['complete']} complete, {summary['pruned']} pruned); "
        + (
            f"best: trial {best['trial']}, validation MASE {best['validation_mase']:.4g}"
            if best
            else "no trial finished yet"
        )
    )
    if summary.get("importance"):
        _stdout("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["importance"].items()))
    _print_written({k: v for k, v in summary["outputs"].items()})
    if "trained" in summary:
        _stdout(f"checkpoint written to {summary['trained']['checkpoint']}")


@app.command()
@handle_errors
def init(
    data: Annotated[
        str, typer.Argument(help="CSV, Parquet file or folder, or database URL (with --query).", show_default=False)
    ],
    target: Annotated[list[str], typer.Option(help="Column to forecast (repeatable).", show_default=False)],
    horizon: Annotated[int, typer.Option(min=1, help="Steps to forecast.", show_default=False)],
    series_id: Annotated[str | None, typer.Option(help="Column naming the series (long format).")] = None,
    timestamp: Annotated[str | None, typer.Option(help="Column of times.")] = "timestamp",
    query: QueryOpt = None,
    out: Annotated[Path, typer.Option(help="Config file to write.")] = Path("lstmcast.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write a starting config for DATA: frequency, season and series found, window and epochs to match."""
    started = time.perf_counter()
    from lstmcast.flows.starter import check_out, write
    from lstmcast.locations import is_url

    check_out(out, force)
    source = _source(data, query)
    where = data if is_url(data) else str(Path(data).resolve())
    cfg, facts = write(where, target, horizon, series_id, timestamp, source.query if source else None, out)
    if json_output:
        _emit_json(_summary("init", started, outputs={"config": str(out)}, data=facts, config=cfg.to_dict()))
        return
    _stdout(
        f"{facts['series']} series, frequency {facts['freq'] or 'none'}, seasonal period {facts['season']}: "
        f"lookback {cfg.window.lookback}, patch {cfg.model.patch}, {cfg.train.epochs} epochs"
    )
    _stdout(f"config written to {out}")


class Metric(str, Enum):  # promote --metric
    mase = "mase"
    mae = "mae"
    rmse = "rmse"
    smape = "smape"


@app.command()
@handle_errors
def promote(
    candidate: Annotated[
        Path | None, typer.Argument(help="The retrained model.pt to consider.", show_default=False)
    ] = None,
    to: Annotated[
        Path, typer.Option("--to", help="The serving folder: DIR/model.pt is the champion.", show_default=False)
    ] = ...,  # type: ignore[assignment]
    data: Annotated[
        str | None,
        typer.Option(help="Data to backtest both on [default: the candidate's data.path].", show_default=False),
    ] = None,
    query: QueryOpt = None,
    metric: Annotated[Metric, typer.Option(help="What 'better' means (mean over series, as served).")] = Metric.mase,
    margin: Annotated[
        float, typer.Option(help="How much better the candidate must be, as a share (0.02 = 2% lower error).")
    ] = 0.0,
    keep: Annotated[int, typer.Option(min=1, help="Former champions kept in DIR/history/.")] = 5,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Put back the champion the current one replaced.")
    ] = False,
    wait: Annotated[
        float | None,
        typer.Option(callback=_wait_seconds, help="Wait up to this many seconds for DIR's lock."),
    ] = None,
    quiet: QuietOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Replace DIR/model.pt with CANDIDATE only if it backtests better; record every decision; or --rollback."""
    started = time.perf_counter()
    if rollback == (candidate is not None):
        raise LstmcastError("give either CANDIDATE or --rollback (e.g. lstmcast promote staging/model.pt --to serving)")
    source = _source(data, query)
    reporter = _reporter(quiet, log_file)
    try:
        from lstmcast.flows import promote as guard

        if rollback:
            record = guard.rollback(to, wait=wait)
        else:
            assert candidate is not None
            record = guard.promote(
                candidate, to, source, reporter, metric=metric.value, margin=margin, keep=keep, wait=wait
            )
        reporter.record(f"{record['action']}: {record['reason']}")
    finally:
        _close(reporter, started, False)
    if json_output:
        _emit_json(_summary("promote", started, **record))
    else:
        _stdout(f"{record['action']}: {record['reason']}; {to / 'model.pt'} is {record['champion_after']}")


class By(str, Enum):  # score --by
    series = "series"
    step = "step"
    origin = "origin"
    week = "week"


@app.command()
@handle_errors
def score(
    actuals: Annotated[
        str,
        typer.Option(
            help="What happened: CSV, Parquet file or folder, or database URL (with --query).", show_default=False
        ),
    ],
    archive: Annotated[
        str | None,
        typer.Option(help="The archive predict --archive wrote [default: LSTMCAST_ARCHIVE].", show_default=False),
    ] = None,
    query: QueryOpt = None,
    since: Annotated[
        str | None,
        typer.Option(help="First target time scored: a time, or a span back from the latest actual (7d, 48h, 2w)."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Last target time scored (a time or a span, as --since).")] = None,
    by: Annotated[
        list[By] | None, typer.Option("--by", help="Break the errors down by this (repeatable) [default: week].")
    ] = None,
    fail_if: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-if",
            help="Exit 3 with one line when this holds over the window (repeatable): mase>1.2, coverage<0.7, "
            "missing>0.1, relative>1, worse-than=seasonal_naive.",
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw MASE over time next to the baselines (PNG).")] = None,
    quiet: QuietOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Realised accuracy of archived forecasts against the actuals, next to seasonal naive and naive."""
    started = time.perf_counter()
    from lstmcast.errors import EXIT_ALERT
    from lstmcast.flows.score import parse_rule, parse_time

    rules = [parse_rule(text) for text in fail_if or []]
    window = parse_time(since, "--since"), parse_time(until, "--until")
    store, source = _archive_store(archive), _source(actuals, query)
    if plot is not None:
        from lstmcast.forecast.plots import require_matplotlib

        require_matplotlib()
    reporter = _reporter(quiet, log_file)
    try:
        from lstmcast.flows.score import run

        report = run(store, source, *window, [b.value for b in by or [By.week]])
        alerts = [line for rule in rules if (line := _alert(rule, report)) is not None]
        report["alerts"] = alerts
        if plot is not None:
            from lstmcast.forecast.plots import plot_score

            plot_score(plot, report)
        for line in alerts:
            reporter.record(f"alert: {line}")
    finally:
        _close(reporter, started, False)
    if json_output:
        _emit_json({**_summary("score", started, **report), "status": "alert" if alerts else "ok"})
    else:
        _print_score(report)
        if plot is not None:
            _stdout(f"plot written to {plot}")
    if alerts:
        _stderr(f"alert: {alerts[0]}" + (f" (and {len(alerts) - 1} more rule(s))" if len(alerts) > 1 else ""))
        raise typer.Exit(EXIT_ALERT)


def _alert(rule: Any, report: dict[str, Any]) -> str | None:
    if not report["scored"]:
        return "no archived forecast in the window has an actual yet — the --fail-if rules cannot be checked"
    return rule.holds(report)


def _archive_store(given: str | None) -> Any:
    from lstmcast.data import archive

    store = archive.resolve(given)
    if store is None:
        raise LstmcastError("score needs --archive URL (or LSTMCAST_ARCHIVE): the archive predict --archive wrote")
    return store


def _print_score(report: dict[str, Any]) -> None:
    from rich.table import Table

    from lstmcast.flows.score import MEASURES, names

    console = _stdout_console()
    say = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
    if not report["scored"]:
        say(f"nothing to score yet: none of the {report['forecasts']} archived forecast rows has an actual")
    else:
        say(
            f"{report['scored']} forecasts scored ({report['series']} series, {report['origins']} origins, target "
            f"times {report['first_target']} … {report['last_target']}); seasonal period {report['season']}"
        )
        for key, rows in [(None, [report["overall"]]), *report["by"].items()]:
            table = Table(title=None if key is None else f"by {key}", title_justify="left")
            if key is not None:
                table.add_column(key)
            table.add_column("n", justify="right")
            table.add_column("forecaster", no_wrap=True)
            for m in MEASURES:
                table.add_column(m if m != "mase" else "MASE", justify="right")
            for row in rows:
                for i, name in enumerate(("served", "seasonal_naive", "naive")):
                    first = [str(row[key]) if i == 0 else ""] if key is not None else []
                    n = str(row["n"]) if i == 0 else ""
                    table.add_row(*first, n, name.replace("_", " "), *[_fmt(row[name][m]) for m in MEASURES])
            console.print(table)
        say(f"relative skill (MASE / seasonal-naive MASE): {_fmt(report['relative_skill'])}")
    if report.get("quantiles"):
        q = report["quantiles"]
        cover = ", ".join(f"{k}: {v:.3f}" for k, v in q["coverage"].items())
        say(f"quantiles: mean pinball {_fmt(q['pinball'])}; coverage {cover}")
    if report["missing"]:
        say(f"{100 * report['missing']:.1f}% of the forecasts whose time has passed have no actual")
    for line in _attention_lines(report["attention"], names):
        say(f"attention: {line}")


def _attention_lines(att: dict[str, Any], names: Callable[[list[Any]], str]) -> list[str]:
    lines = []
    if att["no_actuals"]:
        lines.append(f"{len(att['no_actuals'])} series have no actuals at all: {names(att['no_actuals'])}")
    if att["not_yet_due"]:
        lines.append(
            f"{len(att['not_yet_due'])} series have no actual for their forecasts yet: {names(att['not_yet_due'])}"
        )
    if att["worse_recently"]:
        w = att["worse_recently"][0]
        lines.append(
            f"{len(att['worse_recently'])} series much worse recently ({shown_series(w)}: MASE {w['recent_mase']:.3g} "
            f"over its last {w['recent_origins']} origins vs {w['earlier_mase']:.3g} before): {names(att['worse_recently'])}"
        )
    if att["level_shift"]:
        w = att["level_shift"][0]
        lines.append(
            f"{len(att['level_shift'])} series drifted from their training level (up to {w['shift_in_std']:+.1f} "
            f"training std): {names(att['level_shift'])}"
        )
    if att["gaps"]:
        lines.append(f"{len(att['gaps'])} series miss over 20% of their actuals in the window: {names(att['gaps'])}")
    return lines


def shown_series(entry: dict[str, Any]) -> str:
    from lstmcast.errors import shown

    return f"series {shown(entry['series'], 40)}" if entry["series"] else "the series"


@app.command()
@handle_errors
def inspect(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)],
    data: Annotated[
        str | None, typer.Option(help="Also measure the gates on this data's windows (CSV, Parquet or URL).")
    ] = None,
    query: QueryOpt = None,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show a checkpoint's card and, with --data, how its forget/input/output gates behave."""
    started = time.perf_counter()
    source = _source(data, query)
    reporter = _reporter(quiet or json_output, log_file)
    try:
        with reporter.timed("import"):
            from lstmcast.flows.inspect import inspect_checkpoint

        report = inspect_checkpoint(checkpoint, source, reporter)
    finally:
        _close(reporter, started, profile)
    if json_output:
        _emit_json(_summary("inspect", started, **report))
        return
    with _writing_stdout():
        _print_card(report, source)


def _print_card(report: dict[str, Any], data: Any) -> None:
    from rich.table import Table

    console = _stdout_console()
    card = Table(title="checkpoint", show_header=False)
    card.add_column(style="bold")
    card.add_column()
    for key, value in report["card"].items():
        card.add_row(key, str(value))
    console.print(card)
    if "gates" in report:
        gates = Table(
            title=f"gates on {data}",
            caption="memory: rows back until the running product of forget gates falls below 0.5 (median over windows)",
        )
        for name in ("layer", "forget", "input", "output", "saturated", "memory, median unit", "memory, longest unit"):
            gates.add_column(name, justify="right")
        for k, layer in enumerate(report["gates"]):
            gates.add_row(
                str(k),
                f"{layer['mean_forget']:.3f}",
                f"{layer['mean_input']:.3f}",
                f"{layer['mean_output']:.3f}",
                f"{layer['saturated_fraction']:.1%}",
                f"{layer['memory_steps']:g} rows",
                f"{layer['memory_longest_steps']:g} rows",
            )
        console.print(gates)


def _close(reporter: Any, started: float, profile: bool) -> None:
    if profile or os.environ.get("LSTMCAST_PROFILE", "") not in ("", "0"):
        reporter.profile(time.perf_counter() - started)
    reporter.close()


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line each worker runs: this one without --nproc."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _forecast_line(outcome: Any) -> str:
    many = f" for {outcome.series} series" if outcome.series > 1 else ""
    counts = outcome.served.get("forecasters", {})
    others = [f"{n} by {name.replace('_', ' ')}" for name, n in counts.items() if name != "model" and n]
    by = f" ({', '.join(others)})" if others else ""
    return f"forecast of {outcome.rows} steps{many}{by} ({outcome.first} … {outcome.last}) written to {outcome.path}"


def _summary(command: str, started: float, **fields: Any) -> dict[str, Any]:
    return {"status": "ok", "command": command, **fields, "seconds": round(time.perf_counter() - started, 3)}


@app.command()
@handle_errors
def validate(
    config: ConfigArg,
    data: Annotated[
        str | None, typer.Option(help="CSV, Parquet file or folder, or database URL to check (overrides data.path).")
    ] = None,
    query: QueryOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Check CONFIG and its data as train would, without training."""
    started = time.perf_counter()
    cfg = _load(config, set_, data, query=query)
    reporter = _reporter(quiet or json_output, log_file)
    try:
        with reporter.timed("import"):
            from lstmcast.flows.training import validate as run

        summary = run(cfg, reporter)
    finally:
        _close(reporter, started, profile)
    if json_output:
        _emit_json(_summary("validate", started, checks=summary))
        return
    width = max(map(len, summary))
    for key, value in summary.items():
        _stdout(f"{key:<{width}}  {value}")
    _stdout("ok")


def _resume_command(
    config: Path, cfg: Any, data: str | None, out: Path | None, sets: list[str], nproc: int, query: str | None = None
) -> str:
    """The command that continues this run: the config, --data, --query, --out (as rendered), --set, and --resume."""
    import shlex

    argv = ["lstmcast", "train", str(config)]
    if data is not None:
        argv += ["--data", str(cfg.data.path)]
    if query is not None:
        argv += ["--query", query]
    if out is not None:  # the folder this run used, also when --out held a {run_date} placeholder
        argv += ["--out", str(cfg.output.dir)]
    for item in sets:
        argv += ["--set", item]
    processes = max(nproc, distributed.from_env().size)
    if processes > 1:
        argv += ["--nproc", str(processes)]
    return shlex.join([*argv, "--resume"])


def main() -> None:
    _keep_standard_streams()
    try:
        app()
    except KeyboardInterrupt:
        code: Any = EXIT_SIGINT
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if distributed.from_env().distributed:
        leave_now(code)
    sys.exit(code)


def _keep_standard_streams() -> None:
    """Give closed descriptors 0–2 to /dev/null (as `2>&-` leaves them, or some schedulers).

    Otherwise the next file lstmcast opens would become "stderr", and a library's C-level warning
    would be written into a checkpoint or a lock file; and Python, which sets sys.stderr to None
    then, gets a stream that drops what is written to it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def leave_now(code: Any) -> None:
    """Exit a torchrun worker without interpreter teardown.

    Every file is written and closed by now, but gloo's background threads can make the
    teardown abort (SIGABRT, "terminate called without an active exception"; how often is in
    benchmarks/RESULTS.md, "Measurements behind design choices"), which would turn a finished
    run into a failed job. `os._exit` skips that teardown.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
