"""Families 3, 5 and 6 of the trust tables: the archive under races, failures, odd files and foreign databases.

3. Creation and registration are one transaction, serialised among writers: real processes (forked, released
   together by a barrier) write to one SQLite file or one PostgreSQL schema at the same moment, 8 repetitions
   of each race, and every one succeeds; a failure or a SIGKILL in the middle of creating it leaves no
   half-created schema, and a rerun succeeds.
5. The archive path follows the output rules: regular files only, nothing created beside a device, a
   read-only file refused even for root, a FIFO refused without waiting.
6. A database that is not an archive (its metadata absent) is refused untouched, naming what it holds.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.data import archive
from lstmcast.data.archive import Archive, Issued
from lstmcast.data.db import connect_url

from . import pg
from .conftest import assert_user_error, cli
from .trust import snapshot, tables

REPEAT = 8
HORIZON = 12


def issued(model: str, *, origin: str = "2024-01-21", ids: tuple[str, ...] = ("",), shift: float = 0.0) -> Issued:
    """A run's forecasts as predict hands them to the archive (one target, no quantiles)."""
    times = [pd.date_range(origin, periods=HORIZON, freq="h") for _ in ids]
    values = np.arange(len(ids) * HORIZON, dtype=float).reshape(len(ids), HORIZON, 1) + shift
    return Issued(
        model_id=model, checkpoint=f"/srv/{model}.pt", freq="h", season=24, horizon=HORIZON,
        timestamp_col="timestamp", series_col=None, targets=["load"], quantiles=[],
        levels={sid: [[10.0], [3.0]] for sid in ids}, ids=list(ids), times=times, values=values,
        forecasters=["model"] * len(ids), time_zone="",
    )  # fmt: skip


def _write(url: str, run: Issued, barrier, errors) -> None:  # in a forked process
    try:
        barrier.wait(30)
        Archive(url, timeout=60).record(run)
    except BaseException as exc:  # reported to the parent, which fails the test
        errors.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


