"""How a run talks: a rich progress bar at a terminal, plain timestamped lines everywhere else.

The pipeline calls a `Reporter`; it never prints. Lines also go to any attached log file, with every
secret masked (`locations.redact`). `to_json` is how lstmcast writes JSON: strict (a NaN or an
infinity becomes null, which every JSON reader takes), secrets masked.
Without a stderr (closed by the scheduler, or its reader gone) the run goes on and the lines go
to the log files only; a log file that cannot be written (a full disk) is an `OutputError`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from lstmcast.atomic import advice, open_append
from lstmcast.errors import OutputError
from lstmcast.locations import redact, redact_tree


def _stamp() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def plain(value: Any) -> Any:
    """A tree of results as strict JSON values: numpy scalars as Python's, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return plain(value.item())  # a numpy scalar (int64, bool_)
    return value


def to_json(value: Any, indent: int | None = None) -> str:
    """`value` as strict JSON (no NaN or Infinity tokens) with secrets masked; other objects as their str."""
    import json

    return json.dumps(redact_tree(plain(value)), indent=indent, default=str, allow_nan=False)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


class Reporter:
    """Messages and training progress for one command run."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        quiet: bool = False,
        interactive: bool | None = None,
        verbose: bool = False,
    ) -> None:
        self.stream: IO[str] | None = stream if stream is not None else sys.stderr  # None: stderr is closed
        self.quiet = quiet
        self.verbose = verbose and not quiet
        if interactive is None:
            interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interactive = interactive and not quiet and self.stream is not None
        self._logs: list[tuple[Path, int]] = []  # appended with os.write: nothing buffered, nothing lost at exit
        self.timings: dict[str, float] = {}  # seconds per step of the run, for --profile
        self._console: Any = None
        self._live: Any = None  # the rich Progress while training

    # ------------------------------------------------------------------ messages
    def info(self, message: str) -> None:
        self._emit("info", message)

    def warning(self, message: str) -> None:
        self._emit("warning", f"warning: {message}")

    def detail(self, message: str) -> None:
        """Log files always; the terminal with --verbose: long lists such as every series skipped."""
        self._emit("info" if self.verbose else "record", message)

    def record(self, message: str) -> None:
        """Log files only: for results the command also prints on stdout."""
        self._emit("record", message)

    def _emit(self, level: str, message: str) -> None:
        message = redact(message)
        line = f"{_stamp()} {message}"
        self._log(line)
        if level == "record" or (self.quiet and level == "info"):
            return
        if self.interactive:
            self._speak(lambda stream: self.console.print(message, markup=False, highlight=False))
        else:
            self._speak(lambda stream: (stream.write(line + "\n"), stream.flush()))

    def _speak(self, say: Callable[[IO[str]], object]) -> None:
        """Write to the stream unless it is gone; a closed stderr or a vanished reader stops nothing."""
        if self.stream is None:
            return
        try:
            say(self.stream)
        except (OSError, ValueError):  # EPIPE, EBADF, or a closed file object
            self.stream, self.interactive = None, False

    def _log(self, line: str) -> None:
        data = (line + "\n").encode()
        for path, fd in list(self._logs):
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                self._logs.remove((path, fd))
                os.close(fd)
                raise OutputError(f"cannot write the log file {path}: {exc.strerror} — {advice(exc)}") from None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream)
        return self._console

    def attach_log(self, path: Path) -> None:
        """Append every later line (with timestamps, never progress bars) to `path`: a regular file, or made."""
        self._logs.append((Path(path), open_append(Path(path))))

    def close(self) -> None:
        for _, fd in self._logs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._logs.clear()

    # ------------------------------------------------------------------ --profile
    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the block's wall time to `step` (a step may be timed in several pieces)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started

    def profile(self, total: float) -> None:
        """One line saying where the run's `total` seconds went; printed even with --quiet (it was asked for)."""
        parts = list(self.timings.items())
        parts.append(("other", max(0.0, total - sum(self.timings.values()))))
        text = " · ".join(f"{step} {seconds:.2f}s ({seconds / max(total, 1e-9):.0%})" for step, seconds in parts)
        self._emit("warning", f"profile: {text}; total {total:.2f}s")

    # ------------------------------------------------------------------ training progress
    @contextlib.contextmanager
    def training(self, epochs: int) -> Iterator[Reporter]:
        if not self.interactive:
            yield self
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._live = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        with self._live:
            self._epoch_task = self._live.add_task("epoch", total=epochs, losses="")
            self._batch_task = self._live.add_task("batch", total=1, losses="")
            try:
                yield self
            finally:
                self._live = None

    def on_batch(self, epoch: int, done: int, total: int) -> None:
        if self._live is not None:
            if done == 1:  # a new epoch: restart the batch bar so its timing is per epoch
                self._live.reset(self._batch_task, total=total)
            self._live.update(self._batch_task, completed=done, total=total)

    def on_validation(self, point: Any, epochs: int) -> None:
        text = (
            f"train {_fmt(point.train_loss)}  val {_fmt(point.val_loss)}  "
            f"best {_fmt(point.best_val)} @ epoch {point.best_epoch}"
        )
        line = f"epoch {point.epoch}/{epochs} step {point.step}  {text}  {point.seconds:.1f}s"
        if self._live is not None:
            self._live.update(self._epoch_task, completed=point.epoch, losses=text)
            self._log(f"{_stamp()} {line}")
        else:
            self.info(line)
