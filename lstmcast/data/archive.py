"""The forecast archive: every issued forecast, kept in a database to score against what happened.

`predict --archive URL` (or `archive.url`, or LSTMCAST_ARCHIVE) records each run here; `lstmcast
score` reads it back. Any SQLAlchemy URL works; a plain path is a SQLite file. The schema is
versioned in `lstmcast_archive`; an archive of an older version is migrated (MIGRATIONS) in one
transaction when predict next writes to it (score reads it as it is), and one written by a newer
lstmcast is refused untouched.

An archive is recognised by its metadata only. It is created where none of its tables exist (and,
for a SQLite file, no other table either: an archive is a file of its own); a database holding some
of its tables but no `lstmcast_archive`, or a SQLite file of other tables, is refused untouched,
naming what was found. The one exception is an archive whose creation an older lstmcast left
unfinished (its tables present and empty, no schema_version): it is completed.

Every write is one transaction that creates the schema (if new), registers the model and replaces
the run's rows, serialised among writers (SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock):
two cron jobs writing at the same minute queue instead of colliding, and a failure anywhere leaves
the archive as it was (no half-created schema). A SQLite archive path follows the output rules
(`db.engine`): a regular file, not read-only, nothing created beside a device.

Schema version 2 (docs/job.md):

    lstmcast_archive    key text PRIMARY KEY, value text            schema_version, created_at
    lstmcast_models     model_id text PRIMARY KEY                   one row per checkpoint that issued forecasts:
                        checkpoint, freq, season, horizon, timestamp_col, series_col, targets (JSON),
                        quantiles (JSON), levels (JSON: per series, the training mean and std of each
                        target, for drift), first_issued, time_zone (version 2: '' for naive times,
                        else the zone of the data, whose times are stored in UTC; NULL: not recorded)
    lstmcast_forecasts  series, origin, target_time, model_id, target   PRIMARY KEY
                        step, value, forecaster, issued_at
    lstmcast_quantiles  series, origin, target_time, model_id, target, level   PRIMARY KEY
                        value

Times are stored without a time zone: data with time zones are converted to UTC first. `origin`
is the first forecast time (as in forecast tables and the --out {origin} placeholder); `series`
is '' for data with one series. Idempotency: in one transaction, a run deletes the rows of its
(model_id, origin, series) and inserts its own, so a rerun leaves one copy and a failure leaves
the archive as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.atomic import write_target
from lstmcast.config import ArchiveConfig, timeout_seconds
from lstmcast.data import db
from lstmcast.errors import ConfigError, DataError, OutputError, shown
from lstmcast.locations import is_url, refuse_secrets

SCHEMA_VERSION = 2
ENV = "LSTMCAST_ARCHIVE"  # the archive of every run that names none (a crontab sets it once)
NAMES = ("lstmcast_archive", "lstmcast_models", "lstmcast_forecasts", "lstmcast_quantiles")


def url_of(location: str | Path) -> str:
    """A database URL as given; a file path as the URL of that SQLite file (absolute)."""
    text = str(location)
    if is_url(text):
        return text
    return f"sqlite:///{os.path.abspath(Path(text).expanduser())}"  # a link is kept: the output rules judge it


def resolve(
    flag: str | None,
    *,
    off: bool = False,
    configured: str | None = None,
    timeout: str | None = None,
    writing: bool = True,
) -> Archive | None:
    """The archive a run uses: none with `off` (--no-archive), else --archive, else $LSTMCAST_ARCHIVE (a path there
    is relative to the working directory), else the config's archive.url; its extras, URL and file checked now.

    An empty --archive or LSTMCAST_ARCHIVE (an unset variable in a crontab) is an error, not "no archive";
    `timeout` is archive.timeout (its default when None).
    """
    if off:
        return None
    for name, given in (("--archive", flag), (ENV, os.environ.get(ENV))):
        if given is not None and not given.strip():
            raise ConfigError(
                f"{name} is empty — give the archive's database URL or SQLite file, or pass --no-archive to "
                "record nothing (in a crontab, an unset variable gives '')"
            )
    location = flag or os.environ.get(ENV) or configured
    if not location:
        return None
    refuse_secrets(location, "--archive")
    store = Archive(url_of(location), timeout_seconds(timeout or ArchiveConfig.timeout, "archive.timeout"))
    store.require(writing)
    return store


@dataclass(frozen=True)
class Issued:
    """One predict run's forecasts, as the archive keeps them."""

    model_id: str  # the first 16 hex digits of the SHA-256 of the checkpoint bytes predict loaded
    checkpoint: str
    freq: str
    season: int
    horizon: int
    timestamp_col: str
    series_col: str | None
    targets: list[str]
    quantiles: list[float]
    levels: dict[str, list[list[float]]]  # series → [training means, training stds] of the targets
    ids: list[str]  # '' for one unnamed series
    times: np.ndarray  # (series, horizon) datetime64: the horizon's times (UTC, without a zone)
    values: np.ndarray  # (series, horizon, targets · (1 + quantiles)): points, then each level's targets
    forecasters: list[str]
    time_zone: str | None = None  # '' for naive times; the data's zone (times stored in UTC); None: unknown


