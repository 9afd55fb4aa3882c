"""Hostile and broken data through the real CLI: exit 2, one short `error:` line, nothing on disk harmed.

Every case of the table runs after a successful train (and predict) into the same output folder:
the bad run must leave `model.pt`, the previous forecast and every file outside the output folder
byte for byte as they were. Legitimate data that looks similar (small gaps, quoted commas, CRLF)
must still work.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstmcast.data import fastcsv
from lstmcast.data.frame import load_series

from .conftest import assert_user_error, cli, sine_csv, write_config
from .forked import Forker

MAX_LINE = 300  # characters of the error line, the test's own folder counted as 5 ("<tmp>")


# ---------------------------------------------------------------------------- a trained model to harm


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with series.csv, config.yaml and run/ holding model.pt and a forecast.csv made from them."""
    base = tmp_path_factory.mktemp("trained")
    sine_csv(base / "series.csv")
    write_config(base)
    assert cli("train", base / "config.yaml", "--quiet").code == 0
    assert cli("predict", base / "run" / "model.pt", "--data", base / "series.csv", "--quiet").code == 0
    return base


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained folder, so one case cannot spoil the next."""
    for name in ("series.csv", "config.yaml"):
        shutil.copy(trained / name, tmp_path / name)
    shutil.copytree(trained / "run", tmp_path / "run")
    write_config(tmp_path)  # its own config: output.dir 'run' next to it
    return tmp_path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (recursively, symlinks and special files as such) → a digest of its bytes."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink() or not path.exists():
            seen[rel] = f"link → {os.readlink(path)}" if path.is_symlink() else "?"
        elif path.is_file():
            seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif not path.is_dir():
            seen[rel] = "special"
    return seen


def lines_of(project: Path) -> list[str]:
    return (project / "series.csv").read_text().splitlines()


def write_lines(path: Path, lines: list[str], newline: str = "\n", final: bool = True) -> Path:
    path.write_text(newline.join(lines) + (newline if final else ""), newline="")
    return path


# ---------------------------------------------------------------------------- bad data, one builder a case


def decimal_comma(p: Path) -> Path:
    rows = lines_of(p)
    rows[100] = "2024-01-05 03:00:00,10,038,5.1"  # line 101: 10.038 written with a decimal comma
    return write_lines(p / "bad.csv", rows)


def decimal_comma_recent(p: Path) -> Path:
    rows = lines_of(p)
    rows[-3] = rows[-3].split(",")[0] + ",9,75,4.2"  # in the rows predict reads
    return write_lines(p / "bad.csv", rows)


def fewer_fields(p: Path) -> Path:
    rows = lines_of(p)
    rows[200] = rows[200].rsplit(",", 1)[0]  # the temp value left out
    return write_lines(p / "bad.csv", rows)


def extra_field_last_line_no_newline(p: Path) -> Path:
    rows = lines_of(p)
    rows[-1] += ",1"
    return write_lines(p / "bad.csv", rows, final=False)


def extra_field_crlf(p: Path) -> Path:
    rows = lines_of(p)
    rows[50] += ",7"
    return write_lines(p / "bad.csv", rows, newline="\r\n")


def extra_field_other_column_order(p: Path) -> Path:
    """Time not first: the chunked C-parser path, not the ISO one."""
    frame = pd.read_csv(p / "series.csv")[["load", "timestamp", "temp"]]
    rows = frame.to_csv(index=False).splitlines()
    rows[300] += ",0"
    return write_lines(p / "bad.csv", rows)


def extra_field_quoted_file(p: Path) -> Path:
    """Every field quoted (some exporters do): the quote-aware count, then the general reader."""
    rows = ['"' + '","'.join(line.split(",")) + '"' for line in lines_of(p)]
    rows[120] += ',"3"'
    return write_lines(p / "bad.csv", rows)


def decimal_comma_beside_quotes(p: Path) -> Path:
    rows = lines_of(p)
    rows[0] += ",note"
    rows[1:] = [f'{line},"ok, fine"' for line in rows[1:]]
    rows[77] = rows[77].split(",")[0] + ',10,5,4.5,"ok, fine"'
    return write_lines(p / "bad.csv", rows)


def stray_quote_and_extra_field(p: Path) -> Path:
    """A quote inside an unquoted field (pandas keeps it as text): counted by the csv module instead."""
    rows = lines_of(p)
    rows[0] += ",note"
    rows[1:] = [f"{line},12{chr(34)} pipe" for line in rows[1:]]
    rows[400] += ",x"
    return write_lines(p / "bad.csv", rows)


def extra_field_long_format(p: Path) -> Path:
    rows = ["id," + lines_of(p)[0]] + [f"a,{line}" for line in lines_of(p)[1:]]
    rows[10] += ",1"
    return write_lines(p / "bad.csv", rows)


def year_typo_at_end(p: Path) -> Path:
    rows = lines_of(p)
    rows[-1] = rows[-1].replace("2024-", "2025-", 1)  # 8,784 hours later
    return write_lines(p / "bad.csv", rows)


def year_9999(p: Path) -> Path:
    rows = lines_of(p)
    rows[-1] = rows[-1].replace("2024-", "9999-", 1)  # ~70 million hourly rows if filled
    return write_lines(p / "bad.csv", rows)


def many_small_gaps(p: Path) -> Path:
    rows = lines_of(p)
    drop = {i for start in range(20, 460, 40) for i in range(start, start + 9)}  # 99 rows: 20.6 % filled
    return write_lines(p / "bad.csv", [r for i, r in enumerate(rows) if i not in drop])


def long_empty_target(p: Path) -> Path:
    rows = lines_of(p)
    for i in range(150, 350):  # a dead sensor for 200 hours: times present, load empty
        t, _, temp = rows[i].split(",")
        rows[i] = f"{t},,{temp}"
    return write_lines(p / "bad.csv", rows)


def month_typo_mid_file(p: Path) -> Path:
    rows = lines_of(p)
    rows[240] = rows[240].replace("2024-01-", "2024-11-", 1)  # sorted, it lands ten months after the rest
    return write_lines(p / "bad.csv", rows)


def panel_with_a_daily_series(p: Path) -> Path:
    hourly = pd.read_csv(p / "series.csv").assign(id="a")
    daily = hourly.iloc[:100].assign(id="b")
    daily["timestamp"] = pd.date_range("2024-01-01", periods=100, freq="D").strftime("%Y-%m-%d %H:%M:%S")
    pd.concat([hourly, daily])[["id", "timestamp", "load", "temp"]].to_csv(p / "bad.csv", index=False)
    return p / "bad.csv"


def gap_in_recent_rows(p: Path) -> Path:
    rows = lines_of(p)
    return write_lines(p / "bad.csv", rows[:1] + rows[1:150] + rows[350:])  # 200 hours gone before the last 130


def empty_target_at_the_end(p: Path) -> Path:
    rows = lines_of(p)
    for i in range(-5, 0):
        t, _, temp = rows[i].split(",")
        rows[i] = f"{t},,{temp}"
    return write_lines(p / "bad.csv", rows)


def daily_rows(p: Path) -> Path:
    frame = pd.read_csv(p / "series.csv")
    frame["timestamp"] = pd.date_range("2023-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d %H:%M:%S")
    frame.to_csv(p / "bad.csv", index=False)
    return p / "bad.csv"


def quarter_hour_rows(p: Path) -> Path:
    frame = pd.read_csv(p / "series.csv")
    frame["timestamp"] = pd.date_range("2024-01-01", periods=len(frame), freq="15min").strftime("%Y-%m-%d %H:%M")
    frame.to_csv(p / "bad.csv", index=False)
    return p / "bad.csv"


def duplicate_column(p: Path) -> Path:
    frame = pd.read_csv(p / "series.csv")
    text = frame.assign(other=frame["load"] * 2).to_csv(index=False)
    return write_lines(
        p / "bad.csv", text.replace("timestamp,load,temp,other", "timestamp,load,temp,load").splitlines()
    )


def duplicate_column_mangled_name(p: Path) -> Path:
    """`load,load`: pandas would call the second one load.1, which the config below asks for."""
    rows = lines_of(p)
    rows[0] = "timestamp,load,load"
    return write_lines(p / "bad.csv", rows)


def huge_cell(p: Path) -> Path:
    rows = lines_of(p)
    t, _, temp = rows[42].split(",")
    rows[42] = f"{t},{'x' * 1_000_000},{temp}"  # a megabyte of garbage in one cell
    return write_lines(p / "bad.csv", rows)


def huge_header(p: Path) -> Path:
    rows = lines_of(p)
    rows[0] = "timestamp," + "L" * 500_000 + "," + ",".join(f"c{i}" for i in range(1, 2000))  # 'load' is gone
    rows[1:] = [line + ",0" * 1998 for line in rows[1:]]
    return write_lines(p / "bad.csv", rows)


def huge_timestamp(p: Path) -> Path:
    rows = lines_of(p)
    rows[7] = "2024-01-01 " + "9" * 200_000 + ",1,2"
    return write_lines(p / "bad.csv", rows)


def newline_in_bad_cell(p: Path) -> Path:
    rows = lines_of(p)
    t, _, temp = rows[9].split(",")
    rows[9] = f'{t},"12\n5 kW",{temp}'
    return write_lines(p / "bad.csv", rows)


def fifo(p: Path) -> Path:
    os.mkfifo(p / "bad.csv")
    return p / "bad.csv"


def symlink_to_fifo(p: Path) -> Path:
    os.mkfifo(p / "pipe")
    (p / "bad.csv").symlink_to(p / "pipe")
    return p / "bad.csv"


def unix_socket(p: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(p / "bad.csv"))  # stays bound until the test process ends: the path stays a socket
    _keep.append(server)
    return p / "bad.csv"


_keep: list[socket.socket] = []


def device(p: Path) -> Path:
    return Path("/dev/null")


def folder_in_the_way(p: Path) -> Path:
    (p / "data").write_text("not a folder\n")
    return p / "data" / "bad.csv"  # a file where a folder should be: ENOTDIR


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    command: str  # train, validate, predict, evaluate, inspect
    fragments: tuple[str, ...]
    subprocess: bool = False  # for inputs that hung before: a hang must fail the test, not stall it
    extra: tuple[str, ...] = ()


CASES = {
    # 1. rows with more or fewer fields than the header
    "decimal-comma": Case(decimal_comma, "train", ("bad.csv: line 101 has 4 fields", "'10,038'", "decimal comma")),
    "decimal-comma-predict": Case(decimal_comma_recent, "predict", ("line 479 has 4 fields", "'9,75'", "decimal")),
    "fewer-fields": Case(fewer_fields, "validate", ("line 201 has 2 fields but the header has 3",)),
    "extra-field-no-final-newline": Case(extra_field_last_line_no_newline, "evaluate", ("line 481 has 4 fields",)),
    "extra-field-crlf": Case(extra_field_crlf, "train", ("line 51 has 4 fields",)),
    "extra-field-chunked-path": Case(extra_field_other_column_order, "train", ("line 301 has 4 fields",)),
    "extra-field-quoted-file": Case(extra_field_quoted_file, "validate", ("line 121 has 4 fields",)),
    "decimal-comma-beside-quotes": Case(decimal_comma_beside_quotes, "train", ("line 78 has 5 fields", "'10,5'")),
    "stray-quote-csv-module": Case(stray_quote_and_extra_field, "validate", ("line 401 has 5 fields",)),
    "extra-field-long-format": Case(
        extra_field_long_format, "train", ("line 11 has 5 fields",), extra=("--set", "data.series_id=id")
    ),
    # 2. gap filling without bounds, and data of another frequency
    "year-typo": Case(year_typo_at_end, "train", ("8,784 missing rows", "before line 481", "data.max_gap (168)")),
    "year-9999": Case(year_9999, "validate", ("69,907,", "9999-", "line 481", "data.max_gap")),
    "share-filled": Case(many_small_gaps, "train", ("99 of 480 rows (20.6%)", "data.max_filled (0.2)")),
    "dead-sensor": Case(long_empty_target, "validate", ("200 rows to fill", "before line 351", "data.max_gap")),
    "month-typo-mid-file": Case(month_typo_mid_file, "validate", ("missing rows from", "before line 241")),
    "panel-series-of-another-frequency": Case(
        panel_with_a_daily_series,
        "train",
        ("series 'b': the rows are 1 day apart (D), but the frequency of the longest series, 'a', is h",),
        extra=("--set", "data.series_id=id"),
    ),
    "year-typo-predict": Case(year_typo_at_end, "predict", ("8,784 missing rows", "data.max_gap")),
    "gap-in-recent-rows-predict": Case(gap_in_recent_rows, "predict", ("200 missing rows", "before line 151")),
    "empty-end-predict": Case(
        empty_target_at_the_end, "predict", ("last 5 rows", "forecasts start after the last row")
    ),
    "daily-to-hourly-model": Case(daily_rows, "predict", ("1 day apart (D)", "the model's frequency is h")),
    "quarter-hours-to-hourly-model": Case(quarter_hour_rows, "evaluate", ("15 minutes apart", "frequency is h")),
    "daily-data-freq-hourly": Case(
        daily_rows, "train", ("1 day apart", "data.freq is h"), extra=("--set", "data.freq=h")
    ),
    "year-typo-inspect": Case(year_typo_at_end, "inspect", ("8,784 missing rows",)),
    # 3. repeated column names
    "duplicate-column": Case(duplicate_column, "train", ("column 'load' appears 2 times", "columns 2, 4", "bad.csv")),
    "duplicate-column-predict": Case(duplicate_column, "predict", ("column 'load' appears 2 times",)),
    "duplicate-mangled-name": Case(
        duplicate_column_mangled_name,
        "validate",
        ("column 'load.1' not found",),
        extra=("--set", "data.target=load.1", "--set", "data.features=[]"),
    ),
    # 4. not a regular file
    "fifo": Case(fifo, "validate", ("is a named pipe (FIFO), not a regular file",), subprocess=True),
    "fifo-predict": Case(fifo, "predict", ("named pipe",), subprocess=True),
    "symlink-to-fifo": Case(symlink_to_fifo, "train", ("named pipe",), subprocess=True),
    "socket": Case(unix_socket, "validate", ("is a socket",), subprocess=True),
    "device": Case(device, "predict", ("/dev/null is a character device",)),
    "folder-in-the-way": Case(folder_in_the_way, "train", ("data/bad.csv not found",)),
    # 5. echoed values capped
    "huge-cell": Case(huge_cell, "train", ("line 43, column 'load': 'xxxxxxxx", "…' is not a number")),
    "huge-header": Case(huge_header, "validate", ("column 'load' not found", "'LLLL", "more")),
    "huge-timestamp": Case(huge_timestamp, "predict", ("line 8: cannot parse '2024-01-01 9999", "…'")),
    "newline-in-cell": Case(newline_in_bad_cell, "train", ("line 10, column 'load': '12\\n5 kW' is not a number",)),
}


def run_case(case: Case, project: Path, data: Path, forker: Forker):
    run = project / "run"
    args = {
        "train": ("train", project / "config.yaml", "--data", data, "--out", run),
        "validate": ("validate", project / "config.yaml", "--data", data),
        "predict": ("predict", run / "model.pt", "--data", data, "--out", run / "forecast.csv"),
        "evaluate": ("evaluate", run / "model.pt", "--data", data, "--report", run / "report.json"),
        "inspect": ("inspect", run / "model.pt", "--data", data),
    }[case.command] + case.extra
    if case.subprocess:  # a forked process (tests/forked.py): a hang is killed and fails the test
        return forker.run(*args, "--quiet", timeout=90)
    return cli(*args, "--quiet")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_data_is_one_short_line_and_harms_nothing(name: str, project: Path, forker: Forker) -> None:
    case = CASES[name]
    data = case.make(project)
    before = snapshot(project)
    result = run_case(case, project, data, forker)
    assert_user_error(result, *case.fragments)
    line = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert len(line.replace(str(project), "<tmp>")) <= MAX_LINE, line[:1000]
    assert "internal error" not in result.stderr
    after = snapshot(project)
    logs = {"run/train.log", "run/.lstmcast.lock"}  # a failed train may log and take the lock, nothing else
    assert {k: v for k, v in after.items() if k not in logs} == {k: v for k, v in before.items() if k not in logs}


# ---------------------------------------------------------------------------- files that change under the reader


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A million hourly rows: long enough to read that the file can be swapped while it is read."""
    path = tmp_path_factory.mktemp("big") / "big.csv"
    stamps = pd.date_range("2000-01-01", periods=1_000_000, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    values = np.round(np.sin(np.arange(len(stamps)) / 24), 4)
    pd.DataFrame({"timestamp": stamps, "load": values, "temp": values}).to_csv(path, index=False)
    return path


def _while_open(pid: int, path: Path, act: Callable[[], None], timeout: float = 60) -> bool:
    """Run `act` while process `pid` is still reading `path` (its offset short of the end); False if never seen so.

    Acting on a file that is merely open would race the reader's final check (it runs just before the close).
    """
    size = path.stat().st_size
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != str(path):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    pos = int(info.readline().split()[1])  # "pos:\t<offset>"
                if pos < size:
                    act()
                    return True
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.001)
    return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see when the file is open")
