"""Errors a user can fix, each with the exit code the CLI contract promises.

Anything that is not an `LstmcastError` is a bug in lstmcast and exits 1.
"""

from __future__ import annotations

EXIT_BUG = 1
EXIT_USER = 2
EXIT_ALERT = 3  # lstmcast score: a --fail-if condition held
EXIT_LOCKED = 75
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

SHOWN_LIMIT = 80  # characters of a user's value (a cell, a name, a header) echoed into a message


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """A user's value as an error line shows it: text quoted and escaped like repr, at most `limit` characters.

    Longer values end in an ellipsis, so a 300 MB cell or a megabyte of header cannot flood a log;
    escaping keeps a newline or control character inside a value from breaking the one-line promise.
    Values that are not text (times, numbers) are shown unquoted.
    """
    text = value if isinstance(value, str) else str(value)
    head = text[: limit + 1]  # escape a bounded prefix only: repr of a 300 MB string would copy it
    quoted = repr(head)
    inner, quote = quoted[1:-1], (quoted[0] if isinstance(value, str) else "")
    if len(text) > limit or len(inner) > limit:
        inner = inner[: limit - 1] + "…"
    return f"{quote}{inner}{quote}"


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
    """SIGINT/SIGTERM stopped the run (training wrote a resumable state); exit 128 + the signal's number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