@dataclass(frozen=True)
class Archived:
    """What `read` returns: forecast points, their quantiles, and the models that issued them."""

    points: pd.DataFrame  # series, origin, target_time, model_id, target, step, value, forecaster, issued_at
    quantiles: pd.DataFrame  # series, origin, target_time, model_id, target, level, value
    models: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Archive:
    url: str
    timeout: float = 120.0  # archive.timeout, in seconds

    def __str__(self) -> str:
        return f"archive {db.redacted(self.url)}"

    def require(self, writing: bool = True) -> None:
        """Before any work: the extras, a URL without a secret in clear, and a SQLite file that may be written
        (a regular file, not read-only: the output rules) or read (one that exists)."""
        db.require_for_url(self.url)
        parsed = db.parse(self.url, "--archive")
        if parsed.get_backend_name() != "sqlite":
            return
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(f"{self} is an in-memory database, which keeps nothing — give a file or a URL")
        path = Path(parsed.database)
        if writing:
            write_target(path)  # a device, FIFO, folder or read-only file: refused now
        elif not path.exists() and not path.is_symlink():
            raise DataError(f"{self}: database file {parsed.database} not found — check the path")
        if path.is_file():
            db.check_sqlite_file(path, self.url)  # a text file, say, is refused before any work

    @contextmanager
    def _connection(self, reading: bool) -> Iterator[tuple[Any, dict[str, Any], db.Link]]:
        link = db.engine(self.url, role="--archive", reading=reading, timeout=self.timeout, knob="archive.timeout")
        error = DataError if reading else OutputError
        try:
            with link.connect(str(self), error) as conn:
                yield conn, _tables(), link
        finally:
            link.dispose()

    def record(self, run: Issued) -> int:
        """Write one run's forecasts (replacing a rerun's) in one transaction; the number of forecast rows.

        The transaction creates the schema if new, registers the model and replaces the run's rows; writers
        queue for it (SQLite BEGIN IMMEDIATE, a PostgreSQL advisory lock), so two runs never collide."""
        points, quantiles = _rows(run)
        with self._connection(reading=False) as (conn, tables, link):
            fix = "nothing was archived; fix the cause and rerun predict (archiving is idempotent)"
            with link.failures(OutputError, f"cannot write to {self}", fix), conn.begin():
                _queue(conn)
                _open(conn, tables, str(self), create=True)
                _register(conn, tables["models"], run)
                _delete_run(conn, tables, run)
                conn.execute(tables["forecasts"].insert(), points)
                if quantiles:
                    conn.execute(tables["quantiles"].insert(), quantiles)
        return len(points)

    def read(self, since: datetime | None, until: datetime | None) -> Archived:
        """Forecast rows whose target time lies in [since, until], with their quantiles and models (read-only)."""
        import sqlalchemy as sa

        with self._connection(reading=True) as (conn, tables, link):
            fix = "check the archive URL (it is the one predict --archive wrote to)"
            with link.failures(DataError, f"cannot read {self}", fix), conn.begin():
                version = _open(conn, tables, str(self), create=False)
                models = tables["models"]
                columns = [c for c in models.c if version >= 2 or c.name != "time_zone"]
                points = _frame(conn.execute(_window(tables["forecasts"], since, until)))
                quantiles = _frame(conn.execute(_window(tables["quantiles"], since, until)))
                found = {r.model_id: _model_row(r) for r in conn.execute(sa.select(*columns))}
        return Archived(points, quantiles, found)


