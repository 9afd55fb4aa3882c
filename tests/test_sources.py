"""Parquet files, SQLite and PostgreSQL in and out, through the real CLI, on real files and servers.

The same series read from CSV, Parquet, SQLite and PostgreSQL must give the same checkpoint
scaler and the same forecast; forecasts written into a table twice must be there once; a write
refused halfway must leave the table as it was; every bad source is one `error:` line, exit 2,
no password in it, nothing written. One model is trained once for the module and reused.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.data import sinks
from lstmcast.model import checkpoint

from . import pg
from .conftest import assert_user_error, cli, sine_csv, write_config

HORIZON = 12
ORDERED = "SELECT timestamp, load, temp FROM load ORDER BY timestamp"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """series.csv, the same rows as series.parquet (typed times, row groups of 100) and load.db; a model and forecast."""
    folder = tmp_path_factory.mktemp("sources")
    sine_csv(folder / "series.csv")
    write_config(folder)
    frame = pd.read_csv(folder / "series.csv")
    typed = frame.assign(timestamp=pd.to_datetime(frame["timestamp"]))
    typed.to_parquet(folder / "series.parquet", row_group_size=100)
    with sqlite3.connect(folder / "load.db") as con:
        frame.to_sql("load", con, index=False)  # times as text, as SQLite keeps them
    assert cli("train", folder / "config.yaml", "--quiet").code == 0
    done = cli("predict", folder / "run" / "model.pt", "--data", folder / "series.csv", "--quiet")
    assert done.code == 0, done.stderr
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("train.log", ".lstmcast.lock")
    }


def rows_of(db: Path, table: str = "forecasts") -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY series, target_time").fetchall()


# ---------------------------------------------------------------------------- same series, every source


@pytest.mark.slow
def test_csv_parquet_and_sqlite_give_the_same_scaler_and_forecast(base: Path, tmp_path: Path) -> None:
    reference = checkpoint.load(base / "run" / "model.pt")
    expected = (base / "run" / "forecast.csv").read_bytes()
    sources = {
        "parquet": ("--data", base / "series.parquet"),
        "sqlite-query": ("--data", sqlite_url(base / "load.db"), "--query", ORDERED),
    }
    for name, data in sources.items():
        trained = cli("train", base / "config.yaml", *data, "--out", tmp_path / name, "--quiet")
        assert trained.code == 0, (name, trained.stderr)
        assert checkpoint.load(tmp_path / name / "model.pt").scaler == reference.scaler, name
        out = tmp_path / name / "forecast.csv"
        predicted = cli("predict", tmp_path / name / "model.pt", *data, "--out", out, "--quiet")
        assert predicted.code == 0, (name, predicted.stderr)
        assert out.read_bytes() == expected, name
    # the table by name, through the checkpoint's own data.query; a gzip CSV and a Parquet folder read alike
    shutil.copytree(tmp_path / "sqlite-query", tmp_path / "again")
    with gzip.open(tmp_path / "series.csv.gz", "wb") as f:
        f.write((base / "series.csv").read_bytes())
    (tmp_path / "folder").mkdir()
    whole = pd.read_parquet(base / "series.parquet")
    whole.iloc[:200].to_parquet(tmp_path / "folder" / "a.parquet")
    whole.iloc[200:].to_parquet(tmp_path / "folder" / "b.parquet")
    for data in (sqlite_url(base / "load.db"), tmp_path / "series.csv.gz", tmp_path / "folder"):
        out = tmp_path / "again" / "f.csv"
        predicted = cli("predict", tmp_path / "again" / "model.pt", "--data", data, "--out", out, "--quiet")
        assert predicted.code == 0, (data, predicted.stderr)
        assert out.read_bytes() == expected, data


# ---------------------------------------------------------------------------- forecasts out


def test_forecasts_into_a_sqlite_table_twice_are_there_once_and_parquet_matches(base: Path, tmp_path: Path) -> None:
    model, db = base / "run" / "model.pt", tmp_path / "out.db"
    for _ in range(2):
        done = cli("predict", model, "--data", base / "series.csv", "--out", sqlite_url(db), "--table", "forecasts")
        assert done.code == 0, done.stderr
        assert "table 'forecasts'" in done.stdout
    rows = rows_of(db)
    csv = pd.read_csv(base / "run" / "forecast.csv")
    assert len(rows) == HORIZON  # the second run replaced the first run's rows
    series, origin, target, model_id, step, forecaster, _issued, load = zip(*rows, strict=True)
    assert set(series) == {""} and set(model_id) == {sinks.model_id(model)} and set(forecaster) == {"model"}
    assert list(step) == list(range(1, HORIZON + 1)) and set(origin) == {target[0]}
    assert [t[:19] for t in target] == csv["timestamp"].tolist()
    np.testing.assert_allclose(load, csv["load"], rtol=1e-7)
    # history too short for the model (40 rows, lookback 48), ending earlier: a baseline serves it, labelled so
    short = tmp_path / "short.csv"
    pd.read_csv(base / "series.csv").iloc[200:240].to_csv(short, index=False)
    refused = cli("predict", model, "--data", short, "--out", tmp_path / "short-f.csv")
    assert_user_error(refused, "the series has 40 rows, but the model reads 48", "--short-history fallback")
    args = ("--out", tmp_path / "short-f.csv", "--short-history", "fallback", "--quiet")
    assert cli("predict", model, "--data", short, *args).code == 0
    assert cli("predict", model, "--data", short, "--out", sqlite_url(db), *args[2:]).code == 0
    baseline = [r for r in rows_of(db) if r[1] != origin[0]]
    expected = pd.read_csv(tmp_path / "short-f.csv")
    assert len(rows_of(db)) == 2 * HORIZON and len(baseline) == HORIZON
    assert [r[5] for r in baseline] == expected["forecaster"].tolist() and baseline[0][5] != "model"
    out = tmp_path / "f.parquet"
    assert cli("predict", model, "--data", base / "series.parquet", "--out", out, "--quiet").code == 0
    parquet = pd.read_parquet(out)
    assert parquet["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist() == csv["timestamp"].tolist()
    np.testing.assert_allclose(parquet["load"], csv["load"], rtol=1e-7)


def test_a_write_refused_halfway_leaves_the_table_as_it_was(base: Path, tmp_path: Path) -> None:
    model, db = base / "run" / "model.pt", tmp_path / "out.db"
    args = ("predict", model, "--data", base / "series.csv", "--out", sqlite_url(db), "--table", "forecasts")
    assert cli(*args).code == 0
    before = rows_of(db)
    with sqlite3.connect(db) as con:  # the 7th row of the next run is refused, after its delete and 6 inserts
        con.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON forecasts WHEN NEW.step = 7 "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    assert_user_error(
        cli(*args), "cannot write the forecast to sqlite:///", "refused by the test", "nothing of this run"
    )
    assert rows_of(db) == before


# ---------------------------------------------------------------------------- bad sources: one line, nothing written


def _parquet_with_text_load(p: Path, b: Path) -> tuple:
    frame = pd.read_parquet(b / "series.parquet").astype({"load": str})
    frame.loc[150, "load"] = "n/a"
    frame.to_parquet(p / "bad.parquet", row_group_size=100)
    return ("predict", "--data", p / "bad.parquet")


def _parquet_without_temp(p: Path, b: Path) -> tuple:
    pd.read_parquet(b / "series.parquet").drop(columns="temp").to_parquet(p / "bad.parquet")
    return ("validate", "--data", p / "bad.parquet")


def _truncated_parquet(p: Path, b: Path) -> tuple:
    data = (b / "series.parquet").read_bytes()
    (p / "bad.parquet").write_bytes(data[: len(data) // 2])
    return ("train", "--data", p / "bad.parquet")


def _parquet_folder_of_two_schemas(p: Path, b: Path) -> tuple:
    (p / "parts").mkdir()
    frame = pd.read_parquet(b / "series.parquet")
    frame.iloc[:200].to_parquet(p / "parts" / "a.parquet")
    frame.iloc[200:].astype({"load": str}).to_parquet(p / "parts" / "b.parquet")
    return ("validate", "--data", p / "parts")


def _empty_parquet(p: Path, b: Path) -> tuple:
    pd.read_parquet(b / "series.parquet").iloc[:0].to_parquet(p / "bad.parquet")
    return ("validate", "--data", p / "bad.parquet")


def _parquet_text_time(p: Path, b: Path) -> tuple:
    frame = pd.read_csv(b / "series.csv")
    frame.loc[5, "timestamp"] = "yesterday"
    frame.to_parquet(p / "bad.parquet")
    return ("evaluate", "--data", p / "bad.parquet")


def _sqlite(p: Path, frame: pd.DataFrame) -> str:
    with sqlite3.connect(p / "bad.db") as con:
        frame.to_sql("load", con, index=False)
    return sqlite_url(p / "bad.db")


def _sqlite_text_in_load(p: Path, b: Path) -> tuple:
    frame = pd.read_csv(b / "series.csv").astype({"load": object})
    frame.loc[41, "load"] = "abc"
    return ("validate", "--data", _sqlite(p, frame), "--query", "load")


def _sqlite_empty_table(p: Path, b: Path) -> tuple:
    return ("predict", "--data", _sqlite(p, pd.read_csv(b / "series.csv").iloc[:0]), "--query", "load")


def _sqlite_query_that_writes(p: Path, b: Path) -> tuple:
    return ("validate", "--data", _sqlite(p, pd.read_csv(b / "series.csv")), "--query", "DELETE FROM load")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with(*args: object) -> Callable[[Path, Path], tuple]:
    return lambda p, b: tuple(a(p, b) if callable(a) else a for a in args)


@dataclass(frozen=True)
class Case:
    make: Callable[[Path, Path], tuple]  # (tmp folder, base) → (command, its data arguments …)
    fragments: tuple[str, ...]
    absent: tuple[str, ...] = ()


CASES = {
    "parquet-text-in-a-number-column": Case(
        _parquet_with_text_load, ("bad.parquet: row group 1: row 151, column 'load': 'n/a' is not a number",)
    ),
    "parquet-missing-column": Case(
        _parquet_without_temp, ("column 'temp' not found; columns are 'timestamp', 'load'",)
    ),
    "parquet-truncated": Case(_truncated_parquet, ("bad.parquet is not a readable Parquet file",)),
    "parquet-folder-of-two-schemas": Case(
        _parquet_folder_of_two_schemas, ("b.parquet: column 'load' is", "in a.parquet", "the same schema")
    ),
    "parquet-no-rows": Case(_empty_parquet, ("bad.parquet has no rows",)),
    "parquet-bad-text-time": Case(
        _parquet_text_time, ("row group 0: row 6: cannot parse 'yesterday' in column 'timestamp'",)
    ),
    "sqlite-missing-table": Case(
        _with("validate", "--data", lambda p, b: sqlite_url(b / "load.db"), "--query", "nope"),
        ("(table 'nope'): no table 'nope'", "tables there: 'load'"),
    ),
    "sqlite-missing-table-in-select": Case(
        _with("predict", "--data", lambda p, b: sqlite_url(b / "load.db"), "--query", "SELECT * FROM nope"),
        ("(query 'SELECT * FROM nope'): the query failed: no such table: nope",),
    ),
    "sqlite-syntax-error": Case(
        _with("validate", "--data", lambda p, b: sqlite_url(b / "load.db"), "--query", "SELEC * FROM load"),
        ("the query failed", "syntax error", "check data.query"),
    ),
    "sqlite-text-in-a-number-column": Case(_sqlite_text_in_load, ("(table 'load'): row 42, column 'load': 'abc'",)),
    "sqlite-empty-table": Case(_sqlite_empty_table, ("(table 'load') has no rows",)),
    "sqlite-query-that-writes": Case(_sqlite_query_that_writes, ("the query failed", "readonly database")),
    "sqlite-file-missing": Case(
        _with("validate", "--data", lambda p, b: sqlite_url(p / "none.db"), "--query", "load"),
        ("database file", "none.db", "not found"),
    ),
    "url-without-query": Case(
        _with("train", "--data", lambda p, b: sqlite_url(b / "load.db")), ("needs a table name or a SELECT",)
    ),
    "password-in-clear": Case(
        _with("validate", "--data", "postgresql://u:hunter2@127.0.0.1:1/db", "--query", "load"),
        ("postgresql://u:***@127.0.0.1:1/db holds a password in clear", "${PGPASSWORD}"),
        absent=("hunter2",),
    ),
    "password-variable-unset": Case(
        _with("predict", "--data", "postgresql://u:${LSTMCAST_NOT_SET}@127.0.0.1:1/db", "--query", "load"),
        ("refers to ${LSTMCAST_NOT_SET}, which is not set in the environment",),
    ),
    "unreachable-server": Case(
        _with("validate", "--data", lambda p, b: f"postgresql://u@127.0.0.1:{_free_port()}/db", "--query", "load"),
        ("cannot connect to postgresql://u@127.0.0.1:", "Connection refused", "check the host, port"),
    ),
    "unknown-database-kind": Case(
        _with("validate", "--data", "nosuchdb://h/x", "--query", "load"), ("unknown database kind 'nosuchdb'",)
    ),
    "zstd-csv": Case(_with("validate", "--data", lambda p, b: p / "x.csv.zst"), ("zstd-compressed CSV",)),
    "gzip-csv-not-gzip": Case(
        _with("validate", "--data", lambda p, b: shutil.copy(b / "series.csv", p / "x.csv.gz")),
        ("x.csv.gz", "gzip"),
    ),
    "query-with-a-file": Case(
        _with("predict", "--data", lambda p, b: b / "series.csv", "--query", "load"), ("--query reads from a database",)
    ),
    "table-with-a-file-out": Case(
        _with("predict", "--data", lambda p, b: b / "series.csv", "--out", lambda p, b: p / "f.csv", "--table", "t"),
        ("--table needs --out DATABASE_URL",),
    ),
}


def _run(base: Path, command: str, *args: object):
    model = base / "run" / "model.pt"
    head = {
        "train": ("train", base / "config.yaml"),
        "validate": ("validate", base / "config.yaml"),
        "predict": ("predict", model),
        "evaluate": ("evaluate", model),
    }[command]
    return cli(*head, *args, "--quiet")


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_source_is_one_line_and_writes_nothing(name: str, base: Path, tmp_path: Path) -> None:
    case = CASES[name]
    command, *args = case.make(tmp_path, base)
    if command == "train":
        args += ["--out", tmp_path / "run"]
    if command == "predict" and "--out" not in args:
        args += ["--out", tmp_path / "forecast.csv"]
    before, base_before = snapshot(tmp_path), snapshot(base)
    result = _run(base, command, *args)
    assert_user_error(result, *case.fragments)
    for secret in case.absent:
        assert secret not in result.stderr + result.stdout
    assert snapshot(tmp_path) == before and snapshot(base) == base_before


@pytest.mark.parametrize(
    ("module", "extra", "data"),
    [
        ("pyarrow", "parquet", lambda b: b / "series.parquet"),
        ("sqlalchemy", "sql", lambda b: sqlite_url(b / "load.db")),
        ("psycopg", "postgres", lambda b: "postgresql://u@127.0.0.1:1/db"),
    ],
)
def test_a_missing_extra_is_named_before_any_work(module, extra, data, base, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails, as where it is not installed
    query = () if module == "pyarrow" else ("--query", "load")
    result = cli("train", base / "config.yaml", "--data", data(base), *query, "--out", tmp_path / "r")
    assert_user_error(result, f"needs {module}", f"pip install 'lstmcast[{extra}]'")
    assert not (tmp_path / "r").exists()
    out = cli("predict", base / "run" / "model.pt", "--data", base / "series.csv", "--out", tmp_path / "f.parquet")
    if module == "pyarrow":
        assert_user_error(out, "pip install 'lstmcast[parquet]'")
        assert not (tmp_path / "f.parquet").exists()


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def postgres(base: Path) -> tuple[pg.Server, str]:
    """The test server with the series as a table of typed columns (timestamp, double precision)."""
    server = pg.server()
    engine = server.engine()
    frame = pd.read_csv(base / "series.csv")
    table = pg.table_name("load")
    frame.assign(timestamp=pd.to_datetime(frame["timestamp"])).to_sql(table, engine, index=False)
    engine.dispose()
    return server, table


@pytest.mark.slow
def test_postgres_in_and_out_like_every_other_source(postgres, base: Path, tmp_path: Path, monkeypatch) -> None:
    server, table = postgres
    monkeypatch.setenv(pg.PASSWORD_VAR, server.password)
    reference = checkpoint.load(base / "run" / "model.pt")
    expected = (base / "run" / "forecast.csv").read_bytes()
    select = f"SELECT * FROM {table} WHERE load > -1e9 AND 'a' LIKE 'a%' ORDER BY timestamp"  # a % passes through
    for name, query in (("table", table), ("select", select)):
        trained = cli("train", base / "config.yaml", "--data", server.url(), "--query", query, "--out", tmp_path / name)
        assert trained.code == 0, trained.stderr
        assert checkpoint.load(tmp_path / name / "model.pt").scaler == reference.scaler
        out = tmp_path / name / "f.csv"
        assert cli("predict", tmp_path / name / "model.pt", "--data", server.url(), "--out", out).code == 0
        assert out.read_bytes() == expected
    out_table = pg.table_name("forecasts")
    args = ("predict", base / "run" / "model.pt", "--data", server.url(), "--query", table, "--out", server.url())
    for _ in range(2):
        done = cli(*args, "--table", out_table, "--quiet")
        assert done.code == 0, done.stderr
        assert server.password not in done.stdout + done.stderr
    engine = server.engine()
    count = f"SELECT count(*), count(DISTINCT target_time), min(step), max(step) FROM {out_table}"
    with engine.connect() as conn:
        assert tuple(conn.exec_driver_sql(count).one()) == (HORIZON, HORIZON, 1, HORIZON)
        before = conn.exec_driver_sql(f"SELECT * FROM {out_table} ORDER BY step").fetchall()
        conn.exec_driver_sql(f"ALTER TABLE {out_table} ADD CONSTRAINT small CHECK (step < 7) NOT VALID")
        conn.commit()
    refused = cli(*args, "--table", out_table)
    assert_user_error(
        refused, "cannot write the forecast to postgresql://lstmcast:***@", "small", "nothing of this run"
    )
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT * FROM {out_table} ORDER BY step").fetchall() == before
    engine.dispose()


def test_postgres_errors_are_one_line_without_the_password(postgres, base: Path, tmp_path, monkeypatch) -> None:
    server, table = postgres
    engine = server.engine()
    text_table = pg.table_name("text")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {text_table} (timestamp timestamp, load text, temp double precision)")
        conn.exec_driver_sql(f"INSERT INTO {text_table} SELECT timestamp, load::text, temp FROM {table}")
        conn.exec_driver_sql(f"UPDATE {text_table} SET load = 'abc' WHERE timestamp = '2024-01-02 03:00'")
        conn.commit()
    engine.dispose()
    model = base / "run" / "model.pt"
    monkeypatch.setenv(pg.PASSWORD_VAR, "wrong-" + server.password[:6])
    wrong = cli("predict", model, "--data", server.url(), "--query", table, "--out", tmp_path / "f.csv")
    assert_user_error(wrong, "cannot connect to postgresql://lstmcast:***@", "password authentication failed")
    assert "wrong-" not in wrong.stderr + wrong.stdout and server.password not in wrong.stderr
    monkeypatch.setenv(pg.PASSWORD_VAR, server.password)
    cases = {
        "nope": ("no table 'nope'",),
        "SELECT * FROM nope": ("the query failed", 'relation "nope" does not exist'),
        f"SELECT * FROM {text_table} ORDER BY timestamp": ("row 28, column 'load': 'abc' is not a number",),
    }
    for query, fragments in cases.items():
        result = cli("validate", base / "config.yaml", "--data", server.url(), "--query", query)
        assert_user_error(result, *fragments)
        assert server.password not in result.stderr + result.stdout
    assert not (tmp_path / "f.csv").exists()
