"""The process contract every command keeps: exit codes, the standard streams, warnings, JSON error lines.

Whatever goes wrong ends in one `error: …` line on stderr and a documented exit code (docs/errors.md,
"Exit codes"): a bad command line (click's usage text is kept for people, and `--json` still gets
its JSON line), a library warning (one `warning: …` line through the Reporter), a closed stderr (the
run goes on) or a stdout whose reader went away after the work was done (exit 0, quietly).

One `Session` per invocation holds what the contract must remember while a command runs (the
run's Reporter, whether stdout is gone, --debug); `run` is the skeleton every command shares:
a Reporter → the flow → the rendering or the JSON summary.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from lstmcast.errors import EXIT_BUG, EXIT_SIGINT, EXIT_USER, ConfigError, Interrupted, LstmcastError
from lstmcast.learn import distributed
from lstmcast.locations import redact

# click's exception classes, from the one name typer exports in every version (click may be vendored).
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
ClickException: type[Exception] = _CLICK_ERRORS["ClickException"]
WARNING_CHARS = 200  # a library warning becomes one line of at most this many characters
RANK_0_REPORTS_WITHIN = 10.0  # seconds a quiet rank waits before exiting, so rank 0's line is not cut off

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


class Session:
    """One invocation's state: its Reporter (library warnings go through it), stdout's fate, --debug."""

    def __init__(self) -> None:
        self.debug = os.environ.get("LSTMCAST_DEBUG", "") not in ("", "0")
        self.reporter: Any = None
        self.stdout_gone = False

    def stdout(self, text: str) -> None:
        """Print on stdout, secrets masked; a reader that went away (`| head -1`) is no error: the work is done."""
        self._print(redact(text))

    def _print(self, text: str) -> None:
        if not self.stdout_gone:
            with self.writing_stdout():
                print(text, flush=True)

    @contextlib.contextmanager
    def writing_stdout(self) -> Iterator[None]:
        """Stdout's reader gone: quiet from then on. Stdout unwritable (its disk full): an `OutputError`."""
        try:
            yield
        except BrokenPipeError:
            self.silence_stdout()
        except OSError as exc:
            self.silence_stdout()
            from lstmcast.errors import OutputError

            raise OutputError(
                f"cannot write to stdout: {exc.strerror or exc} — the run's files, if any, were written; "
                "fix where stdout is redirected"
            ) from None

    def flush_stdout(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self.silence_stdout()

    def silence_stdout(self) -> None:
        """Point stdout at /dev/null, so that nothing (not even the flush at exit) writes to the broken pipe again."""
        self.stdout_gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = sys.stdout.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)

    def console(self) -> Any:
        """A rich Console on stdout that goes quiet when its reader goes away (rich itself would exit 1)."""
        from rich.console import Console

        session = self

        class QuietOnBrokenPipe(Console):
            def on_broken_pipe(self) -> None:
                self.quiet = True
                session.silence_stdout()

        class Redacting:  # what rich writes, with secrets masked (it writes each print's text at once)
            def write(self, text: str) -> int:
                return sys.stdout.write(redact(text))

            def flush(self) -> None:
                sys.stdout.flush()

            def __getattr__(self, name: str) -> Any:
                return getattr(sys.stdout, name)

        return QuietOnBrokenPipe(file=Redacting())

    def json_error(self, command: str | None, wanted: bool, message: str, code: int) -> None:
        """With --json, a failed run still ends with one summary line on stdout."""
        if wanted and rank() == 0:
            self.emit_json({"status": "error", "command": command, "exit_code": code, "error": message})

    def emit_json(self, summary: dict[str, Any]) -> None:
        """One line of strict JSON (NaN and infinities as null), secrets masked."""
        from lstmcast.report import to_json

        self._print(to_json(summary))

    def library_warning(self, text: str) -> None:
        text = one_line(text)
        if len(text) > WARNING_CHARS:
            text = text[: WARNING_CHARS - 1] + "…"
        if self.reporter is not None:
            self.reporter.warning(text)
        else:
            stderr(f"warning: {text}")

    @contextlib.contextmanager
    def routed_warnings(self) -> Iterator[None]:
        """During a command, Python warnings and unhandled log records become lstmcast's own warning lines."""
        import logging

        last_resort = logging.lastResort
        logging.lastResort = _logged_warnings(self)
        try:
            with warnings.catch_warnings():  # restores the filters and showwarning afterwards
                warnings.showwarning = functools.partial(_show_warning, self)
                yield
        finally:
            logging.lastResort = last_resort