def race(url: str, runs: list[Issued]) -> None:
    """Every run written by its own process, all released at once; each must succeed."""
    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(len(runs)), ctx.Queue()
    procs = [ctx.Process(target=_write, args=(url, run, barrier, errors)) for run in runs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    failures = [errors.get(timeout=1) for proc in procs if proc.exitcode != 0]
    assert not failures, failures
    assert all(proc.exitcode == 0 for proc in procs)


def contents(url: str) -> tuple[set[str], int, list[float]]:
    found = Archive(url).read(None, None)
    return set(found.models), len(found.points), sorted(found.points["value"].tolist())


# ---------------------------------------------------------------------------- where the races run


@pytest.fixture
def pg_place(monkeypatch) -> Callable[[int], str]:
    """A fresh PostgreSQL archive URL per call: a schema of its own on the test server, dropped afterwards."""
    server = pg.server()
    monkeypatch.setenv(pg.PASSWORD_VAR, server.password)  # the URL holds ${VAR}, as a crontab's would
    engine = server.engine()
    schemas: list[str] = []

    def fresh(rep: int) -> str:
        schema = pg.table_name(f"race{rep}")
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        return f"{server.url()}?options=-csearch_path%3D{schema}"

    yield fresh
    with engine.begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def place(request, tmp_path: Path) -> Callable[[int], str]:
    """A fresh archive URL per repetition: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return lambda rep: f"sqlite:///{tmp_path / f'archive{rep}.db'}"
    return request.getfixturevalue("pg_place")


RACES = {
    "two models, a new archive": ([], [issued("a"), issued("b", shift=100)], {"a", "b"}, 2 * HORIZON),
    "one model's run twice, a new archive": ([], [issued("a"), issued("a", shift=100)], {"a"}, HORIZON),
    "two models new to an existing archive": (
        [issued("z", origin="2024-01-01")],
        [issued("a"), issued("b", shift=100)],
        {"z", "a", "b"},
        3 * HORIZON,
    ),
    "four writers of three models": (
        [],
        [issued("a"), issued("b", ids=("s1", "s2")), issued("c", origin="2024-02-01"), issued("a", shift=7)],
        {"a", "b", "c"},
        4 * HORIZON,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(RACES))
def test_writers_at_the_same_moment_all_succeed(case: str, place: Callable[[int], str]) -> None:
    first, runs, models, points = RACES[case]
    for rep in range(REPEAT):
        url = place(rep)
        for run in first:
            Archive(url).record(run)
        race(url, runs)
        found, count, _ = contents(url)
        assert (found, count) == (models, points), (rep, found, count)


# ---------------------------------------------------------------------------- a failure while creating it


def _raise(*_args) -> None:
    raise OSError("injected: the disk filled up after the tables were made")


def test_a_failure_while_creating_leaves_no_half_schema_and_a_rerun_succeeds(
    place: Callable[[int], str], monkeypatch
) -> None:
    url = place(0)
    with monkeypatch.context() as patched:
        patched.setattr(archive, "_register", _raise)
        with pytest.raises(OSError, match="injected"):
            Archive(url).record(issued("a"))
    assert _lstmcast_tables(url) == []
    Archive(url).record(issued("a"))
    assert contents(url)[:2] == ({"a"}, HORIZON)


def _lstmcast_tables(url: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(connect_url(url, "test"))
    try:
        with engine.connect() as conn:
            return sorted(t for t in sa.inspect(conn).get_table_names() if t.startswith("lstmcast_"))
    finally:
        engine.dispose()


def _hang_inside(url: str, ready) -> None:  # in a forked process: stop for good inside the transaction
    def hang(*_args) -> None:
        ready.set()
        signal.pause()

    archive._register = hang
    Archive(url, timeout=60).record(issued("a"))


@pytest.mark.slow
def test_a_process_killed_while_creating_leaves_no_half_schema(place: Callable[[int], str]) -> None:
    ctx = multiprocessing.get_context("fork")
    for rep in range(REPEAT):
        url = place(rep)
        ready = ctx.Event()
        proc = ctx.Process(target=_hang_inside, args=(url, ready))
        proc.start()
        assert ready.wait(60), "the writer never reached the middle of its transaction"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert _lstmcast_tables(url) == [], rep
        Archive(url).record(issued("b"))  # the next night's run
        assert contents(url)[:2] == ({"b"}, HORIZON)


@pytest.mark.slow
def test_a_full_disk_while_creating_then_room_again(tiny_run: Path, tmp_path: Path) -> None:
    """A real full file system (a 64 KiB tmpfs) under the archive: exit 2, no half schema; freed, the rerun works."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real full disk) needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 4096)
        filler.write_bytes(filler.read_bytes()[:-8192])  # room for the file, not for its tables and rows
        args = ("predict", tiny_run / "model.pt", "--data", tiny_run.parent / "series.csv", "--out", tmp_path / "f.csv")
        full = cli(*args, "--archive", disk / "a.db")
        assert_user_error(full, "the forecast was written", "nothing was archived")
        assert not (disk / "a.db").exists() or tables(disk / "a.db") == []
        filler.unlink()
        again = cli(*args, "--archive", disk / "a.db", "--quiet")
        assert again.code == 0, again.stderr
        assert "lstmcast_archive" in tables(disk / "a.db")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_an_archive_an_older_lstmcast_left_half_created_is_finished(tmp_path: Path) -> None:
    """Its tables, empty, and lstmcast_archive without a schema_version (what a crash left before this fix)."""
    db = tmp_path / "a.db"
    Archive(f"sqlite:///{db}").record(issued("a"))
    with sqlite3.connect(db) as con:
        for name in ("lstmcast_forecasts", "lstmcast_quantiles", "lstmcast_models", "lstmcast_archive"):
            con.execute(f"DELETE FROM {name}")
    Archive(f"sqlite:///{db}").record(issued("b"))
    assert contents(f"sqlite:///{db}")[:2] == ({"b"}, HORIZON)


def test_an_archive_of_schema_version_1_is_read_as_it_is_and_migrated_by_the_next_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    Archive(url).record(issued("a"))
    with sqlite3.connect(tmp_path / "a.db") as con:
        con.execute("ALTER TABLE lstmcast_models DROP COLUMN time_zone")
        con.execute("UPDATE lstmcast_archive SET value = '1' WHERE key = 'schema_version'")
    assert Archive(url).read(None, None).models["a"]["time_zone"] is None  # score reads it, unchanged
    Archive(url).record(issued("b"))
    with sqlite3.connect(tmp_path / "a.db") as con:
        assert con.execute("SELECT value FROM lstmcast_archive WHERE key = 'schema_version'").fetchone() == ("2",)
        zones = dict(con.execute("SELECT model_id, time_zone FROM lstmcast_models").fetchall())
    assert zones == {"a": None, "b": ""}


# ---------------------------------------------------------------------------- family 5: files that are not ours


def _device(path: Path, kind: int = stat.S_IFCHR) -> Path:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    os.mknod(path, kind | 0o666, os.makedev(1, 3))
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _read_only_archive(path: Path) -> Path:
    Archive(f"sqlite:///{path}").record(issued("z"))
    path.chmod(0o444)
    return path


def _link(target: Path | str, path: Path) -> Path:
    path.symlink_to(target)
    return path


def _loop(path: Path) -> Path:
    (path.parent / "b.db").symlink_to(path.name)
    path.symlink_to("b.db")
    return path


ODD = {  # name → (what is at the archive path, the fragments of the one error line)
    "/dev/null": (lambda f: Path("/dev/null"), ("/dev/null", "character device")),
    "a character device of our own": (lambda f: _device(f / "null.db"), ("null.db", "character device")),
    "a FIFO": (lambda f: _fifo(f / "pipe.db"), ("pipe.db", "FIFO")),
    "a folder": (lambda f: (f / "dir.db").mkdir() or f / "dir.db", ("dir.db", "folder")),
    "a read-only archive (0444), even for root": (lambda f: _read_only_archive(f / "ro.db"), ("ro.db", "read-only")),
    "a link to /dev/null": (lambda f: _link("/dev/null", f / "n.db"), ("/dev/null", "character device")),
    "a link that loops": (lambda f: _loop(f / "a.db"), ("loops",)),
    "a link into a missing folder": (lambda f: _link("nowhere/x.db", f / "l.db"), ("whose folder does not exist",)),
    "an in-memory URL": (lambda f: "sqlite://", ("in-memory",)),
    "sqlite:////dev/null": (lambda f: "sqlite:////dev/null", ("/dev/null", "character device")),
}


@pytest.mark.parametrize("case", list(ODD))
def test_an_archive_path_that_is_not_a_regular_file_is_refused_untouched(
    case: str, tiny_run: Path, tmp_path: Path, forker
) -> None:
    make, fragments = ODD[case]
    world = tmp_path / "world"
    world.mkdir()
    where = make(world)
    before, dev = snapshot(world), sorted(os.listdir("/dev"))
    run = (lambda *a: forker.run(*a, timeout=60)) if case == "a FIFO" else cli  # a FIFO must not hang the suite
    args = ("predict", tiny_run / "model.pt", "--data", tiny_run.parent / "series.csv", "--out", tmp_path / "f.csv")
    result = run(*args, "--archive", where)
    assert_user_error(result, *fragments)
    assert not (tmp_path / "f.csv").exists()  # refused before any work
    assert snapshot(world) == before and sorted(os.listdir("/dev")) == dev  # no -journal beside anything
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    if case in ("/dev/null", "a FIFO", "a folder", "a link that loops"):
        scored = run("score", "--archive", where, "--actuals", tiny_run.parent / "series.csv")
        assert_user_error(scored, *fragments[:1])
        assert snapshot(world) == before


@pytest.mark.parametrize("case", ["/dev/null", "a folder", "a read-only archive (0444), even for root"])
def test_a_forecast_table_in_such_a_file_is_refused_before_any_work(case: str, tiny_run: Path, tmp_path: Path) -> None:
    make, fragments = ODD[case]
    world = tmp_path / "world"
    world.mkdir()
    where = make(world)
    before = snapshot(world)
    args = ("predict", tiny_run / "model.pt", "--data", tiny_run.parent / "series.csv", "--table", "forecasts")
    assert_user_error(cli(*args, "--out", f"sqlite:///{where}"), *fragments)
    assert snapshot(world) == before and not Path("/dev/null-journal").exists()


def test_an_archive_through_a_link_and_into_a_new_folder_is_written_there(tiny_run: Path, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = _link(tmp_path / "real" / "load.db", tmp_path / "current.db")
    args = ("predict", tiny_run / "model.pt", "--data", tiny_run.parent / "series.csv", "--out", tmp_path / "f.csv")
    assert cli(*args, "--archive", link, "--quiet").code == 0
    assert link.is_symlink() and "lstmcast_forecasts" in tables(tmp_path / "real" / "load.db")
    assert cli(*args, "--archive", tmp_path / "new" / "deep" / "a.db", "--quiet").code == 0  # like every output


# ---------------------------------------------------------------------------- family 6: databases not ours


def _sqlite_with(path: Path, *statements: str) -> Path:
    with sqlite3.connect(path) as con:
        for sql in statements:
            con.execute(sql)
    return path


FOREIGN_TABLE = ("CREATE TABLE forecasts (series text, origin text, load real)",
                 "INSERT INTO forecasts VALUES ('', '2024-01-01', 1.0)")  # fmt: skip
NO_VERSION = ("CREATE TABLE lstmcast_archive (key text, value text)", "CREATE TABLE lstmcast_forecasts (series text)",
              "INSERT INTO lstmcast_forecasts VALUES ('x')")  # fmt: skip
FUTURE = ("CREATE TABLE lstmcast_archive (key text PRIMARY KEY, value text)",
          "INSERT INTO lstmcast_archive VALUES ('schema_version', '99')")  # fmt: skip
FOREIGN = {
    "a forecast table of predict --out": (
        lambda f: _sqlite_with(f / "x.db", *FOREIGN_TABLE),
        ("not an lstmcast archive", "'forecasts'"),
    ),
    "lstmcast_forecasts made by hand": (
        lambda f: _sqlite_with(f / "x.db", "CREATE TABLE lstmcast_forecasts (series text, value real)"),
        ("holds 'lstmcast_forecasts' but no lstmcast_archive", "untouched"),
    ),
    "a metadata table without a schema version, rows elsewhere": (
        lambda f: _sqlite_with(f / "x.db", *NO_VERSION),
        ("no schema_version", "untouched"),
    ),
    "a schema version from the future": (lambda f: _sqlite_with(f / "x.db", *FUTURE), ("schema version 99",)),
    "a text file": (lambda f: (f / "x.db").write_text("not a database\n" * 100) and f / "x.db", ("not a SQLite",)),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_database_that_is_not_an_archive_is_refused_untouched(case: str, tiny_run: Path, tmp_path: Path) -> None:
    make, fragments = FOREIGN[case]
    world = tmp_path / "world"
    world.mkdir()
    path = make(world)
    before = snapshot(world)
    args = ("predict", tiny_run / "model.pt", "--data", tiny_run.parent / "series.csv", "--out", tmp_path / "f.csv")
    assert_user_error(cli(*args, "--archive", path), *fragments)
    assert_user_error(cli("score", "--archive", path, "--actuals", tiny_run.parent / "series.csv"), fragments[0])
    assert snapshot(world) == before


def test_postgres_a_foreign_table_is_refused_and_other_tables_are_left_alone(
    pg_place, tiny_run: Path, tmp_path
) -> None:
    """In PostgreSQL an archive may share a schema with other tables (a team's database), never with impostors."""
    server = pg.server()
    url = pg_place(0)
    schema = url.rsplit("%3D", 1)[1]
    engine = server.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {schema}.readings (t timestamp, load double precision)")
    args = ("predict", tiny_run / "model.pt", "--data", tiny_run.parent / "series.csv", "--out", tmp_path / "f.csv")
    assert cli(*args, "--archive", url, "--quiet").code == 0
    impostor = pg_place(1)
    other = impostor.rsplit("%3D", 1)[1]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {other}.lstmcast_forecasts (series text)")
        conn.exec_driver_sql(f"INSERT INTO {other}.lstmcast_forecasts VALUES ('theirs')")
    assert_user_error(cli(*args, "--archive", impostor), "holds 'lstmcast_forecasts' but no lstmcast_archive")
    with engine.begin() as conn:
        names = [r[0] for r in conn.exec_driver_sql(f"SELECT tablename FROM pg_tables WHERE schemaname = '{other}'")]
        assert names == ["lstmcast_forecasts"]
        assert conn.exec_driver_sql(f"SELECT series FROM {other}.lstmcast_forecasts").fetchall() == [("theirs",)]
    engine.dispose()
