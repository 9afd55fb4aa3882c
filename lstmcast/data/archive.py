"""The forecast archive: every issued forecast, kept in a database to score against what happened.

`predict --archive URL` (or `archive.url`, or LSTMCAST_ARCHIVE) records each run here; `lstmcast
score` reads it back. Any SQLAlchemy URL works; a plain path is a SQLite file. The schema is
versioned in `lstmcast_archive`; an archive of an older version is migrated (MIGRATIONS) in one
transaction when it is next opened, and one written by a newer lstmcast is refused untouched.

Schema version 1 (docs/job.md):

    lstmcast_archive    key text PRIMARY KEY, value text            schema_version, created_at
    lstmcast_models     model_id text PRIMARY KEY                   one row per checkpoint that issued forecasts:
                        checkpoint, freq, season, horizon, timestamp_col, series_col, targets (JSON),
                        quantiles (JSON), levels (JSON: per series, the training mean and std of each
                        target, for drift), first_issued
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

from lstmcast.data import db
from lstmcast.errors import ConfigError, DataError, OutputError
from lstmcast.locations import is_url

SCHEMA_VERSION = 1
MIGRATIONS: dict[int, Callable[[Any], None]] = {}  # version → the step to version + 1, run in one transaction
ENV = "LSTMCAST_ARCHIVE"  # the archive of every run that names none (a crontab sets it once)


def url_of(location: str | Path) -> str:
    """A database URL as given; a file path as the URL of that SQLite file (absolute)."""
    text = str(location)
    if is_url(text):
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def resolve(flag: str | None, *, off: bool = False, configured: str | None = None) -> Archive | None:
    """The archive a run uses: none with `off` (--no-archive), else --archive, else $LSTMCAST_ARCHIVE (a path there
    is relative to the working directory), else the config's archive.url; its extras and URL checked now."""
    if off:
        return None
    location = flag or os.environ.get(ENV) or configured
    if not location:
        return None
    store = Archive(url_of(location))
    store.require()
    return store


@dataclass(frozen=True)
class Issued:
    """One predict run's forecasts, as the archive keeps them."""

    model_id: str
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


@dataclass(frozen=True)
class Archived:
    """What `read` returns: forecast points, their quantiles, and the models that issued them."""

    points: pd.DataFrame  # series, origin, target_time, model_id, target, step, value, forecaster, issued_at
    quantiles: pd.DataFrame  # series, origin, target_time, model_id, target, level, value
    models: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Archive:
    url: str

    def __str__(self) -> str:
        return f"archive {db.redacted(self.url)}"

    def require(self) -> None:
        """Before any work: the extras, and a URL without a password in clear."""
        db.require_for_url(self.url)
        db.parse(self.url, "--archive")

    @contextmanager
    def _connection(self, reading: bool) -> Iterator[tuple[Any, dict[str, Any], str | None]]:
        engine, secret = db.engine(self.url, role="--archive", reading=reading)
        error = DataError if reading else OutputError
        try:
            with db.connect(engine, str(self), secret, error) as conn:
                yield conn, _tables(), secret
        finally:
            engine.dispose()

    def record(self, run: Issued) -> int:
        """Write one run's forecasts (replacing a rerun's) in one transaction; the number of forecast rows."""
        points, quantiles = _rows(run)
        with self._connection(reading=False) as (conn, tables, secret):
            fix = "nothing was archived; fix the cause and rerun predict (archiving is idempotent)"
            with db.failures(OutputError, f"cannot write to {self}", fix, secret), conn.begin():
                _open(conn, tables, str(self), create=True)
                _register(conn, tables["models"], run)
                _delete_run(conn, tables, run)
                conn.execute(tables["forecasts"].insert(), points)
                if quantiles:
                    conn.execute(tables["quantiles"].insert(), quantiles)
        return len(points)

    def read(self, since: datetime | None, until: datetime | None) -> Archived:
        """Forecast rows whose target time lies in [since, until], with their quantiles and models."""
        import sqlalchemy as sa

        with self._connection(reading=True) as (conn, tables, secret):
            fix = "check the archive URL (it is the one predict --archive wrote to)"
            with db.failures(DataError, f"cannot read {self}", fix, secret), conn.begin():
                _open(conn, tables, str(self), create=False)
                points = _frame(conn.execute(_window(tables["forecasts"], since, until)))
                quantiles = _frame(conn.execute(_window(tables["quantiles"], since, until)))
                models = {r.model_id: _model_row(r) for r in conn.execute(sa.select(tables["models"]))}
        return Archived(points, quantiles, models)


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


def _open(conn: Any, tables: dict[str, Any], label: str, *, create: bool) -> None:
    """Check (or create) the schema: a newer archive is refused, an older one migrated step by step."""
    import sqlalchemy as sa

    meta = tables["meta"]
    if not sa.inspect(conn).has_table(meta.name):
        if not create:
            raise DataError(f"{label} holds no forecasts yet — predict --archive writes them")
        meta.metadata.create_all(conn)
        conn.execute(
            meta.insert(),
            [
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                {"key": "created_at", "value": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            ],
        )
        return
    raw = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise DataError(f"{label}: lstmcast_archive has no schema_version — it was not written by lstmcast") from None
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{label} has schema version {version}, newer than this lstmcast's {SCHEMA_VERSION} — upgrade lstmcast"
        )
    if version < SCHEMA_VERSION and not create:
        raise DataError(f"{label} has schema version {version} — run predict --archive once to migrate it")
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))


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
    out = dict(row._mapping)
    for key in ("targets", "quantiles", "levels"):
        out[key] = json.loads(out[key])
    return out
