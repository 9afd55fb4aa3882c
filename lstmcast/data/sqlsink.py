"""Forecasts into a database table: one transaction per run, idempotent by key.

`predict --out URL --table NAME` writes here. The table is created when missing with the schema
below (docs/data.md, "Data sources"); an existing table must have every column a run writes. A run's
rows are keyed by (series, origin, target_time, model_id): in ONE transaction the rows of the
same series, origin and model are deleted and this run's rows inserted, so a cron job that runs
twice leaves one copy, and a failure anywhere (a constraint, a lost connection) rolls back to
what was there before — no row of a failed run is ever visible.

    series       text       NOT NULL  the series id ('' for data with one series)
    origin       timestamp  NOT NULL  the first forecast time (the --out {origin} placeholder);
                                      for data without timestamps, a row number (bigint)
    target_time  timestamp  NOT NULL  the time forecast (bigint row number without timestamps)
    model_id     text       NOT NULL  first 16 hex digits of the SHA-256 of model.pt (`sinks.model_id`)
    step         integer    NOT NULL  1 … horizon
    forecaster   text       NOT NULL  model, seasonal_naive or naive: the forecast's forecaster column
    issued_at    timestamp with time zone NOT NULL  when the run wrote the row (UTC)
    <target>, <target>_q10, …  double precision  one per forecast column, as in the CSV
    PRIMARY KEY (series, origin, target_time, model_id)

Times with a time zone are written in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmcast.atomic import write_target
from lstmcast.data import db
from lstmcast.data.sinks import model_id
from lstmcast.errors import ConfigError, OutputError, shown

KEY = ("series", "origin", "target_time", "model_id")
FIXED = (*KEY, "step", "forecaster", "issued_at")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


@dataclass(frozen=True)
class Table:
    """A forecast destination: a database URL, a table name, and the checkpoint whose hash keys the rows
    (`loaded`: the id of the bytes predict actually loaded, when known), and how long the database may take."""

    url: str
    name: str
    model: Path
    loaded: str | None = None
    timeout: float = 600.0

    def __str__(self) -> str:
        return f"{db.redacted(self.url)} table {shown(self.name)}"

    def require(self) -> None:
        """Before any work: the extras, a URL without a password in clear, a plain table name."""
        db.require_for_url(self.url)
        parsed = db.parse(self.url, "--out")
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            write_target(Path(parsed.database))  # a device, FIFO, folder or read-only file: refused before any work
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"--table {shown(self.name)} is not a table name — use letters, digits and _ (schema.name)"
            )

    def write_forecast(self, frame: pd.DataFrame, label_name: str, series_col: str | None) -> None:
        """This run's forecast rows, replacing those of the same series, origin and model, in one transaction."""
        rows, values, timed = _rows(frame, label_name, series_col, self.loaded or model_id(self.model))
        clash = [c for c in values if c in FIXED]
        if clash:
            raise OutputError(f"a forecast column is named {shown(clash[0])}, which the table schema uses — rename it")
        link = db.engine(self.url, role="--out", reading=False, timeout=self.timeout)
        label = str(self)
        try:
            with link.connect(label, OutputError) as conn:
                fix = "nothing of this run was written; fix the cause and run again"
                with link.failures(OutputError, f"cannot write the forecast to {label}", fix), conn.begin():
                    table = _table(conn, self.name, values, timed, label)
                    _replace(conn, table, rows)
        finally:
            link.dispose()


def _rows(
    frame: pd.DataFrame, label_name: str, series_col: str | None, model: str
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """The frame as table rows, the value columns, and whether the labels are times."""
    n = len(frame)
    series = frame[series_col].astype(str).to_numpy() if series_col else np.full(n, "", dtype=object)
    times = frame[label_name]
    timed = times.dtype.kind == "M"
    if timed and isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert("UTC")
    labels = [t.to_pydatetime() for t in times] if timed else [int(t) for t in times]
    step = pd.Series(series).groupby(series, sort=False).cumcount().to_numpy() + 1
    first = {}
    for sid, when, k in zip(series, labels, step, strict=True):
        if k == 1:
            first[sid] = when
    forecaster = frame["forecaster"].astype(str).tolist() if "forecaster" in frame else ["model"] * n
    values = [c for c in frame.columns if c not in (series_col, label_name, "forecaster")]
    numbers = {c: frame[c].astype(float).tolist() for c in values}
    issued = datetime.now(timezone.utc)
    rows = [
        {
            "series": str(series[i]),
            "origin": first[series[i]],
            "target_time": labels[i],
            "model_id": model,
            "step": int(step[i]),
            "forecaster": forecaster[i],
            "issued_at": issued,
            **{c: numbers[c][i] for c in values},
        }
        for i in range(n)
    ]
    return rows, values, timed


def _table(conn: Any, name: str, values: list[str], timed: bool, label: str) -> Any:
    """The forecast table, created when missing; an existing one must have every column this run writes."""
    import sqlalchemy as sa

    schema, _, table_name = name.rpartition(".")
    when = sa.DateTime(timezone=True) if timed else sa.BigInteger()
    table = sa.Table(
        table_name,
        sa.MetaData(),
        sa.Column("series", sa.Text, nullable=False),
        sa.Column("origin", when, nullable=False),
        sa.Column("target_time", when, nullable=False),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("forecaster", sa.Text, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(c, sa.Double) for c in values],
        sa.PrimaryKeyConstraint(*KEY),
        schema=schema or None,
    )
    inspector = sa.inspect(conn)
    if not inspector.has_table(table_name, schema=schema or None):
        table.create(conn)
        return table
    present = {c["name"] for c in inspector.get_columns(table_name, schema=schema or None)}
    absent = [c.name for c in table.columns if c.name not in present]
    if absent:
        raise OutputError(
            f"{label} has no column {shown(absent[0])} (it was made for other forecasts) — write to another --table, "
            "or add the column"
        )
    return table


def _replace(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """Delete the rows of this run's (series, origin, model_id), then insert this run's rows."""
    by_origin: dict[Any, list[str]] = {}
    for row in rows:
        if row["step"] == 1:
            by_origin.setdefault(row["origin"], []).append(row["series"])
    db.delete_runs(conn, table, rows[0]["model_id"], by_origin)
    conn.execute(table.insert(), rows)
