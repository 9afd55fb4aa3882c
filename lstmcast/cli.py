"""The `lstmcast` command: parse arguments, call the pipeline, map errors to exit codes.

Heavy modules (torch, pandas) are imported inside the commands, so `--help` and `--version`
start about as fast as typer itself (benchmarks/perf.py figure 2).
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lstmcast import __version__, distributed
from lstmcast.errors import EXIT_BUG, EXIT_SIGINT, Interrupted, LstmcastError

app = typer.Typer(
    name="lstmcast",
    help="Stacked-LSTM time-series forecasting from one YAML file.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": os.environ.get("LSTMCAST_DEBUG", "") not in ("", "0")}

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
        sys.stdout.flush()
        prefix = f"rank {rank}: " if rank else ""
        print(prefix + " ".join(message.split()), file=sys.stderr, flush=True)  # one line, whatever a library said
    elif wait:  # (not after a stop signal: the launcher is already waiting for every rank to end)
        # The launcher stops every rank as soon as one exits with an error: a quiet rank that
        # exited first would take rank 0 down before it printed. Rank 0 meets the same error
        # and exits first; the launcher then ends this wait.
        time.sleep(RANK_0_REPORTS_WITHIN)
    return typer.Exit(code)


def handle_errors(command: F) -> F:
    """User errors → one `error:` line and exit 2 (or their own code); bugs → exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except LstmcastError as exc:
            if _state["debug"]:
                traceback.print_exc()
            _json_error(command.__name__, kwargs, " ".join(str(exc).split()), exc.exit_code)
            raise _fail(f"error: {exc}", exc.exit_code, wait=not isinstance(exc, Interrupted)) from None
        except KeyboardInterrupt:
            raise _fail("error: interrupted", EXIT_SIGINT) from None
        except Exception as exc:  # a bug in lstmcast, not the user's fault
            _json_error(command.__name__, kwargs, f"internal error: {type(exc).__name__}: {exc}", EXIT_BUG)
            if _state["debug"]:
                traceback.print_exc()
                raise _fail(f"error: internal error: {type(exc).__name__}: {exc}", EXIT_BUG, every_rank=True) from None
            raise _fail(
                f"error: internal error: {type(exc).__name__}: {exc} — rerun with --debug for the traceback and report it",
                EXIT_BUG,
                every_rank=True,
            ) from None

    return wrapper  # type: ignore[return-value]


def _json_error(command: str, kwargs: dict[str, Any], message: str, code: int) -> None:
    """With --json, a failed run still ends with one summary line on stdout."""
    if kwargs.get("json_output") and _rank() == 0:
        import json

        print(json.dumps({"status": "error", "command": command, "exit_code": code, "error": message}), flush=True)


def _show_version(value: bool) -> None:
    if value:
        print(f"lstmcast {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also LSTMCAST_DEBUG=1).")] = False,
) -> None:
    if debug:
        _state["debug"] = True


def _reporter(quiet: bool, log_file: Path | None = None) -> Any:
    from lstmcast.atomic import ensure_dir
    from lstmcast.report import Reporter

    if _rank() > 0:  # under torchrun rank 0 speaks for the job
        return Reporter(open(os.devnull, "w"), quiet=True)
    reporter = Reporter(quiet=quiet)
    if log_file is not None:
        ensure_dir(log_file.parent)
        reporter.attach_log(log_file)
    return reporter


ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set train.lr=0.0005 (repeatable)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.")]
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


def _load(config: Path, overrides: list[str] | None, data: Path | None, out: Path | None = None) -> Any:
    from lstmcast.atomic import render_path
    from lstmcast.config import load_config

    # Paths typed on the command line are relative to the working directory.
    values = {"data.path": data, "output.dir": render_path(out) if out is not None else None}
    return load_config(config, overrides or [], {k: v for k, v in values.items() if v is not None})


def _emit_json(summary: dict[str, Any]) -> None:
    import json

    print(json.dumps(summary, default=str), flush=True)


@app.command()
@handle_errors
def train(
    config: ConfigArg,
    data: Annotated[Path | None, typer.Option(help="CSV to train on (overrides data.path).")] = None,
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
        float | None, typer.Option(help="Wait up to this many seconds for another run to release the output folder.")
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            min=1, help="Train with this many processes on this machine (DDP through torch's elastic launcher)."
        ),
    ] = 1,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Train a model from CONFIG; write model.pt, config.yaml, metrics.json, history.csv, train.log."""
    started = time.perf_counter()
    cfg = _load(config, set_, data, out)
    if nproc > 1 and not distributed.from_env().distributed:
        from lstmcast.launch import run_processes

        raise typer.Exit(run_processes(nproc, _without_nproc(sys.argv[1:])))
    reporter = _reporter(quiet, log_file)
    try:
        with reporter.timed("import"):
            from lstmcast.pipeline import TrainOptions
            from lstmcast.pipeline import train as run

        options = TrainOptions(
            resume=resume,
            init_from=init_from,
            refit_scaler=refit_scaler,
            wait=wait,
            resume_command=_resume_command(config, cfg, data, out, set_ or [], nproc),
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
        print(f"checkpoint written to {outcome.checkpoint}")


@app.command()
@handle_errors
def predict(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)],
    data: Annotated[Path, typer.Option(help="CSV with at least the last window.lookback rows.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Forecast CSV [default: forecast.csv beside the checkpoint]; may hold {origin:%Y-%m-%d} "
            "(the first forecast time) and {run_date:%Y-%m-%d}."
        ),
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
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Forecast window.horizon steps past the last row of --data (every series); write them as CSV."""
    started = time.perf_counter()
    if plot is not None:
        from lstmcast.plots import require_matplotlib

        require_matplotlib()
    reporter = _reporter(quiet, log_file)
    try:
        with reporter.timed("import"):
            from lstmcast.inference import predict as run

        outcome = run(checkpoint, data, out, reporter, series, plot)
        reporter.record(_forecast_line(outcome))
    finally:
        _close(reporter, started, profile)
    if json_output:
        outputs = {k: str(v) for k, v in outcome.written.items()}
        _emit_json(_summary("predict", started, outputs=outputs, rows=outcome.rows, first=outcome.first))
        return
    print(_forecast_line(outcome))
    _print_written(outcome.written, skip="forecast")