@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("replace", "was replaced while lstmcast was reading it"),
        ("delete", "was deleted while"),
        ("append", "changed while"),
    ],
)
@pytest.mark.slow
def test_a_file_changed_while_read_is_a_user_error(
    how: str, says: str, big_csv: Path, tmp_path: Path, forker: Forker
) -> None:
    data = tmp_path / "data.csv"
    shutil.copy(big_csv, data)
    write_config(tmp_path)
    newer = tmp_path / "newer.csv"
    sine_csv(newer)

    def act() -> None:
        if how == "replace":
            os.replace(newer, data)
        elif how == "delete":
            data.unlink()
        else:
            with data.open("a") as f:
                f.write("2114-01-29 16:00:00,1,1\n")

    # Another process reads the file: one forked from an interpreter that has imported lstmcast (tests/forked.py).
    for _ in range(3):  # a reader that got through the file between two polls is tried again
        shutil.copy(big_csv, data)
        sine_csv(newer)
        proc = forker.start("validate", tmp_path / "config.yaml", "--data", data)
        acted = _while_open(proc.pid, data, act)
        code = proc.wait(120)
        err = proc.stderr
        if acted:
            break
    assert acted, "lstmcast was never seen part-way through the data file"
    assert code == 2, (code, err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0] and "Traceback" not in err, err


