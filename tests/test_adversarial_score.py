"""Family 10 of the trust tables: `score` reads actuals by training's rules, speaks strict JSON, parses in bounds.

- The actuals go through training's reader and rules: text, 'nan' or an infinity at any row is one line
  naming the cell (an empty cell is a missing actual); a time with a UTC offset is converted only where the
  archive records that the model's times had offsets, and refused (naming both) where it says they had
  none or does not say — never matched shifted by the offset.
- Every --json line is strict JSON: a figure that overflows is null, never NaN or Infinity.
- Rules and spans are parsed in linear time and bounded: 60,000 characters are refused at once, a span of
  99999999999 days is an error line, not an overflow. A full disk under stdout is exit 2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.data.archive import Archive, Issued

from .conftest import assert_user_error, cli
from .trust import strict_json

ORIGIN_ROW = 400  # the archived forecast's first target row
HORIZON = 12


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """series.csv and archive.db: the tiny model's forecast from the first 400 rows."""
    folder = tmp_path_factory.mktemp("score")
    frame = pd.read_csv(tiny_run.parent / "series.csv")
    frame.to_csv(folder / "series.csv", index=False)
    frame.iloc[:ORIGIN_ROW].to_csv(folder / "upto.csv", index=False)
    done = cli("predict", tiny_run / "model.pt", "--data", folder / "upto.csv", "--out", folder / "f.csv",
               "--archive", folder / "archive.db", "--quiet")  # fmt: skip
    assert done.code == 0, done.stderr
    return folder


def actuals(job: Path, tmp_path: Path, row: int, column: str, value: str) -> Path:
    """The actuals with one cell replaced (as text, exactly as a CSV would hold it)."""
    frame = pd.read_csv(job / "series.csv", dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(tmp_path / "actuals.csv", index=False)
    return tmp_path / "actuals.csv"


TARGET_ROW = ORIGIN_ROW + 3  # a row whose time an archived forecast targets
CELLS = {  # value written at a target time → the fragment of the one error line (None: scored, exit 0)
    "'nan' text": ("nan", "'nan' is not a number"),
    "'NaN' text": ("NaN", "'NaN' is not a number"),
    "'NA'": ("NA", "'NA' is not a number"),
    "inf": ("inf", "infinite value"),
    "-Infinity": ("-Infinity", "infinite value"),
    "a number too large for a float": ("1e999", "infinite value"),
    "text": ("abc", "'abc' is not a number"),
    "a decimal comma": ("10,5", None),  # quoted by pandas: one field, then not a number
    "an empty cell (a missing actual)": ("", None),
    "a finite 1e308": ("1e308", None),
}


@pytest.mark.parametrize("case", list(CELLS))
def test_a_bad_actual_is_one_line_as_in_training(case: str, job: Path, tmp_path: Path) -> None:
    value, fragment = CELLS[case]
    path = actuals(job, tmp_path, TARGET_ROW, "load", value)
    result = cli("score", "--archive", job / "archive.db", "--actuals", path, "--json")
    if case == "a decimal comma":
        fragment = "'10,5' is not a number"
    if fragment is None:
        assert result.code == 0, result.stderr
        report = strict_json(result.stdout)
        assert report["scored"] == HORIZON - (1 if value == "" else 0)
    else:
        assert_user_error(result, f"line {TARGET_ROW + 2}", fragment)
        assert strict_json(result.stdout)["status"] == "error"
    trained = cli("validate", tiny_config(job, path))
    assert (trained.code == 0) == (fragment is None or case == "a finite 1e308"), trained.stderr


def tiny_config(job: Path, data: Path) -> Path:
    from .conftest import write_config

    write_config(job, {"data": {"path": str(data)}}, "validate.yaml")
    return job / "validate.yaml"


TIMES = {  # a time cell → fragment
    "unreadable": ("soon", "cannot parse 'soon'"),
    "empty": ("", "empty timestamp"),
    "a number": ("12", None),
}


@pytest.mark.parametrize("case", ["unreadable", "empty"])
def test_a_bad_time_is_one_line_naming_the_line(case: str, job: Path, tmp_path: Path) -> None:
    value, fragment = TIMES[case]
    path = actuals(job, tmp_path, 17, "timestamp", value)
    assert_user_error(cli("score", "--archive", job / "archive.db", "--actuals", path), "line 19", fragment)


def test_actuals_from_sqlite_follow_the_same_rules(job: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(job / "series.csv", dtype=str)
    frame.loc[TARGET_ROW, "load"] = "abc"
    with sqlite3.connect(tmp_path / "a.db") as con:
        frame.to_sql("load", con, index=False)
    result = cli("score", "--archive", job / "archive.db", "--actuals", f"sqlite:///{tmp_path / 'a.db'}",
                 "--query", "load")  # fmt: skip
    assert_user_error(result, f"row {TARGET_ROW + 1}, column 'load': 'abc' is not a number")


# ---------------------------------------------------------------------------- time zones


def zoned_archive(path: Path, job: Path, zone: str | None, shift: float = 1.0) -> Path:
    """An archive whose forecasts are the actuals + `shift` at 12 target times, issued by a model of `zone`
    ('' naive, '+01:00' with offsets — times kept in UTC —, None: archived before the zone was recorded)."""
    frame = pd.read_csv(job / "series.csv")
    times = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])[ORIGIN_ROW : ORIGIN_ROW + HORIZON])
    values = frame["load"].to_numpy()[ORIGIN_ROW : ORIGIN_ROW + HORIZON].reshape(1, HORIZON, 1) + shift
    run = Issued(
        model_id="m", checkpoint="/m.pt", freq="h", season=24, horizon=HORIZON, timestamp_col="timestamp",
        series_col=None, targets=["load"], quantiles=[], levels={"": [[10.0], [3.0]]}, ids=[""], times=[times],
        values=values, forecasters=["model"], time_zone=zone,
    )  # fmt: skip
    Archive(f"sqlite:///{path}").record(run)
    return path


