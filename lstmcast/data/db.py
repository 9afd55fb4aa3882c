"""Database URLs: recognising one, connecting with it within a time limit, and never showing a secret.

Owns what lstmcast does with a SQLAlchemy URL (`sqlite:///data/load.db`,
`postgresql://forecast@db/load`) around a connection: the optional extras it needs, refusing a
secret written in clear (`locations.refuse_secrets`: it would land in config.yaml and the
checkpoint), expanding `${VAR}` from the environment only when connecting, the redacted form every
message shows (`locations.redact`), engine creation (SQLite through the standard library's
driver, PostgreSQL through psycopg 3), and a driver's error turned into one line without the secret.

Every connection is a `Link` with a time limit (data.timeout, archive.timeout): PostgreSQL gets
`connect_timeout` and `statement_timeout`; SQLite a busy timeout (a lock held by another
process) and a progress handler that interrupts a statement running past the limit. Either way
the statement fails, its transaction rolls back, and the caller says so in one line.

SQLite files follow the rules of every output when written (`atomic.write_target`: a regular file,
not read-only; nothing is created beside a device), and are opened read-only (`mode=ro`, with an
authorizer that refuses ATTACH, which `VACUUM INTO` also needs) when read. Writes run in one
`BEGIN IMMEDIATE` transaction, DDL included, so creating tables is atomic and writers queue.
SQLAlchemy and the drivers are imported inside the functions, so `--help` and CSV runs never load them.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmcast.atomic import ensure_dir, kind_of, write_target
from lstmcast.durations import text as duration_text
from lstmcast.errors import ConfigError, DataError, LstmcastError, shown
from lstmcast.extras import require
from lstmcast.locations import is_secret_key, redact, refuse_secrets

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONNECT_TIMEOUT = 10  # seconds PostgreSQL may take to answer before an unreachable host is an error
SQLITE_MAGIC = b"SQLite format 3\x00"
MESSAGE_CHARS = 200  # characters of a driver's message kept in an error line
PROGRESS_EVERY = 10_000  # SQLite virtual-machine steps between checks of the clock
_TIMED_OUT = ("interrupted", "database is locked", "database table is locked", "statement timeout", "timeout expired")


def require_for_url(url: str) -> None:
    """The extras a database URL needs: SQLAlchemy, and psycopg for PostgreSQL."""
    require("sqlalchemy", "sql", "a database URL")
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        require("psycopg", "postgres", "a postgresql:// URL")


def parse(url: str, role: str = "data.path") -> Any:
    """The URL as SQLAlchemy's `URL`; a secret written in clear is refused (use ${VAR} or ~/.pgpass)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    refuse_secrets(url, role)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"{role} {shown(redact(url))} is not a database URL — write e.g. sqlite:///data/load.db "
            "or postgresql://user@host/database"
        ) from None
    if parsed.drivername == "postgres":  # the libpq spelling; SQLAlchemy knows only postgresql
        parsed = parsed.set(drivername="postgresql")
    return parsed


def redacted(url: str) -> str:
    """The URL as messages show it: every secret as *** (`locations.redact`)."""
    return redact(url)


def _expanded(parsed: Any, role: str) -> tuple[Any, tuple[str, ...]]:
    """`${VAR}` in the user, password, host, database and query replaced from the environment; the secrets."""

    def expand(text: str | None) -> str | None:
        if text is None:
            return None

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{role} {redact(parsed.render_as_string(hide_password=False))} refers to ${{{name}}}, which is "
                    "not set in the environment — export it (cron: set it in the crontab or a wrapper script)"
                )
            return os.environ[name]

        return _VAR.sub(value, text)

    password = expand(parsed.password)
    query = {k: (expand(v) if isinstance(v, str) else v) for k, v in parsed.query.items()}
    done = parsed.set(
        username=expand(parsed.username),
        password=password,
        host=expand(parsed.host),
        database=expand(parsed.database),
        query=query,
    )
    secrets = [password] + [v for k, v in query.items() if is_secret_key(k) and isinstance(v, str)]
    return done, tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def connect_url(url: str, role: str) -> str:
    """The URL with ${VAR} expanded, for a library that connects by itself (Optuna); never shown to anyone."""
    parsed, _secret = _expanded(parse(url, role), role)
    return str(parsed.render_as_string(hide_password=False))