def test_an_unreadable_file_is_a_user_error(project: Path) -> None:
    data = project / "locked.csv"
    shutil.copy(project / "series.csv", data)
    data.chmod(0)
    try:
        data.open("rb").close()
    except PermissionError:
        pass
    else:
        pytest.skip("this user reads a chmod 000 file anyway (root): permissions do not bite here")
    result = cli("validate", project / "config.yaml", "--data", data)
    assert_user_error(result, "locked.csv: permission denied")


# ---------------------------------------------------------------------------- legitimate data still works


def test_small_gaps_within_the_bounds_are_filled_as_before(project: Path) -> None:
    rows = lines_of(project)
    kept = [r for i, r in enumerate(rows) if i not in {30, 31, 32, 200, 201} and not 300 <= i < 340]
    data = write_lines(project / "gappy.csv", kept)  # 45 of 480 rows missing (9.4 %), longest gap 40
    trained = cli("train", project / "config.yaml", "--data", data, "--out", project / "again")
    assert trained.code == 0, trained.stderr
    assert "filled 45 missing rows" in trained.stderr
    series = load_series(data, timestamp="timestamp", target=["load"], features=["temp"])
    assert (series.rows, series.filled_rows) == (480, 45)
    full = load_series(project / "series.csv", timestamp="timestamp", target=["load"], features=["temp"])
    assert np.array_equal(series.values[:29], full.values[:29])  # the rows given are the rows used
    recent = write_lines(project / "recent.csv", rows[:1] + rows[-200:-20] + rows[-17:])  # 3 rows missing
    predicted = cli("predict", project / "again" / "model.pt", "--data", recent, "--out", project / "f.csv")
    assert predicted.code == 0, predicted.stderr
    assert len(pd.read_csv(project / "f.csv")) == 12


