"""Errors a user can fix, each with the exit code the CLI contract promises.

Anything that is not an `LstmcastError` is a bug in lstmcast and exits 1.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER = 2
EXIT_LOCKED = 75
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class LstmcastError(Exception):
    """A problem with the user's input; the message is one line: what, then what to do."""

    exit_code = EXIT_USER


class ConfigError(LstmcastError):
    """Bad YAML, unknown key, wrong type or out-of-range value."""


class DataError(LstmcastError):
    """A CSV that cannot be read or does not fit the config."""


class CheckpointError(LstmcastError):
    """A file that is not a loadable lstmcast checkpoint."""


class OutputError(LstmcastError):
    """An output location that cannot be written."""


class TrainingDiverged(LstmcastError):
    """The loss became NaN or infinite."""


class LockedError(LstmcastError):
    """Another lstmcast run holds the output folder."""

    exit_code = EXIT_LOCKED


class Interrupted(LstmcastError):
    """SIGINT/SIGTERM during training; a resumable state was written."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