# ---------------------------------------------------------------------------- a connection with a time limit


@dataclass
class Link:
    """An engine for one URL (one connection at a time), the secret to keep out of messages, and its time limit."""

    engine: Any
    secrets: tuple[str, ...]
    timeout: float  # seconds: connecting (at most CONNECT_TIMEOUT) and each statement
    knob: str  # the key that sets it, named when it runs out
    until: float = field(default=math.inf)  # SQLite: when the running statement must stop

    def restart(self) -> None:
        """A new statement (or the next fetch of one) gets the whole time limit again."""
        self.until = time.monotonic() + self.timeout

    def _late(self) -> int:
        return int(time.monotonic() > self.until)  # SQLite's progress handler: non-zero interrupts the statement

    @contextlib.contextmanager
    def failures(
        self, error: type[LstmcastError], what: str, fix: str, driver: type[Exception] | None = None
    ) -> Iterator[None]:
        """Database errors inside the block → one line: `what: the driver's words — fix` (a time limit named)."""
        from sqlalchemy.exc import SQLAlchemyError

        caught: tuple[type[Exception], ...] = (SQLAlchemyError, driver) if driver else (SQLAlchemyError,)
        try:
            yield
        except caught as exc:
            words = _message(exc, self.secrets)
            if words == "not authorized":  # our SQLite authorizer: the query tried to ATTACH a file
                words = "not authorized: lstmcast opens data read-only, so a query cannot ATTACH or VACUUM INTO a file"
            if any(sign in words.lower() for sign in _TIMED_OUT):
                raise error(
                    f"{what}: no answer within {self.knob} ({duration_text(self.timeout)}): {words} — another "
                    f"connection may hold a lock, or the query is slow; {fix}, or raise {self.knob}"
                ) from None
            raise error(f"{what}: {words} — {fix}") from None

    def connect(self, label: str, error: type[LstmcastError]) -> Any:
        """An open connection; a wrong password, unknown host or stopped server is one line without the password."""
        with self.failures(
            error,
            f"cannot connect to {label}",
            "check the host, port, database, user and password (${VAR} in the URL, ~/.pgpass or PGPASSWORD)",
        ):
            self.restart()
            return self.engine.connect()

    def dispose(self) -> None:
        self.engine.dispose()


def engine(
    url: str,
    *,
    role: str = "data.path",
    reading: bool = True,
    timeout: float = 600.0,
    knob: str = "data.timeout",
) -> Link:
    """A `Link` for `url` (no pool: one connection per run), its time limit set; read-only when `reading`.

    SQLite: a file read must exist (SQLite would otherwise create an empty one) and be a regular file;
    a file written follows the output rules and its folder is made.
    """
    require_for_url(url)
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    parsed, secrets = _expanded(parse(url, role), role)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"poolclass": NullPool}
    if backend == "sqlite":
        options.update(_sqlite_options(parsed, url, reading, timeout))
    elif backend == "postgresql":
        parsed, options["connect_args"] = _postgres_options(parsed, reading, timeout)
    try:
        made = create_engine(parsed, **options)
    except NoSuchModuleError:
        raise ConfigError(
            f"{role} {redacted(url)}: unknown database kind {parsed.drivername!r} — use sqlite:/// or postgresql://"
        ) from None
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"{role} {redacted(url)}: {_message(exc, secrets)}") from None
    link = Link(made, secrets, timeout, knob)
    if backend == "sqlite":
        event.listen(made, "connect", lambda dbapi, _record: _sqlite_connected(dbapi, link, reading))
        event.listen(made, "begin", lambda conn: conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE"))
        event.listen(made, "before_cursor_execute", lambda *_args: link.restart())
    return link


def _sqlite_options(parsed: Any, url: str, reading: bool, timeout: float) -> dict[str, Any]:
    """The file checked (read: a regular file that exists; written: the output rules), opened read-only to read."""
    import sqlite3

    database = parsed.database
    if database in (None, "", ":memory:") or str(database).startswith("file:"):
        return {"connect_args": {"timeout": timeout}}
    path = Path(database)
    if not reading:
        ensure_dir(path.parent)
        write_target(path)  # a device, FIFO, folder or read-only file is refused before SQLite touches it
        return {"connect_args": {"timeout": timeout}}
    _check_readable(path, url)
    check_sqlite_file(path, url)
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    return {"creator": lambda: sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)}