def current(ctx: typer.Context) -> Session:
    """This invocation's Session: the context object `Group.main` gave click (every command takes `ctx`)."""
    session = ctx.obj
    assert isinstance(session, Session)
    return session


def rank() -> int:
    """This process's rank under torchrun (0 otherwise); `distributed` reads it without importing torch."""
    return distributed.from_env().rank


def one_line(text: str) -> str:
    return " ".join(text.split())


def stderr(text: str) -> None:
    """Print on stderr if there is one (a scheduler may have closed it; then the exit code speaks)."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            print(redact(text), file=sys.stderr, flush=True)


def fail(session: Session, message: str, code: int, *, every_rank: bool = False, wait: bool = True) -> typer.Exit:
    """Print the one error line. Under torchrun, user errors come from inputs all ranks share,
    so only rank 0 reports them; a bug (`every_rank`) may hit one rank alone and names it."""
    r = rank()
    if r == 0 or every_rank:
        session.flush_stdout()
        prefix = f"rank {r}: " if r else ""
        stderr(prefix + one_line(message))  # one line, whatever a library said
    elif wait:  # (not after a stop signal: the launcher is already waiting for every rank to end)
        # The launcher stops every rank as soon as one exits with an error: a quiet rank that
        # exited first would take rank 0 down before it printed. Rank 0 meets the same error
        # and exits first; the launcher then ends this wait.
        time.sleep(RANK_0_REPORTS_WITHIN)
    return typer.Exit(code)


def _show_warning(session: Session, message: Any, category: type[Warning], filename: str, lineno: int, *_: Any) -> None:
    """A Python warning (torch, numpy, pandas…) as one `warning: …` line through the run's Reporter."""
    session.library_warning(f"{category.__name__} in {Path(filename).name}:{lineno}: {message}")


def _logged_warnings(session: Session) -> Any:
    """A stand-in for logging's last resort: a library's log record nobody handles becomes one warning line.

    Built on first use: importing logging would cost `--help` a quarter of its start-up.
    """
    import logging

    class LoggedWarnings(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)

        def emit(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):  # logging would print a traceback for an error raised here
                session.library_warning(f"{record.name}: {record.getMessage()}")

    return LoggedWarnings()


# ---------------------------------------------------------------------------- the app's group and commands


class Group(TyperGroup):
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
        session = Session()
        refuse_blank(self)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, obj=session, **extra)
        except LstmcastError as exc:  # from an option's check (e.g. --wait nan), before any command ran
            session.json_error(_command_in(argv), "--json" in argv, one_line(str(exc)), exc.exit_code)
            code = fail(session, f"error: {exc}", exc.exit_code).exit_code
        except ClickException as exc:
            code = _usage_failure(session, exc, argv)
        except typer.Abort:
            code = fail(session, "error: interrupted", EXIT_SIGINT).exit_code
        except SystemExit:
            if type(sys.stdout).__name__ != "PacifyFlushWrapper":
                raise
            code = 0  # click met a stdout whose reader is gone (`--help | head -1`) and exits 1 for it
            session.silence_stdout()
        code = 0 if code is None else code
        session.flush_stdout()
        if standalone_mode:
            sys.exit(code)
        return code


BLANK_HINTS = {
    "--archive": "give the archive's database URL or SQLite file, or pass --no-archive to record nothing",
}


def refuse_blank(group: Any) -> None:
    """Every value given on the command line must say something: `--archive ''` (a crontab's unset variable)
    is one error line naming the option, not "no archive"; an empty path is not the working directory."""
    for command in group.commands.values():
        for param in command.params:
            if not getattr(param, "lstmcast_blank_checked", False):
                param.process_value = _not_blank(param, param.process_value)
                param.lstmcast_blank_checked = True


def _not_blank(param: Any, cast: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def checked(ctx: Any, value: Any) -> Any:
        values = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(v, str) and not v.strip() for v in values):
            option = param.param_type_name == "option"
            name = param.opts[0] if option else str(param.name).upper()
            hint = BLANK_HINTS.get(
                name, f"give a value, or drop {name} to use its default" if option else "give a value"
            )
            raise ConfigError(f"{name} is empty ('') — {hint} (in a crontab, an unset variable gives '')")
        return cast(ctx, value)

    return checked