def zoned_actuals(job: Path, tmp_path: Path, offset: str | None) -> Path:
    """The actuals at the same instants, written with a UTC offset (`offset`) or without one (None)."""
    frame = pd.read_csv(job / "series.csv")
    stamps = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
    if offset is not None:
        hours = int(offset[:3])
        frame["timestamp"] = stamps.dt.tz_convert(f"Etc/GMT{-hours:+d}").map(lambda t: t.isoformat())
    frame.to_csv(tmp_path / "zoned.csv", index=False)
    return tmp_path / "zoned.csv"


ZONES = {  # (the model's zone in the archive, the actuals' offset) → fragment (None: scored, MAE exactly 1)
    "naive model, actuals with +01:00": ("", "+01:00", "have a UTC offset (UTC+01:00), but the archived forecasts"),
    "naive model, actuals in Z": ("", "+00:00", "have a UTC offset"),
    "model with offsets, naive actuals": ("+01:00", None, "have no UTC offset, but the archived forecasts are for"),
    "model with offsets, actuals with +01:00": ("+01:00", "+01:00", None),
    "model with offsets, actuals in another zone": ("+01:00", "-05:00", None),
    "zone not recorded, actuals with +01:00": (None, "+01:00", "does not record whether"),
    "zone not recorded, naive actuals": (None, None, None),
    "naive model, naive actuals": ("", None, None),
}


@pytest.mark.parametrize("case", list(ZONES))
def test_time_zones_are_converted_by_the_archive_rule_or_refused(case: str, job: Path, tmp_path: Path) -> None:
    zone, offset, fragment = ZONES[case]
    archive = zoned_archive(tmp_path / "z.db", job, zone)
    result = cli("score", "--archive", archive, "--actuals", zoned_actuals(job, tmp_path, offset), "--json")
    if fragment is not None:
        assert_user_error(result, fragment)
        return
    assert result.code == 0, result.stderr
    report = strict_json(result.stdout)
    assert report["scored"] == HORIZON and report["overall"]["served"]["mae"] == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------- parsing in bounds

RULES = {
    "60,000 digits and a letter": "mase>" + "1" * 60_000 + "x",
    "30,000 '1.' pairs": "mase>" + "1." * 30_000,
    "a long metric name": "m" * 60_000 + ">1",
    "spaces then junk": "mase" + " " * 60_000 + "!",
    "an infinite threshold": "mase>1e400",
    "worse-than a long name": "worse-than=" + "a" * 60_000,
}


@pytest.mark.parametrize("case", list(RULES))
def test_a_hostile_rule_is_refused_at_once(case: str, job: Path) -> None:
    started = time.monotonic()
    result = cli("score", "--archive", job / "archive.db", "--actuals", job / "series.csv", "--fail-if", RULES[case])
    assert_user_error(result, "--fail-if")
    assert time.monotonic() - started < 5 and len(result.stderr) < 400


SPANS = {
    "--since 99999999999d": ("--since", "99999999999d", "longer than"),
    "--since 5000000w": ("--since", "5000000w", "longer than"),
    "--since of 60,000 digits": ("--since", "1" * 60_000 + "d", "is not a time"),
    "--until of 60,000 characters": ("--until", "2024-01-01" + "x" * 60_000, "is not a time"),
    "--since 0d": ("--since", "0d", "not a positive"),
    "--since 7 fortnights": ("--since", "7fn", "not a duration"),
}


@pytest.mark.parametrize("case", list(SPANS))
def test_a_hostile_span_is_refused_at_once(case: str, job: Path) -> None:
    flag, value, fragment = SPANS[case]
    started = time.monotonic()
    result = cli("score", "--archive", job / "archive.db", "--actuals", job / "series.csv", flag, value)
    assert_user_error(result, flag, fragment)
    assert time.monotonic() - started < 5


def test_spans_still_count_back_from_the_latest_actual(job: Path) -> None:
    for span in ("4d", "96h", "3.5d", "1w"):  # the latest actual is 80 hours after the first forecast
        done = cli("score", "--archive", job / "archive.db", "--actuals", job / "series.csv", "--since", span, "--json")
        assert done.code == 0 and strict_json(done.stdout)["scored"] == HORIZON, (span, done.stderr)


# ---------------------------------------------------------------------------- strict JSON, and stdout on a full disk


def test_emit_json_is_strict_for_every_command(capsys) -> None:
    """Every command's --json line goes through Session.emit_json: NaN, infinities and numpy scalars included."""
    from lstmcast.cli.contract import Session

    Session().emit_json(
        {"a": float("nan"), "b": [np.inf, -np.inf, np.float32(np.nan)], "c": np.int64(3), "d": {"e": np.float64(2.5)}}
    )
    line = capsys.readouterr().out
    assert json.loads(line, parse_constant=lambda t: pytest.fail(t)) == {
        "a": None,
        "b": [None, None, None],
        "c": 3,
        "d": {"e": 2.5},
    }


@pytest.mark.slow
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_stdout_on_a_full_disk_is_exit_2(json_flag: list[str], job: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "lstmcast", "score", "--archive", str(job / "archive.db"), "--actuals",
             str(job / "series.csv"), *json_flag],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and "cannot write to stdout" in errors[0] and "Traceback" not in proc.stderr
