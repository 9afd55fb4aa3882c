"""Families 2 and 7 of the trust tables: databases that never answer, and queries that try to write.

2. data.timeout and archive.timeout bound connecting and every statement. A real lock held by another
   connection (PostgreSQL `LOCK TABLE`, a SQLite writer in another process), a query that never ends: each
   run ends within seconds in one line naming the key, exit 2, and a write it interrupted left nothing.
7. Sources are opened read-only: SQLite through `mode=ro` with ATTACH refused (so `VACUUM INTO` cannot make a
   file either), PostgreSQL in read-only transactions; a query that writes fails and changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lstmcast.config import config_from_dict, timeout_seconds
from lstmcast.errors import ConfigError

from . import pg
from .conftest import TINY, assert_user_error, cli
from .trust import snapshot, with_config

QUICK = 1.0  # seconds: the timeouts under test
PROMPTLY = 30.0  # a run that ends later than this was not bounded by its timeout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """series.csv and load.db (the same rows), the tiny model and a copy whose config waits 1 s for databases."""
    folder = tmp_path_factory.mktemp("databases")
    frame = pd.read_csv(tiny_run.parent / "series.csv")
    frame.to_csv(folder / "series.csv", index=False)
    with sqlite3.connect(folder / "load.db") as con:
        frame.to_sql("load", con, index=False)
    quick = {"timeout": f"{QUICK:g}s"}
    with_config(tiny_run / "model.pt", folder / "quick.pt", data=quick, archive=quick)
    return folder


def config(folder: Path, path: str, query: str, timeout: str = f"{QUICK:g}s") -> Path:
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["data"].update(path=path, query=query, timeout=timeout)
    cfg["output"]["dir"] = str(folder / "run")
    (folder / "db.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "db.yaml"


def timed(*args) -> tuple:
    started = time.monotonic()
    result = cli(*args)
    return result, time.monotonic() - started


# ---------------------------------------------------------------------------- the keys themselves

DURATIONS = {"90s": 90.0, "10m": 600.0, "1h": 3600.0, 45: 45.0, "1.5m": 90.0, "250ms": 0.25, " 2h ": 7200.0}
BAD_DURATIONS = ["0s", "-1m", "soon", "10 minutes", "8d", "1e400", "9" * 60_000, "", "nan", "inf", "1y"]


@pytest.mark.parametrize("text", list(DURATIONS))
def test_a_timeout_is_a_duration(text) -> None:
    cfg = config_from_dict({"data": {"timeout": text}, "archive": {"timeout": text}})
    assert timeout_seconds(cfg.data.timeout, "data.timeout") == DURATIONS[text]


@pytest.mark.parametrize("text", BAD_DURATIONS, ids=lambda t: t[:12] or "empty")
def test_a_bad_timeout_is_one_line_naming_the_key(text: str) -> None:
    started = time.monotonic()
    for key in ("data", "archive"):
        with pytest.raises(ConfigError, match=rf"^{key}\.timeout ") as refused:
            config_from_dict({key: {"timeout": text}})
        assert len(str(refused.value)) < 300
    assert time.monotonic() - started < 1.0  # linear, bounded parsing: 60,000 characters cost nothing


# ---------------------------------------------------------------------------- SQLite: a lock, a query without end


HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")  # a writer in the middle of its transaction: nobody else may read or write
print("held", flush=True)
time.sleep(120)
"""


