"""`lstmcast tune`'s study: where it is stored, which problem it optimises, and the --out folder that holds it.

A study's identity is its problem — the data (path and query), the columns read and how they are
cleaned, the validation and test parts, the horizon — hashed into the study's name
(`lstmcast-<12 hex digits>`). Trials of two problems are never ranked together: a second config with
other targets pointed at the same `--storage` gets a study of its own, and one pointed at the same
`--out` is refused (the folder's `.lstmcast-study.json` names its study and problem), since its
best.yaml, trials.csv and trial folders belong to the first.

The storage is checked before any work: a SQLite path follows the output rules (a regular file or
nothing yet, not read-only, not a folder) and must be a SQLite database if it holds anything; a URL
must be sqlite:// or postgresql:// without a secret in clear. Opening it waits at most STORAGE_WAIT
seconds (a study locked by another process), then it is one error line, as is any failure of the
database later on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lstmcast.atomic import write_target, write_text
from lstmcast.config import Config
from lstmcast.data import db
from lstmcast.errors import ConfigError, OutputError, shown
from lstmcast.locations import absolute, is_url, redact, refuse_secrets

STUDY = "lstmcast"  # the name's prefix; a study made before identities were recorded is named just this
MARKER = ".lstmcast-study.json"
STORAGE_WAIT = 60.0  # seconds opening the storage may wait (a lock held by another process), all attempts together
HEARTBEAT = 30  # seconds: a trial whose process died (kill -9) is failed after two missed beats
SQLITE_MAGIC = b"SQLite format 3\x00"


def problem(base: Config) -> dict[str, Any]:
    """What a study optimises: trials of two configs that differ here measure different things."""
    d = base.data
    return {
        "data": d.path,
        "query": d.query,
        "series_id": d.series_id,
        "timestamp": d.timestamp,
        "target": list(d.target),
        "features": list(d.features),
        "future_features": list(d.future_features),
        "freq": d.freq,
        "start": d.start,
        "end": d.end,
        "missing": d.missing,
        "max_gap": d.max_gap,
        "max_filled": d.max_filled,
        "split": {"val": d.split.val, "test": d.split.test},
        "horizon": base.window.horizon,
    }


def study_name(found: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(found, sort_keys=True, default=str).encode()).hexdigest()
    return f"{STUDY}-{digest[:12]}"


def claim(out: Path, found: dict[str, Any]) -> str:
    """The study this --out folder holds: ours, recorded now if the folder is new; another problem's is refused."""
    name, marker = study_name(found), out / MARKER
    if marker.exists():
        try:
            held = json.loads(marker.read_text(encoding="utf-8"))
            theirs = held["problem"] if held["study"] != name else found
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{marker} is not readable — delete it if {out} holds no study you need") from None
        if theirs != found:
            changed = [
                f"{k} {shown(theirs.get(k), 40)} → {shown(v, 40)}" for k, v in found.items() if theirs.get(k) != v
            ]
            raise ConfigError(
                f"{out} holds the study of another problem ({'; '.join(changed[:3])}) — trials of two problems are "
                "never ranked together: choose another --out"
            )
        return name
    write_text(marker, json.dumps({"study": name, "problem": found}, indent=2, default=str) + "\n")
    return name


# ---------------------------------------------------------------------------- storage


def storage_url(out: Path, given: str | None) -> str:
    """--storage (default DIR/study.db) as a URL, checked: sqlite or postgresql, no secret in clear, and a SQLite
    file that lstmcast may write and that is a SQLite database if it holds anything."""
    refuse_secrets(given, "--storage")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder — tune writes a folder of results; choose another")
    if given is None or not is_url(given):
        path = absolute(out / "study.db" if given is None else given)
        _check_study_file(path)
        return f"sqlite:///{path}"
    db.require_for_url(given)
    parsed = db.parse(given, "--storage")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"--storage {redact(given)}: unknown database kind {parsed.drivername!r} — use a SQLite path or "
            "postgresql://user@host/database"
        )
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(f"--storage {given} is an in-memory database, which keeps no study — give a file")
        _check_study_file(absolute(parsed.database))
    return given


def _check_study_file(path: Path) -> None:
    write_target(path)  # a folder, device, FIFO, read-only file or looping link: refused before any work
    with contextlib.suppress(FileNotFoundError):
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            raise ConfigError(
                f"--storage {path} is not a SQLite database (it begins {shown(head.decode('latin-1'), 20)}) — "
                "give a new file, or the study.db of an earlier tune"
            )


def open_storage(url: str) -> Any:
    """Optuna's storage for `url`; processes started together race to create its tables (the losers retry), and
    a lock held elsewhere is waited for at most STORAGE_WAIT seconds — then one error line."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    wait = STORAGE_WAIT
    sqlite = url.startswith("sqlite")
    args = {"timeout": wait} if sqlite else {"connect_timeout": max(1, round(min(db.CONNECT_TIMEOUT, wait)))}
    deadline = time.monotonic() + wait
    while True:
        try:
            with warnings.catch_warnings(), storage_errors(url, passing=(IntegrityError, OperationalError)):
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats fail dead trials
                return optuna.storages.RDBStorage(
                    db.connect_url(url, "--storage"), engine_kwargs={"connect_args": args}, heartbeat_interval=HEARTBEAT
                )
        except (IntegrityError, OperationalError) as exc:  # tables made by another process at the same moment
            if time.monotonic() > deadline or not _transient(exc):
                raise _failed(url, exc) from None
            time.sleep(0.5)


@contextlib.contextmanager
def storage_errors(url: str, passing: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """A failure of the study's database (locked past the wait, unreachable, read-only, full) → one error line;
    `passing` errors go to the caller."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except passing:
        raise
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, ImportError, ValueError) as exc:
        raise _failed(url, exc) from None


def _transient(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(sign in text for sign in ("already exists", "unique", "locked"))


def _failed(url: str, exc: BaseException) -> OutputError:
    orig = getattr(exc, "orig", None) or exc.__cause__ or exc
    words = redact(" ".join(str(orig).split()) or type(orig).__name__)
    words = words if len(words) <= 200 else words[:199] + "…"
    return OutputError(
        f"cannot use the study storage {redact(url)}: {words} — check it (a lock held by another process is waited "
        f"for {STORAGE_WAIT:g}s), or pass another --storage"
    )