def _window(table: Any, since: datetime | None, until: datetime | None) -> Any:
    import sqlalchemy as sa

    query = sa.select(table)
    if since is not None:
        query = query.where(table.c.target_time >= since)
    if until is not None:
        query = query.where(table.c.target_time <= until)
    return query


def _tables() -> dict[str, Any]:
    import sqlalchemy as sa

    meta = sa.MetaData()

    def key() -> list[Any]:
        return [
            sa.Column("series", sa.Text, nullable=False),
            sa.Column("origin", sa.DateTime, nullable=False),
            sa.Column("target_time", sa.DateTime, nullable=False),
            sa.Column("model_id", sa.Text, nullable=False),
            sa.Column("target", sa.Text, nullable=False),
        ]

    return {
        "meta": sa.Table(
            "lstmcast_archive", meta, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text)
        ),
        "models": sa.Table(
            "lstmcast_models",
            meta,
            sa.Column("model_id", sa.Text, primary_key=True),
            *[sa.Column(c, sa.Text) for c in ("checkpoint", "freq", "timestamp_col", "series_col")],
            sa.Column("season", sa.Integer, nullable=False),
            sa.Column("horizon", sa.Integer, nullable=False),
            *[sa.Column(c, sa.Text, nullable=False) for c in ("targets", "quantiles", "levels")],
            sa.Column("first_issued", sa.DateTime(timezone=True), nullable=False),
            sa.Column("time_zone", sa.Text),
        ),
        "forecasts": sa.Table(
            "lstmcast_forecasts",
            meta,
            *key(),
            sa.Column("step", sa.Integer, nullable=False),
            sa.Column("value", sa.Double, nullable=False),
            sa.Column("forecaster", sa.Text, nullable=False),
            sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("series", "origin", "target_time", "model_id", "target"),
        ),
        "quantiles": sa.Table(
            "lstmcast_quantiles",
            meta,
            *key(),
            sa.Column("level", sa.Double, nullable=False),
            sa.Column("value", sa.Double, nullable=False),
            sa.PrimaryKeyConstraint("series", "origin", "target_time", "model_id", "target", "level"),
        ),
    }


def _queue(conn: Any) -> None:
    """Writers to one PostgreSQL archive (schema) take turns: creating it, registering a model and replacing a run's
    rows happen as if alone. (SQLite's BEGIN IMMEDIATE, in `db.engine`, does the same for a file.)"""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext('lstmcast_archive.' || coalesce(current_schema(), '')))"
        )


def _open(conn: Any, tables: dict[str, Any], label: str, *, create: bool) -> int:
    """Check (or create) the schema; its version. A newer archive is refused, an older one migrated step by step
    (when writing); a database that is not an archive is refused untouched, naming what it holds."""
    import sqlalchemy as sa

    meta = tables["meta"]
    present = set(sa.inspect(conn).get_table_names())
    if meta.name not in present:
        _refuse_foreign(conn, present, label, create)
        meta.metadata.create_all(conn)
        _stamp(conn, meta)
        return SCHEMA_VERSION
    raw = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if raw is None and create and _unfinished(conn, tables, present):
        meta.metadata.create_all(conn)  # an archive an older lstmcast began and never finished: finish it
        _stamp(conn, meta)
        return SCHEMA_VERSION
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise DataError(
            f"{label}: lstmcast_archive has no schema_version — it was not written by lstmcast, or was edited; "
            "lstmcast leaves it untouched — give another archive"
        ) from None
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{label} has schema version {version}, newer than this lstmcast's {SCHEMA_VERSION} — upgrade lstmcast"
        )
    while create and version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
    return version