def hold(path: Path) -> subprocess.Popen:
    """Another process holding the SQLite file's exclusive lock (killed when the test ends)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_sqlite_archive_locked_by_another_process(home: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.db"
    args = ("predict", home / "quick.pt", "--data", home / "series.csv", "--out", tmp_path / "f.csv")
    assert cli(*args, "--archive", archive, "--quiet").code == 0
    before = hashlib.sha256(archive.read_bytes()).hexdigest()
    holder = hold(archive)
    try:
        result, seconds = timed(*args, "--archive", archive)
    finally:
        holder.kill()
        holder.wait()
    assert_user_error(result, "no answer within archive.timeout (1s)", "nothing was archived")
    assert seconds < PROMPTLY and hashlib.sha256(archive.read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_sqlite_source_locked_by_a_writer(home: Path, tmp_path: Path) -> None:
    db = tmp_path / "load.db"
    db.write_bytes((home / "load.db").read_bytes())
    holder = hold(db)
    try:
        result, seconds = timed("validate", config(tmp_path, f"sqlite:///{db}", "load"))
    finally:
        holder.kill()
        holder.wait()
    assert_user_error(result, "no answer within data.timeout (1s)", "database is locked")
    assert seconds < PROMPTLY


@pytest.mark.slow
def test_sqlite_query_that_never_ends_is_interrupted(home: Path, tmp_path: Path) -> None:
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT l.timestamp, l.load, l.temp FROM load l, (SELECT count(*) FROM n)"
    )
    result, seconds = timed("validate", config(tmp_path, f"sqlite:///{home / 'load.db'}", endless))
    assert_user_error(result, "no answer within data.timeout (1s)", "interrupted")
    assert seconds < PROMPTLY


# ---------------------------------------------------------------------------- PostgreSQL: LOCK TABLE elsewhere


@pytest.fixture(scope="module")
def server(home: Path) -> tuple[pg.Server, str]:
    """The test server with the series as a typed table, and ${VAR} holding its password."""
    found = pg.server()
    engine = found.engine()
    table = pg.table_name("wait_load")
    frame = pd.read_csv(home / "series.csv")
    frame.assign(timestamp=pd.to_datetime(frame["timestamp"])).to_sql(table, engine, index=False)
    engine.dispose()
    return found, table


class Locker:
    """Another connection, holding ACCESS EXCLUSIVE locks on tables until `release` (or the test's end)."""

    def __init__(self, found: pg.Server) -> None:
        self.engine = found.engine()
        self.conn = self.engine.connect()

    def lock(self, table: str) -> None:
        self.conn.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.conn.rollback()


@pytest.fixture
def locker(server, monkeypatch):
    found, _ = server
    monkeypatch.setenv(pg.PASSWORD_VAR, found.password)
    held = Locker(found)
    yield held
    held.release()
    held.conn.close()
    held.engine.dispose()


def count(found: pg.Server, table: str) -> int:
    engine = found.engine()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
    engine.dispose()
    return int(rows)


@pytest.mark.slow
def test_postgres_source_locked_by_another_connection(server, locker, home: Path, tmp_path: Path) -> None:
    found, table = server
    locker.lock(table)
    result, seconds = timed("validate", config(tmp_path, found.url(), table))
    assert_user_error(result, "no answer within data.timeout (1s)", "statement timeout")
    assert seconds < PROMPTLY
    # predict waits what its checkpoint's data.timeout says, and writes nothing
    args = ("--data", found.url(), "--query", table, "--out", tmp_path / "f.csv")
    result, seconds = timed("predict", home / "quick.pt", *args)
    assert_user_error(result, "no answer within data.timeout (1s)")
    assert seconds < PROMPTLY and not (tmp_path / "f.csv").exists()


@pytest.mark.slow
def test_postgres_slow_query(server, monkeypatch, tmp_path: Path) -> None:
    found, table = server
    monkeypatch.setenv(pg.PASSWORD_VAR, found.password)
    slow = f"SELECT t.timestamp, t.load, t.temp FROM {table} t CROSS JOIN pg_sleep(20)"
    result, seconds = timed("validate", config(tmp_path, found.url(), slow))
    assert_user_error(result, "no answer within data.timeout (1s)")
    assert seconds < PROMPTLY


@pytest.mark.slow
def test_postgres_archive_locked_while_predict_writes(server, locker, home: Path, tmp_path: Path) -> None:
    found, _ = server
    schema = pg.table_name("wait_archive")
    engine = found.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{found.url()}?options=-csearch_path%3D{schema}"
    args = ("predict", home / "quick.pt", "--data", home / "series.csv", "--out", tmp_path / "f.csv")
    assert cli(*args, "--archive", url, "--quiet").code == 0
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {schema}.lstmcast_forecasts SET value = -1")  # a rerun would replace these
    locker.lock(f"{schema}.lstmcast_forecasts")
    result, seconds = timed(*args, "--archive", url)
    assert_user_error(result, "the forecast was written", "no answer within archive.timeout (1s)", "nothing was")
    assert seconds < PROMPTLY
    locker.release()
    with engine.begin() as conn:
        values = conn.exec_driver_sql(f"SELECT DISTINCT value FROM {schema}.lstmcast_forecasts").fetchall()
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()
    assert values == [(-1.0,)]  # the interrupted run deleted and inserted nothing


@pytest.mark.slow
def test_postgres_forecast_table_locked_while_predict_writes(server, locker, home: Path, tmp_path: Path) -> None:
    found, _ = server
    out = pg.table_name("wait_forecasts")
    args = ("predict", home / "quick.pt", "--data", home / "series.csv", "--out", found.url(), "--table", out)
    assert cli(*args, "--quiet").code == 0
    engine = found.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {out} SET load = -1")
    locker.lock(out)
    result, seconds = timed(*args)
    assert_user_error(result, "no answer within data.timeout (1s)", "nothing of this run was written")
    assert seconds < PROMPTLY
    locker.release()
    with engine.begin() as conn:
        assert conn.exec_driver_sql(f"SELECT DISTINCT load FROM {out}").fetchall() == [(-1.0,)]
    engine.dispose()


# ---------------------------------------------------------------------------- family 7: queries that write

WRITING = {
    "ATTACH a new file": "ATTACH DATABASE '{folder}/new.db' AS other",
    "VACUUM INTO a new file": "VACUUM INTO '{folder}/copy.db'",
    "DELETE": "DELETE FROM load",
    "INSERT … RETURNING": "INSERT INTO load SELECT * FROM load RETURNING *",
    "CREATE TABLE AS": "CREATE TABLE stolen AS SELECT * FROM load",
    "a pragma that writes": "PRAGMA journal_mode = WAL",
    "two statements": "SELECT * FROM load; DELETE FROM load",
    "DROP TABLE": "DROP TABLE load",
}


@pytest.mark.parametrize("case", list(WRITING))
def test_a_sqlite_query_can_read_and_never_write(case: str, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "load.db").write_bytes((home / "load.db").read_bytes())
    before = snapshot(folder)
    query = WRITING[case].format(folder=folder)
    model = home / "quick.pt"
    result = cli("predict", model, "--data", f"sqlite:///{folder / 'load.db'}", "--query", query,
                 "--out", tmp_path / "f.csv")  # fmt: skip
    assert_user_error(result, "the query failed")
    assert snapshot(folder) == before and not (tmp_path / "f.csv").exists()
    assert sorted(os.listdir(folder)) == ["load.db"]


PG_WRITING = {
    "DELETE … RETURNING": "DELETE FROM {table} RETURNING *",
    "SELECT … FOR UPDATE": "SELECT * FROM {table} FOR UPDATE",
    "a sequence": "SELECT t.*, nextval('{table}_seq') FROM {table} t",
    "a function that writes": "SELECT t.*, {table}_write() FROM {table} t",
    "a transaction switched back": "SELECT set_config('transaction_read_only', 'off', true), t.* FROM {table} t",
    "two statements": "SELECT * FROM {table}; DELETE FROM {table}",
}


@pytest.mark.parametrize("case", list(PG_WRITING))
def test_a_postgres_query_can_read_and_never_write(case: str, server, home: Path, tmp_path: Path, monkeypatch) -> None:
    found, table = server
    monkeypatch.setenv(pg.PASSWORD_VAR, found.password)
    engine = found.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SEQUENCE IF NOT EXISTS {table}_seq")
        conn.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {table}_write() RETURNS int LANGUAGE sql AS "
            f"$$ DELETE FROM {table} WHERE false; INSERT INTO {table} SELECT * FROM {table} LIMIT 1; SELECT 1 $$"
        )
        seq = conn.exec_driver_sql(f"SELECT last_value FROM {table}_seq").scalar()
    engine.dispose()
    rows = count(found, table)
    result = cli("predict", home / "quick.pt", "--data", found.url(), "--query", PG_WRITING[case].format(table=table),
                 "--out", tmp_path / "f.csv")  # fmt: skip
    assert_user_error(result, "the query failed")
    assert count(found, table) == rows and not (tmp_path / "f.csv").exists()
    engine = found.engine()
    with engine.begin() as conn:
        assert conn.exec_driver_sql(f"SELECT last_value FROM {table}_seq").scalar() == seq
    engine.dispose()
