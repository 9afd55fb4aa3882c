"""The forecasting job over time: archive, score, promote and roll back, through the real CLI.

One series, three models trained once for the module: a quantile model (for the archive and
score), a well-trained and a one-epoch point model (for promotion). Score's numbers must equal
evaluate's on the same origins; --fail-if must exit 3 with one line; promote must refuse the
worse model and accept the better one; predict must never read a half-replaced champion.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.data import archive, sinks
from lstmcast.model import checkpoint

from . import pg
from .conftest import assert_user_error, cli, sine_csv, write_config

HORIZON = 12
STRIDE = 12


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """series.csv (480 hourly rows), models q/ (quantile), good/ (6 epochs) and poor/ (1 epoch)."""
    folder = tmp_path_factory.mktemp("job")
    sine_csv(folder / "series.csv")
    write_config(folder, {"train": {"loss": "quantile", "epochs": 4}, "output": {"dir": "q"}}, "q.yaml")
    write_config(folder, {"train": {"epochs": 6}, "output": {"dir": "good"}}, "good.yaml")
    write_config(folder, {"train": {"epochs": 1, "lr": 0.001}, "output": {"dir": "poor"}}, "poor.yaml")
    for name in ("q", "good", "poor"):
        done = cli("train", folder / f"{name}.yaml", "--quiet")
        assert done.code == 0, done.stderr
    return folder


def cut(job: Path, rows: int, into: Path) -> Path:
    pd.read_csv(job / "series.csv").iloc[:rows].to_csv(into, index=False)
    return into


def archived(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT series, origin, target_time, model_id, target, step, value, forecaster "
            "FROM lstmcast_forecasts ORDER BY origin, target_time"
        ).fetchall()


# ---------------------------------------------------------------------------- archive


@pytest.mark.slow
def test_the_archive_keeps_every_forecast_once(job: Path, tmp_path: Path, monkeypatch) -> None:
    model, db = job / "q" / "model.pt", tmp_path / "forecasts.db"
    data = cut(job, 400, tmp_path / "upto400.csv")
    for _ in range(2):  # a cron job that reruns
        done = cli("predict", model, "--data", data, "--out", tmp_path / "f.csv", "--archive", db, "--quiet")
        assert done.code == 0, done.stderr
    rows, forecast = archived(db), pd.read_csv(tmp_path / "f.csv")
    assert len(rows) == HORIZON
    series, origin, target_time, model_id, target, step, value, forecaster = zip(*rows, strict=True)
    assert set(series) == {""} and set(target) == {"load"} and set(forecaster) == {"model"}
    assert set(model_id) == {sinks.model_id(model)} and list(step) == list(range(1, HORIZON + 1))
    assert set(origin) == {target_time[0]} and [t[:19] for t in target_time] == forecast["timestamp"].tolist()
    np.testing.assert_allclose(value, forecast["load"], rtol=1e-7)
    with sqlite3.connect(db) as con:
        levels = con.execute("SELECT level, value FROM lstmcast_quantiles ORDER BY target_time, level").fetchall()
        version = con.execute("SELECT value FROM lstmcast_archive WHERE key = 'schema_version'").fetchone()
        season, horizon = con.execute("SELECT season, horizon FROM lstmcast_models").fetchone()
    assert len(levels) == 3 * HORIZON and version == (str(archive.SCHEMA_VERSION),) and (season, horizon) == (24, 12)
    np.testing.assert_allclose([v for level, v in levels if level == 0.9], forecast["load_q90"], rtol=1e-7)
    # LSTMCAST_ARCHIVE is the default; --no-archive overrides every default
    later = cut(job, 412, tmp_path / "upto412.csv")
    monkeypatch.setenv("LSTMCAST_ARCHIVE", f"sqlite:///{db}")
    assert cli("predict", model, "--data", later, "--out", tmp_path / "g.csv", "--no-archive", "--quiet").code == 0
    assert len(archived(db)) == HORIZON
    assert cli("predict", model, "--data", later, "--out", tmp_path / "g.csv", "--quiet").code == 0
    assert len(archived(db)) == 2 * HORIZON


def test_archive_errors_are_one_line(job: Path, tmp_path: Path) -> None:
    model = job / "q" / "model.pt"
    out = ("--out", tmp_path / "f.csv")
    bad = cli("predict", model, "--data", job / "series.csv", *out, "--archive", "postgresql://u:secret@h/db")
    assert_user_error(bad, "password in clear")
    assert "secret" not in bad.stderr
    # data without timestamps cannot be matched to actuals later
    write_config(tmp_path, {"data": {"path": str(job / "series.csv"), "timestamp": None}, "output": {"dir": "steps"}})
    assert cli("train", tmp_path / "config.yaml", "--quiet").code == 0
    steps = cli("predict", tmp_path / "steps" / "model.pt", "--data", job / "series.csv", *out, "--archive", "a.db")
    assert_user_error(steps, "--archive needs data with timestamps")
    # an archive written by a newer lstmcast is refused, untouched
    db = tmp_path / "newer.db"
    assert cli("predict", model, "--data", job / "series.csv", *out, "--archive", db, "--quiet").code == 0
    with sqlite3.connect(db) as con:
        con.execute("UPDATE lstmcast_archive SET value = '99' WHERE key = 'schema_version'")
    before = db.read_bytes()
    assert_user_error(cli("predict", model, "--data", job / "series.csv", *out, "--archive", db), "schema version 99")
    assert_user_error(cli("score", "--archive", db, "--actuals", job / "series.csv"), "upgrade lstmcast")
    assert db.read_bytes() == before
    assert_user_error(cli("score", "--archive", tmp_path / "none.db", "--actuals", job / "series.csv"), "not found")
    assert_user_error(cli("score", "--actuals", job / "series.csv"), "--archive")


# ---------------------------------------------------------------------------- score


@pytest.fixture(scope="module")
def scored(job: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An archive of the quantile model's forecasts from every 12th origin of its test part, and evaluate's report."""
    folder = tmp_path_factory.mktemp("scored")
    model = job / "q" / "model.pt"
    times = pd.read_csv(job / "series.csv")["timestamp"]
    first = 480 - 72  # the test part's first forecast row (split.test 0.15 of 480)
    origins = list(range(first, 480 - HORIZON + 1, STRIDE))
    report = folder / "evaluate.json"
    done = cli("evaluate", model, "--data", job / "series.csv", "--start", times[first], "--stride", STRIDE,
               "--report", report, "--quiet")  # fmt: skip
    assert done.code == 0, done.stderr
    db = folder / "forecasts.db"
    for origin in origins:  # what a nightly predict would have issued at each origin
        data = cut(job, origin, folder / "cut.csv")
        done = cli("predict", model, "--data", data, "--out", folder / "f.csv", "--archive", db, "--quiet")
        assert done.code == 0, done.stderr
    return db, json.loads(report.read_text())