def _refuse_foreign(conn: Any, present: set[str], label: str, create: bool) -> None:
    """No lstmcast_archive: a new archive may be made only where nothing claims to be one (nor, in a SQLite
    file, anything else); score has nothing to read either way."""
    ours = sorted(present & set(NAMES))
    others = sorted(present - set(NAMES))
    if ours:
        raise DataError(
            f"{label} holds {', '.join(map(shown, ours))} but no lstmcast_archive: it is not an archive lstmcast "
            "wrote (or it was damaged), and lstmcast leaves it untouched — give another archive"
        )
    if others and (conn.dialect.name == "sqlite" or not create):
        some = ", ".join(shown(t, 40) for t in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise DataError(
            f"{label} is not an lstmcast archive: it holds other tables ({some}) and no lstmcast_archive; "
            "lstmcast leaves it untouched — give a new file (or database schema) for the archive"
        )
    if not create:
        raise DataError(f"{label} holds no forecasts yet — predict --archive writes them")


def _unfinished(conn: Any, tables: dict[str, Any], present: set[str]) -> bool:
    """lstmcast's tables, every one empty, and no schema_version: a creation cut short before it was one step."""
    import sqlalchemy as sa

    for table in tables.values():
        if table.name in present and conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            return False
    return True


def _stamp(conn: Any, meta: Any) -> None:
    conn.execute(meta.delete())
    conn.execute(
        meta.insert(),
        [
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "created_at", "value": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        ],
    )


def _add_time_zone(conn: Any) -> None:
    """Version 1 → 2: lstmcast_models.time_zone (NULL for the models archived before: not recorded)."""
    conn.exec_driver_sql("ALTER TABLE lstmcast_models ADD COLUMN time_zone TEXT")


MIGRATIONS: dict[int, Callable[[Any], None]] = {1: _add_time_zone}  # version → the step to version + 1


def _register(conn: Any, models: Any, run: Issued) -> None:
    """The issuing model's row, once (its facts never change: the id is the file's hash)."""
    import sqlalchemy as sa

    if conn.execute(sa.select(models.c.model_id).where(models.c.model_id == run.model_id)).first():
        return
    conn.execute(
        models.insert(),
        {
            "model_id": run.model_id,
            "checkpoint": run.checkpoint,
            "freq": run.freq,
            "timestamp_col": run.timestamp_col,
            "series_col": run.series_col,
            "season": run.season,
            "horizon": run.horizon,
            "targets": json.dumps(run.targets),
            "quantiles": json.dumps(run.quantiles),
            "levels": json.dumps(run.levels),
            "first_issued": datetime.now(timezone.utc),
            "time_zone": run.time_zone,
        },
    )


def _delete_run(conn: Any, tables: dict[str, Any], run: Issued) -> None:
    """Rows of the same model, origin and series as this run's: a rerun replaces them."""
    by_origin: dict[datetime, list[str]] = {}
    origins = pd.DatetimeIndex(np.asarray(run.times)[:, 0]).to_pydatetime().tolist()
    for sid, origin in zip(run.ids, origins, strict=True):
        by_origin.setdefault(origin, []).append(sid)
    for name in ("quantiles", "forecasts"):
        db.delete_runs(conn, tables[name], run.model_id, by_origin)


def _rows(run: Issued) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run as rows of lstmcast_forecasts and lstmcast_quantiles, built from arrays (no loop over series)."""
    issued = datetime.now(timezone.utc)
    n, horizon = run.values.shape[:2]
    nt = len(run.targets)
    when = pd.DatetimeIndex(np.asarray(run.times).ravel()).to_pydatetime()
    key = {
        "series": np.repeat(np.asarray(run.ids, dtype=object), horizon).tolist(),
        "origin": np.repeat(when.reshape(n, horizon)[:, 0], horizon).tolist(),
        "target_time": when.tolist(),
    }
    step = np.tile(np.arange(1, horizon + 1), n).tolist()
    names = np.repeat(np.asarray(run.forecasters, dtype=object), horizon).tolist()
    points, quantiles = [], []
    for j, target in enumerate(run.targets):
        values = run.values[:, :, j].ravel().tolist()
        points += [
            {"series": s, "origin": o, "target_time": t, "model_id": run.model_id, "target": target, "step": k,
             "value": v, "forecaster": f, "issued_at": issued}
            for s, o, t, k, v, f in zip(key["series"], key["origin"], key["target_time"], step, values, names, strict=True)
        ]  # fmt: skip
        for q, level in enumerate(run.quantiles):
            values = run.values[:, :, nt * (q + 1) + j].ravel().tolist()
            quantiles += [
                {"series": s, "origin": o, "target_time": t, "model_id": run.model_id, "target": target,
                 "level": level, "value": v}
                for s, o, t, v in zip(key["series"], key["origin"], key["target_time"], values, strict=True)
            ]  # fmt: skip
    return points, quantiles


def _frame(result: Any) -> pd.DataFrame:
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _model_row(row: Any) -> dict[str, Any]:
    out = {"time_zone": None, **dict(row._mapping)}
    for key in ("targets", "quantiles", "levels"):
        out[key] = json.loads(out[key])
    return out
