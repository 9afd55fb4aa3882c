"""Database URLs: recognising one, connecting with it, and never showing its password.

Owns what lstmcast does with a SQLAlchemy URL (`sqlite:///data/load.db`,
`postgresql://forecast@db/load`) around a connection: the optional extras it needs, refusing a
password written in clear (it would land in config.yaml and the checkpoint), expanding `${VAR}`
from the environment only when connecting, the redacted form every message shows
(`URL.render_as_string(hide_password=True)`), engine creation (SQLite through the standard
library's driver, PostgreSQL through psycopg 3), and a driver's error turned into one line
without the password. SQLAlchemy and the drivers are imported inside the functions, so
`--help` and CSV runs never load them.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from lstmcast.errors import ConfigError, LstmcastError, shown
from lstmcast.extras import require

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONNECT_TIMEOUT = 10  # seconds PostgreSQL may take to answer before an unreachable host is an error
MESSAGE_CHARS = 200  # characters of a driver's message kept in an error line


def require_for_url(url: str) -> None:
    """The extras a database URL needs: SQLAlchemy, and psycopg for PostgreSQL."""
    require("sqlalchemy", "sql", "a database URL")
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        require("psycopg", "postgres", "a postgresql:// URL")


def parse(url: str, role: str = "data.path") -> Any:
    """The URL as SQLAlchemy's `URL`; a password written in clear is refused (use ${VAR} or ~/.pgpass)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"{role} {shown(_scrubbed(url))} is not a database URL — write e.g. sqlite:///data/load.db "
            "or postgresql://user@host/database"
        ) from None
    if parsed.drivername == "postgres":  # the libpq spelling; SQLAlchemy knows only postgresql
        parsed = parsed.set(drivername="postgresql")
    if parsed.password is not None and not _VAR.fullmatch(str(parsed.password)):
        raise ConfigError(
            f"{role} {redacted(url)} holds a password in clear, which would be copied into config.yaml, the "
            "checkpoint and logs — write ${PGPASSWORD} in its place (read from the environment when connecting) "
            "or leave it out and use ~/.pgpass or PGPASSWORD"
        )
    return parsed


def redacted(url: str) -> str:
    """The URL as messages show it: the password, if any, as ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show it without anything between ':' and '@'
        return _scrubbed(url)


def _scrubbed(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _expanded(parsed: Any, role: str) -> tuple[Any, str | None]:
    """`${VAR}` in the user, password, host, database and query replaced from the environment; the secret."""

    def expand(text: str | None) -> str | None:
        if text is None:
            return None

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{role} {parsed.render_as_string(hide_password=True)} refers to ${{{name}}}, which is not set "
                    "in the environment — export it (cron: set it in the crontab or a wrapper script)"
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
    return done, password


def connect_url(url: str, role: str) -> str:
    """The URL with ${VAR} expanded, for a library that connects by itself (Optuna); never shown to anyone."""
    parsed, _secret = _expanded(parse(url, role), role)
    return str(parsed.render_as_string(hide_password=False))


def engine(url: str, *, role: str = "data.path", reading: bool = True) -> tuple[Any, str | None]:
    """A SQLAlchemy engine for `url` (no pool: one connection per run) and the password to keep out of messages.

    Reading from SQLite needs the file to exist: SQLite would otherwise create an empty one.
    """
    require_for_url(url)
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    parsed, secret = _expanded(parse(url, role), role)
    backend = parsed.get_backend_name()
    local = parsed.database not in (None, "", ":memory:")
    if backend == "sqlite" and reading and local and not os.path.isfile(parsed.database):
        raise LstmcastError(
            f"database file {parsed.database} of {redacted(url)} not found — check the path "
            "(sqlite:///relative/path.db is relative to the working directory; sqlite:////abs/path.db is absolute)"
        )
    options: dict[str, Any] = {"poolclass": NullPool}
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        return create_engine(parsed, **options), secret
    except NoSuchModuleError:
        raise ConfigError(
            f"{role} {redacted(url)}: unknown database kind {parsed.drivername!r} — use sqlite:/// or postgresql://"
        ) from None
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"{role} {redacted(url)}: {_message(exc, secret)}") from None


def _message(exc: BaseException, secret: str | None) -> str:
    """A driver's message for an error line: its first line, capped, the password (if any) replaced by ***."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


@contextlib.contextmanager
def failures(
    error: type[LstmcastError], what: str, fix: str, secret: str | None, driver: type[Exception] | None = None
) -> Iterator[None]:
    """SQLAlchemy errors (and the `driver`'s own) inside the block → one line: `what: the driver's words — fix`."""
    from sqlalchemy.exc import SQLAlchemyError

    caught: tuple[type[Exception], ...] = (SQLAlchemyError, driver) if driver else (SQLAlchemyError,)
    try:
        yield
    except caught as exc:
        raise error(f"{what}: {_message(exc, secret)} — {fix}") from None


def connect(eng: Any, label: str, secret: str | None, error: type[LstmcastError]) -> Any:
    """An open connection; a wrong password, unknown host or stopped server is one line without the password."""
    with failures(
        error,
        f"cannot connect to {label}",
        "check the host, port, database, user and password (${VAR} in the URL, ~/.pgpass or PGPASSWORD)",
        secret,
    ):
        return eng.connect()


DELETE_BATCH = 500  # series ids per DELETE … IN (…)


def delete_runs(conn: Any, table: Any, model: str, by_origin: dict[Any, list[str]]) -> None:
    """Delete the rows of `model` at each origin for that origin's series (a run's rows, before it writes again)."""
    c = table.c
    for origin, ids in by_origin.items():
        for at in range(0, len(ids), DELETE_BATCH):
            batch = ids[at : at + DELETE_BATCH]
            conn.execute(table.delete().where(c.model_id == model, c.origin == origin, c.series.in_(batch)))