@pytest.mark.slow
def test_score_equals_evaluate_on_the_same_origins(job: Path, scored: tuple[Path, dict]) -> None:
    db, evaluated = scored
    done = cli("score", "--archive", db, "--actuals", job / "series.csv", "--by", "step", "--json")
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "ok" and report["scored"] == evaluated["origins"] * HORIZON
    assert report["origins"] == evaluated["origins"] == 6
    for mine, theirs in (("served", "model"), ("seasonal_naive", "seasonal_naive"), ("naive", "naive")):
        for metric in ("mae", "rmse", "smape", "mase"):
            assert report["overall"][mine][metric] == pytest.approx(evaluated["overall"][theirs][metric], rel=1e-5)
    steps = [row["served"]["mase"] for row in report["by"]["step"]]
    np.testing.assert_allclose(steps, evaluated["per_step"]["model"]["mase"], rtol=1e-5)
    q = report["quantiles"]
    assert q["pinball"] == pytest.approx(evaluated["quantiles"]["pinball"], rel=1e-5)
    assert q["coverage"] == pytest.approx(evaluated["quantiles"]["coverage"], rel=1e-9)
    assert report["relative_skill"] == pytest.approx(evaluated["relative_skill"], rel=1e-5)


def test_fail_if_exits_3_with_one_line(job: Path, scored: tuple[Path, dict]) -> None:
    db, evaluated = scored
    base = ("score", "--archive", db, "--actuals", job / "series.csv")
    mase = evaluated["overall"]["model"]["mase"]
    alert = cli(*base, "--fail-if", f"mase>{mase * 0.9:.6f}", "--fail-if", "coverage<0")
    assert alert.code == 3, alert.stderr
    lines = [line for line in alert.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("alert: mase ") and "Traceback" not in alert.stderr
    calm = cli(*base, "--fail-if", f"mase>{mase * 1.1:.6f}", "--fail-if", "coverage<0", "--json")
    assert calm.code == 0 and json.loads(calm.stdout)["alerts"] == []
    worse = "seasonal_naive" if mase > evaluated["overall"]["seasonal_naive"]["mase"] else "naive"
    held = cli(*base, "--fail-if", f"worse-than={worse}", "--json")
    assert (held.code == 3) == (mase > evaluated["overall"][worse]["mase"])
    assert json.loads(held.stdout)["status"] == ("alert" if held.code == 3 else "ok")
    assert_user_error(cli(*base, "--fail-if", "mase>>1"), "--fail-if 'mase>>1' is not a rule")
    assert_user_error(cli(*base, "--fail-if", "worse-than=model"), "worse-than takes")
    assert_user_error(cli(*base, "--since", "last tuesday"), "--since 'last tuesday' is not a time")
    # a span counts back from the latest actual (row 479): target rows 455 … 479 of origins 444, 456 and 468
    recent = json.loads(cli(*base, "--since", "1d", "--json").stdout)
    assert recent["scored"] == 1 + 2 * HORIZON


def test_score_names_what_needs_attention(job: Path, scored: tuple[Path, dict], tmp_path: Path) -> None:
    db, _ = scored
    frame = pd.read_csv(job / "series.csv")
    drop = frame.index[(frame.index >= 420) & (frame.index % 3 == 0)]
    shifted = frame.drop(index=drop)
    shifted.loc[shifted.index >= 408, "load"] += 100  # a level far from training's
    shifted.to_csv(tmp_path / "actuals.csv", index=False)
    done = cli("score", "--archive", db, "--actuals", tmp_path / "actuals.csv", "--json", "--fail-if", "missing>0.2")
    report = json.loads(done.stdout)
    assert report["missing"] == pytest.approx(len(drop) / 72, abs=0.02)
    assert done.code == 3 and "missing" in done.stderr
    assert report["attention"]["level_shift"][0]["shift_in_std"] > 10
    assert report["attention"]["gaps"] and report["attention"]["gaps"][0]["missing_share"] > 0.2
    people = cli("score", "--archive", db, "--actuals", tmp_path / "actuals.csv", "--by", "series")
    assert "attention: 1 series drifted" in people.stdout and "by series" in people.stdout
    # actuals that end before the archived target times: nothing to score, said plainly
    cut(job, 400, tmp_path / "early.csv")
    early = cli("score", "--archive", db, "--actuals", tmp_path / "early.csv")
    assert early.code == 0 and "nothing to score yet" in early.stdout
    assert "no actual for their forecasts yet" in early.stdout
    assert cli("score", "--archive", db, "--actuals", tmp_path / "early.csv", "--fail-if", "mase>9").code == 3


BAD_ACTUALS = {
    "missing column": (lambda f: f.drop(columns=["load"]), "column 'load' not found"),
    "a time twice": (lambda f: pd.concat([f, f.iloc[[450]]]), "appears twice"),
    "off the model's grid": (
        lambda f: f.assign(timestamp=(pd.to_datetime(f["timestamp"]) + pd.Timedelta("30min")).astype(str)),
        "is not on the model's h grid",
    ),
    "unreadable time": (lambda f: f.replace({"timestamp": {f["timestamp"][3]: "soon"}}), "line 5"),
}


@pytest.mark.parametrize("case", list(BAD_ACTUALS))
def test_bad_actuals_are_one_line(case: str, job: Path, scored: tuple[Path, dict], tmp_path: Path) -> None:
    change, fragment = BAD_ACTUALS[case]
    change(pd.read_csv(job / "series.csv")).to_csv(tmp_path / "actuals.csv", index=False)
    assert_user_error(cli("score", "--archive", scored[0], "--actuals", tmp_path / "actuals.csv"), fragment)


# ---------------------------------------------------------------------------- promote


def test_promote_refuses_the_worse_model_accepts_the_better_and_rolls_back(job: Path, tmp_path: Path) -> None:
    serving, good, poor = tmp_path / "serving", job / "good" / "model.pt", job / "poor" / "model.pt"
    first = cli("promote", poor, "--to", serving, "--json")
    assert first.code == 0 and json.loads(first.stdout)["reason"] == "no champion yet"
    better = json.loads(cli("promote", good, "--to", serving, "--json").stdout)
    assert better["action"] == "promoted", better
    assert better["candidate"]["score"] < better["champion"]["score"]
    assert better["windows"]["origins"] > 0 and better["windows"]["champion_trained_on_them"] is False
    assert sinks.model_id(serving / "model.pt") == sinks.model_id(good)
    assert (serving / "history" / f"{sinks.model_id(poor)}.pt").exists()
    worse = json.loads(cli("promote", poor, "--to", serving, "--json").stdout)
    assert worse["action"] == "kept" and sinks.model_id(serving / "model.pt") == sinks.model_id(good)
    margin = cli("promote", good, "--to", serving, "--margin", "0.5", "--json")
    assert json.loads(margin.stdout)["action"] == "kept"  # the champion already
    back = cli("promote", "--rollback", "--to", serving)
    assert back.code == 0 and "rollback" in back.stdout
    assert sinks.model_id(serving / "model.pt") == sinks.model_id(poor)
    records = [json.loads(line) for line in (serving / "promotions.jsonl").read_text().splitlines()]
    assert [r["action"] for r in records] == ["promoted", "promoted", "kept", "kept", "rollback"]
    assert_user_error(cli("promote", "--rollback", "--to", serving), "nothing to roll back to")


def test_promote_refuses_a_candidate_of_other_columns_untouched(job: Path, tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    assert cli("promote", job / "good" / "model.pt", "--to", serving, "--quiet").code == 0
    write_config(tmp_path, {"data": {"path": str(job / "series.csv"), "target": "temp", "features": []}})
    assert cli("train", tmp_path / "config.yaml", "--quiet").code == 0
    before = {p.name: p.read_bytes() for p in serving.iterdir() if p.is_file() and p.name != ".lstmcast.lock"}
    assert_user_error(cli("promote", tmp_path / "run" / "model.pt", "--to", serving), "data.target")
    not_a_model = tmp_path / "junk.pt"
    not_a_model.write_bytes(b"not a checkpoint")
    assert_user_error(cli("promote", not_a_model, "--to", serving), "junk.pt")
    assert {p.name: p.read_bytes() for p in serving.iterdir() if p.is_file() and p.name != ".lstmcast.lock"} == before
    assert_user_error(cli("promote", job / "good" / "model.pt", "--rollback", "--to", serving), "either")


SWAPPER = """
import sys, time
from pathlib import Path
from lstmcast.flows.promote import _install
folder, a, b, seconds = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    _install(a if n % 2 else b, folder, folder / "model.pt", keep=2)
    n += 1
print(n)
"""


@pytest.mark.slow
def test_predict_never_reads_a_half_replaced_champion(job: Path, tmp_path: Path) -> None:
    serving, good, poor = tmp_path / "serving", job / "good" / "model.pt", job / "poor" / "model.pt"
    assert cli("promote", good, "--to", serving, "--quiet").code == 0
    ids = {sinks.model_id(good), sinks.model_id(poor)}
    swaps = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, serving, poor, good, "2"], stdout=subprocess.PIPE, text=True
    )
    seen, reads = set(), 0
    while swaps.poll() is None:
        data = (serving / "model.pt").read_bytes()  # one open, as torch.load reads it
        copy = tmp_path / "read.pt"
        copy.write_bytes(data)
        seen.add(sinks.model_id(copy))
        checkpoint.load(copy)
        reads += 1
    out, _ = swaps.communicate(timeout=60)
    assert swaps.returncode == 0 and int(out) >= 2  # several swaps, however slow the disk
    assert seen <= ids and reads >= 2
    done = cli("predict", serving / "model.pt", "--data", job / "series.csv", "--out", tmp_path / "f.csv", "--quiet")
    assert done.code == 0, done.stderr


# ---------------------------------------------------------------------------- PostgreSQL


def test_archive_and_score_on_postgres(job: Path, tmp_path: Path, monkeypatch) -> None:
    server = pg.server()
    schema = pg.table_name("archive")
    import sqlalchemy as sa

    engine = server.engine()
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    monkeypatch.setenv(pg.PASSWORD_VAR, server.password)
    url = f"{server.url()}?options=-csearch_path%3D{schema}"
    model = job / "q" / "model.pt"
    for rows in (400, 412, 412):
        data = cut(job, rows, tmp_path / "cut.csv")
        done = cli("predict", model, "--data", data, "--out", tmp_path / "f.csv", "--archive", url, "--quiet")
        assert done.code == 0, done.stderr
    with engine.begin() as conn:
        count = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.lstmcast_forecasts")).scalar()
        conn_q = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.lstmcast_quantiles")).scalar()
    assert (count, conn_q) == (2 * HORIZON, 6 * HORIZON)
    done = cli("score", "--archive", url, "--actuals", job / "series.csv", "--json")
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["scored"] == 2 * HORIZON
    assert server.password not in done.stdout + done.stderr
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()