def check_sqlite_file(path: Path, url: str) -> None:
    """A file SQLite is to open holds a SQLite database, or nothing yet (SQLite would say only "not a database")."""
    with contextlib.suppress(OSError):
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC[: len(head)]:
            raise DataError(
                f"{path} of {redacted(url)} is not a SQLite database (it begins {shown(head.decode('latin-1'), 20)})"
                " — give a new file, or one lstmcast wrote"
            )


def _check_readable(path: Path, url: str) -> None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        raise LstmcastError(
            f"database file {path} of {redacted(url)} not found — check the path "
            "(sqlite:///relative/path.db is relative to the working directory; sqlite:////abs/path.db is absolute)"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"database file {path} of {redacted(url)} is a symbolic link that loops") from None
        raise DataError(f"cannot open database file {path} of {redacted(url)}: {exc.strerror or exc}") from None
    kind = kind_of(found.st_mode)
    if kind is not None:
        raise DataError(f"database file {path} of {redacted(url)} is {kind}, not a regular file — give the SQLite file")


def _sqlite_connected(dbapi: Any, link: Link, reading: bool) -> None:
    """Our own BEGIN (pysqlite's would leave DDL outside the transaction), the clock, and for reads no ATTACH."""
    import sqlite3

    dbapi.isolation_level = None
    dbapi.set_progress_handler(link._late, PROGRESS_EVERY)
    if reading:  # mode=ro stops writes to this file, but ATTACH (and VACUUM INTO, which attaches) would make others
        refused = (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH)
        dbapi.set_authorizer(lambda action, *_: sqlite3.SQLITE_DENY if action in refused else sqlite3.SQLITE_OK)
        with contextlib.suppress(AttributeError):  # Python 3.11+: no database may be attached at all
            dbapi.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)


def _postgres_options(parsed: Any, reading: bool, timeout: float) -> tuple[Any, dict[str, Any]]:
    """statement_timeout (and, for reads, read-only transactions) added to the URL's own `options`."""
    given = parsed.query.get("options")
    settings = [given] if isinstance(given, str) else list(given or ())
    settings.append(f"-c statement_timeout={max(1, round(timeout * 1000))}")
    if reading:
        settings.append("-c default_transaction_read_only=on")
    parsed = parsed.update_query_dict({"options": " ".join(settings)})
    connect_args = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = max(1, math.ceil(min(CONNECT_TIMEOUT, timeout)))
    return parsed, connect_args


def _message(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """A driver's message for an error line: its first line, capped, every secret replaced by ***."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    text = redact(text)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


DELETE_BATCH = 500  # series ids per DELETE … IN (…)


def delete_runs(conn: Any, table: Any, model: str, by_origin: dict[Any, list[str]]) -> None:
    """Delete the rows of `model` at each origin for that origin's series (a run's rows, before it writes again)."""
    c = table.c
    for origin, ids in by_origin.items():
        for at in range(0, len(ids), DELETE_BATCH):
            batch = ids[at : at + DELETE_BATCH]
            conn.execute(table.delete().where(c.model_id == model, c.origin == origin, c.series.in_(batch)))