def guarded(function: F) -> F:
    """A command with the error contract: user errors → one `error:` line and exit 2 (or their own code);
    a library's warning → one `warning:` line; bugs → exit 1 with a hint.

    The command takes `ctx: typer.Context` (its Session) and, where it offers it, `json_output`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = current(kwargs["ctx"])
        wants_json = bool(kwargs.get("json_output"))
        try:
            from lstmcast import cores

            with session.routed_warnings(), cores.presence():  # counted among the jobs sharing this machine's cores
                return function(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokenPipeError:  # stdout's reader went away; only the final lines go there, after the work
            session.silence_stdout()
            return None
        except LstmcastError as exc:
            _traceback_if(session.debug)
            session.json_error(function.__name__, wants_json, one_line(str(exc)), exc.exit_code)
            raise fail(session, f"error: {exc}", exc.exit_code, wait=not isinstance(exc, Interrupted)) from None
        except KeyboardInterrupt:
            raise fail(session, "error: interrupted", EXIT_SIGINT) from None
        except Exception as exc:  # a bug in lstmcast, not the user's fault
            raise _bug(session, function.__name__, wants_json, exc) from None

    return wrapper  # type: ignore[return-value]


def _bug(session: Session, command: str, wants_json: bool, exc: Exception) -> typer.Exit:
    message = f"error: internal error: {type(exc).__name__}: {exc}"
    session.json_error(command, wants_json, message.removeprefix("error: "), EXIT_BUG)
    _traceback_if(session.debug)
    hint = "" if session.debug else " — rerun with --debug for the traceback and report it"
    return fail(session, message + hint, EXIT_BUG, every_rank=True)


def _traceback_if(debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()


def _command_in(argv: list[str]) -> str | None:
    """The command a command line asked for (its first word that is not an option), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _usage_failure(session: Session, exc: Any, argv: list[str]) -> int:
    """A command line click could not parse: its usage lines for people, then one `error:` line."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `lstmcast`: the help, as click shows it
        with contextlib.suppress(OSError, ValueError):
            exc.show()
        return int(exc.exit_code)
    message = one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if "--json" in argv:
        name = ctx.command.name if ctx is not None and ctx.parent is not None else _command_in(argv)
        session.json_error(name, True, message, EXIT_USER)
    if ctx is not None:
        stderr(f"{ctx.get_usage()}\nTry '{ctx.command_path} {ctx.help_option_names[0]}' for help.")
    stderr(f"error: {message}")
    return EXIT_USER


# ---------------------------------------------------------------------------- the skeleton


@dataclass(frozen=True)
class Output:
    """How a command speaks: the options every command shares (some commands offer a subset)."""

    quiet: bool = False
    verbose: bool = False
    profile: bool = False
    log_file: Path | None = None
    json: bool = False


def reporter(session: Session, out: Output) -> Any:
    """The run's Reporter (library warnings go through it too); --log-file must be a regular file or new."""
    from lstmcast.report import Reporter

    if rank() > 0:  # under torchrun rank 0 speaks for the job
        made = Reporter(open(os.devnull, "w"), quiet=True)  # noqa: SIM115 - lives as long as the run
    else:
        made = Reporter(quiet=out.quiet, verbose=out.verbose)
        if out.log_file is not None:
            made.attach_log(out.log_file)
    session.reporter = made
    return made


def run(
    ctx: typer.Context,
    out: Output,
    work: Callable[[Any], R],
    show: Callable[[Session, R], None],
    summary: Callable[[R], dict[str, Any]],
) -> R:
    """The skeleton of every command: a Reporter → `work(reporter)` (the flow) → `show` it, or its JSON summary.

    The Reporter is closed (and --profile printed) whatever happens; under torchrun only rank 0 speaks.
    """
    session, started = current(ctx), time.perf_counter()
    made = reporter(session, out)
    try:
        result = work(made)
    finally:
        close(made, started, out.profile)
    if rank() > 0:
        return result
    with session.writing_stdout():  # rich's tables too: a full disk under stdout is one line, exit 2
        if out.json:
            session.emit_json(
                {"status": "ok", "command": ctx.info_name, **summary(result), "seconds": elapsed(started)}
            )
        else:
            show(session, result)
    return result


def close(made: Any, started: float, profile: bool) -> None:
    if profile or os.environ.get("LSTMCAST_PROFILE", "") not in ("", "0"):
        made.profile(time.perf_counter() - started)
    made.close()


def elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)
