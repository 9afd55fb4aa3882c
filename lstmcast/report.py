"""How a run talks: a rich progress bar at a terminal, plain timestamped lines everywhere else.

The pipeline calls a `Reporter`; it never prints. Lines also go to any attached log file.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any


def _stamp() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


class Reporter:
    """Messages and training progress for one command run."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        if interactive is None:
            interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interactive = interactive and not quiet
        self._logs: list[IO[str]] = []
        self.timings: dict[str, float] = {}  # seconds per step of the run, for --profile
        self._console: Any = None
        self._live: Any = None  # the rich Progress while training

    # ------------------------------------------------------------------ messages
    def info(self, message: str) -> None:
        self._emit("info", message)

    def warning(self, message: str) -> None:
        self._emit("warning", f"warning: {message}")

    def record(self, message: str) -> None:
        """Log files only: for results the command also prints on stdout."""
        self._emit("record", message)

    def _emit(self, level: str, message: str) -> None:
        line = f"{_stamp()} {message}"
        for log in self._logs:
            log.write(line + "\n")
            log.flush()
        if level == "record" or (self.quiet and level == "info"):
            return
        if self.interactive:
            self.console.print(message, markup=False, highlight=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream)
        return self._console

    def attach_log(self, path: Path) -> None:
        """Append every later line (with timestamps, never progress bars) to `path`."""
        self._logs.append(open(path, "a", encoding="utf-8"))  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        for log in self._logs:
            log.close()
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
            for log in self._logs:
                log.write(f"{_stamp()} {line}\n")
                log.flush()
        else:
            self.info(line)