@app.command()
@handle_errors
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)],
    data: Annotated[Path, typer.Option(help="CSV holding the period to backtest and the history before it.")],
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
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Backtest CHECKPOINT with rolling origins on --data; compare with naive baselines."""
    started = time.perf_counter()
    reporter = _reporter(quiet, log_file)
    if plot is not None:
        from lstmcast.plots import require_matplotlib

        require_matplotlib()
    try:
        with reporter.timed("import"):
            from lstmcast.inference import evaluate_checkpoint

        outcome = evaluate_checkpoint(
            checkpoint,
            data,
            reporter,
            start=start,
            end=end,
            stride=stride,
            season=season,
            report_path=report,
            plot=plot,
        )
    finally:
        _close(reporter, started, profile)
    if json_output:
        outputs = {k: str(v) for k, v in outcome.written.items()}
        _emit_json(_summary("evaluate", started, outputs=outputs, report=outcome.report))
        return
    _print_report(outcome.report)
    _print_written(outcome.written)


def _print_written(written: dict[str, Any], skip: str = "") -> None:
    """Name every file a command wrote, once, on stdout."""
    for what, path in written.items():
        if what != skip:
            print(f"{what} written to {path}")


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{report['origins']} forecast origins from {report['first_origin']} to {report['last_origin']} "
        f"(stride {report['stride']}, horizon {report['horizon']}, seasonal period {report['season']})",
        markup=False,
        highlight=False,
    )
    from lstmcast.metrics import METRICS

    table = Table()
    table.add_column("forecaster")
    for metric in METRICS.values():
        table.add_column(metric.label, justify="right")
    for name, scores in report["overall"].items():
        table.add_row(name.replace("_", " "), *[_fmt(scores[k]) for k in METRICS])
    console.print(table)
    console.print(f"relative skill (model MASE / seasonal-naive MASE): {_fmt(report['relative_skill'])}")
    if "quantiles" in report:
        q = report["quantiles"]
        console.print(f"mean pinball loss: {_fmt(q['pinball'])}")
        for interval, share in q["coverage"].items():
            console.print(f"coverage of the {interval} interval: {share:.3f}")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


@app.command()
@handle_errors
def inspect(
    checkpoint: Annotated[Path, typer.Argument(help="model.pt written by lstmcast train.", show_default=False)],
    data: Annotated[Path | None, typer.Option(help="Also measure the gates on this CSV's windows.")] = None,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show a checkpoint's card and, with --data, how its forget/input/output gates behave."""
    started = time.perf_counter()
    reporter = _reporter(quiet or json_output, log_file)
    try:
        with reporter.timed("import"):
            from lstmcast.inference import inspect_checkpoint

        report = inspect_checkpoint(checkpoint, data, reporter)
    finally:
        _close(reporter, started, profile)
    if json_output:
        _emit_json(_summary("inspect", started, **report))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
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
    return f"forecast of {outcome.rows} steps{many} ({outcome.first} … {outcome.last}) written to {outcome.path}"


def _summary(command: str, started: float, **fields: Any) -> dict[str, Any]:
    return {"status": "ok", "command": command, **fields, "seconds": round(time.perf_counter() - started, 3)}


@app.command()
@handle_errors
def validate(
    config: ConfigArg,
    data: Annotated[Path | None, typer.Option(help="CSV to check (overrides data.path).")] = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    profile: ProfileOpt = False,
    log_file: LogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Check CONFIG and its data as train would, without training."""
    started = time.perf_counter()
    cfg = _load(config, set_, data)
    reporter = _reporter(quiet or json_output, log_file)
    try:
        with reporter.timed("import"):
            from lstmcast.pipeline import validate as run

        summary = run(cfg, reporter)
    finally:
        _close(reporter, started, profile)
    if json_output:
        _emit_json(_summary("validate", started, checks=summary))
        return
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    print("ok")


def _resume_command(config: Path, cfg: Any, data: Path | None, out: Path | None, sets: list[str], nproc: int) -> str:
    """The command that continues this run: the config, --data, --out (as rendered) and --set given, and --resume."""
    import shlex

    argv = ["lstmcast", "train", str(config)]
    if data is not None:
        argv += ["--data", str(cfg.data.path)]
    if out is not None:  # the folder this run used, also when --out held a {run_date} placeholder
        argv += ["--out", str(cfg.output.dir)]
    for item in sets:
        argv += ["--set", item]
    processes = max(nproc, distributed.from_env().size)
    if processes > 1:
        argv += ["--nproc", str(processes)]
    return shlex.join([*argv, "--resume"])


def main() -> None:
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


def leave_now(code: Any) -> None:
    """Exit a torchrun worker without interpreter teardown.

    Every file is written and closed by now, but gloo's background threads can make the
    teardown abort (SIGABRT, "terminate called without an active exception"; how often is in
    benchmarks/RESULTS.md, "Measurements behind design choices"), which would turn a finished
    run into a failed job. `os._exit` skips that teardown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
