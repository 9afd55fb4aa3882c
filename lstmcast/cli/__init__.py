"""The command line: parse the arguments, call a flow, render what it returns, map every outcome to an exit code.

Owns the `lstmcast` Typer app and its commands, each a short function over one skeleton
(`contract.run`: a Reporter → the flow → `render` or a JSON line): `training` (train, validate),
`forecasting` (predict, evaluate, inspect), `job` (score, promote), `search` (tune, init);
`options` maps arguments to domain objects, `contract` keeps the process contract.

May import: base, data, learn, model, forecast, flows, engines — at start-up only the base modules and
`learn.distributed` (which imports no torch), the rest inside a command, so `--help` imports
neither torch, pandas nor numpy. Nothing imports the CLI.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any

import typer

from lstmcast import __version__
from lstmcast.cli import contract, forecasting, job, search, training
from lstmcast.errors import EXIT_SIGINT
from lstmcast.learn import distributed

__all__ = ["app", "leave_now", "main"]

app = typer.Typer(
    cls=contract.Group,
    name="lstmcast",
    help="Stacked-LSTM time-series forecasting from one YAML file.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Registered in the order `lstmcast --help` lists them.
for _command in (
    training.train,
    forecasting.predict,
    forecasting.evaluate,
    search.tune,
    search.init,
    job.promote,
    job.score,
    forecasting.inspect,
    training.validate,
):
    app.command()(_command)


def _show_version(ctx: typer.Context, shown: bool) -> None:
    if shown:
        contract.current(ctx).stdout(f"lstmcast {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also LSTMCAST_DEBUG=1).")] = False,
) -> None:
    if debug:
        contract.current(ctx).debug = True


def main() -> None:
    keep_standard_streams()
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


def keep_standard_streams() -> None:
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