def test_quoted_fields_with_commas_crlf_and_a_bom_read_like_the_plain_file(project: Path) -> None:
    plain = load_series(project / "series.csv", timestamp="timestamp", target=["load"], features=["temp"])
    rows = lines_of(project)
    quoted = [rows[0] + ",note"] + [f'"{r.split(",")[0]}",{r.split(",", 1)[1]},"a, b ""c"", d"' for r in rows[1:]]
    variants = {
        "quoted.csv": write_lines(project / "quoted.csv", quoted),
        "crlf.csv": write_lines(project / "crlf.csv", rows, newline="\r\n"),
        "quoted-crlf.csv": write_lines(project / "quoted-crlf.csv", quoted, newline="\r\n"),
        "multiline-quoted.csv": write_lines(
            project / "multiline-quoted.csv", [quoted[0]] + [q.replace('", d"', '",\nd"') for q in quoted[1:]]
        ),
    }
    (project / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n\r\n")
    variants["bom.csv"] = project / "bom.csv"
    for name, path in variants.items():
        series = load_series(path, timestamp="timestamp", target=["load"], features=["temp"])
        assert np.array_equal(series.values, plain.values), name
        assert cli("validate", project / "config.yaml", "--data", path).code == 0, name
    assert cli("train", project / "config.yaml", "--data", variants["quoted-crlf.csv"], "--quiet").code == 0


# ---------------------------------------------------------------------------- the field count itself


text_rows = st.lists(
    st.lists(st.sampled_from(["1", "", "a b", '"x,y"', '"q""r"', '"line\nbreak"', " ", "2.5"]), min_size=1, max_size=4),
    min_size=1,
    max_size=12,
)


@given(rows=text_rows, newline=st.sampled_from(["\n", "\r\n", "\r"]), blank=st.integers(0, 3), chunk=st.integers(1, 64))
def test_the_vectorised_field_count_agrees_with_the_csv_module(rows, newline, blank, chunk) -> None:
    lines = ["a,b,c"] + [",".join(r) for r in rows]
    lines.insert(min(blank, len(lines)), "")  # blank lines are skipped wherever they are, as pandas skips them
    data = newline.join(lines).encode() + newline.encode()
    fast = fastcsv.ragged_record(io.BytesIO(data), 3, chunk_bytes=chunk)
    slow = fastcsv._ragged_by_csv(io.BytesIO(data), 3)
    assert (fast and (fast.line, fast.fields)) == (slow and (slow.line, slow.fields)), data
