"""Family 12 of the trust tables: tune's own inputs keep the config's rules, and a study knows its problem.

- The --space file goes through the config's strict YAML reader (alias bombs, duplicate keys, deep nesting,
  non-UTF-8 bytes, a FIFO: one line each, at once).
- --seed, --storage (unknown kind, a folder, a text file, a read-only file or file system, a closed port),
  --out (a file) and --budget are one line, exit 2, before any trial; a storage locked by another process is
  waited for a bounded time, then one line.
- A study's identity is its problem (data, targets, horizon, …): another problem pointed at the same --out is
  refused, naming what differs; at the same --storage it gets a study of its own, never ranked together.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lstmcast.flows import study

from .conftest import assert_user_error, cli, sine_csv, write_config
from .trust import snapshot

optuna = pytest.importorskip("optuna")

SPACE = {"train.lr": {"low": 0.001, "high": 0.02, "log": True}, "train.epochs": [1]}
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    sine_csv(tmp_path / "series.csv")
    write_config(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path


def _space(folder: Path, content: str | bytes) -> Path:
    path = folder / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.yaml")
    return folder / "pipe.yaml"


SPACES = {  # the --space file → the fragment of the one error line
    "a 380-byte alias bomb": (lambda f: _space(f, BOMB), "YAML aliases"),
    "a duplicate key": (
        lambda f: _space(f, "train.lr: [0.1]\nmodel.hidden_size: [8]\ntrain.lr: [0.2]\n"),
        "duplicate key",
    ),
    "nested 1,000 deep": (lambda f: _space(f, "train.lr: " + "[" * 1000 + "]" * 1000 + "\n"), "nested more than"),
    "bytes that are not UTF-8": (lambda f: _space(f, b"train.lr: [\xff\xfe]\n"), "not UTF-8"),
    "a 5,000-digit integer": (lambda f: _space(f, "train.epochs: [" + "9" * 5000 + "]\n"), "cannot read YAML"),
    "a Python object tag": (lambda f: _space(f, "train.lr: !!python/object:os.system [x]\n"), "line 1"),
    "over a megabyte": (lambda f: _space(f, "# " + "x" * (2 << 20) + "\n"), "over 1 MiB"),
    "a FIFO": (_fifo, "not a regular file"),
    "a folder": (lambda f: (f / "dir.yaml").mkdir() or f / "dir.yaml", "is a folder"),
    "missing": (lambda f: f / "none.yaml", "not found"),
}


@pytest.mark.parametrize("case", list(SPACES))
def test_a_hostile_space_file_is_one_line_at_once(case: str, tiny: Path, forker) -> None:
    make, fragment = SPACES[case]
    started = time.monotonic()
    run = (lambda *a: forker.run(*a, timeout=60)) if case == "a FIFO" else cli  # a FIFO must not hang the suite
    result = run("tune", tiny / "config.yaml", "--budget", "1m", "--space", make(tiny), "--out", tiny / "t")
    assert_user_error(result, "--space", fragment)
    assert time.monotonic() - started < 30 and not (tiny / "t").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _text_file(f: Path) -> Path:
    (f / "notes.txt").write_text("a text file someone keeps here\n")
    return f / "notes.txt"


def _read_only_study(f: Path) -> Path:
    import sqlite3

    with sqlite3.connect(f / "ro.db") as con:
        con.execute("CREATE TABLE x (y)")
    (f / "ro.db").chmod(0o444)
    return f / "ro.db"


OPTIONS = {  # the extra options → fragment; every case refused before any trial
    "--seed -1": (lambda f: ["--seed", "-1"], "--seed -1 is out of range"),
    "--seed 2**32": (lambda f: ["--seed", str(2**32)], "out of range"),
    "--seed of 30 digits": (lambda f: ["--seed", "9" * 30], "out of range"),
    "--storage of an unknown kind": (lambda f: ["--storage", "foo://h/x"], "unknown database kind"),
    "--storage mysql": (lambda f: ["--storage", "mysql://u@h/x"], "unknown database kind"),
    "--storage in memory": (lambda f: ["--storage", "sqlite://"], "in-memory"),
    "--storage a folder": (lambda f: ["--storage", f], "folder"),
    "--storage a text file": (lambda f: ["--storage", _text_file(f)], "not a SQLite database"),
    "--storage read-only (0444)": (lambda f: ["--storage", _read_only_study(f)], "read-only"),
    "--storage a FIFO": (lambda f: ["--storage", _fifo(f)], "FIFO"),
    "--storage a closed port": (
        lambda f: ["--storage", f"postgresql://u@127.0.0.1:{_free_port()}/db"],
        "cannot use the study storage postgresql://u@127.0.0.1:",
    ),
    "--out a file": (lambda f: ["--out", f / "series.csv"], "is a file"),
    "--budget of 60,000 digits": (lambda f: ["--budget", "9" * 60_000], "not a duration"),
    "--budget 1e400": (lambda f: ["--budget", "1e400"], "--budget"),
    "--budget of 400 days": (lambda f: ["--budget", "400d"], "longer than"),
    "--trial-limit -5m": (lambda f: ["--trial-limit", "-5m"], "--trial-limit"),
}


@pytest.mark.parametrize("case", list(OPTIONS))
def test_a_bad_tune_option_is_one_line_before_any_trial(case: str, tiny: Path, forker) -> None:
    make, fragment = OPTIONS[case]
    extra = make(tiny)
    base = ["tune", tiny / "config.yaml", "--space", tiny / "space.yaml"]
    if "--budget" not in extra:
        base += ["--budget", "1m"]
    if "--out" not in extra:
        base += ["--out", tiny / "t"]
    before = snapshot(tiny)
    run = (lambda *a: forker.run(*a, timeout=120)) if "FIFO" in case else cli  # a FIFO must not hang the suite
    result = run(*base, *extra, "--json")
    assert_user_error(result, fragment)
    assert json.loads(result.stdout)["status"] == "error"
    after = snapshot(tiny)
    for made in ("t", "t/.lstmcast-study.json"):  # a closed port is found when connecting, after the checks
        after.pop(made, None)
    assert after == before


@pytest.mark.slow
def test_a_storage_on_a_read_only_file_system(tiny: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    disk = tiny / "ro"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        result = cli("tune", tiny / "config.yaml", "--budget", "1m", "--space", tiny / "space.yaml",
                     "--storage", disk / "study.db", "--out", tiny / "t")  # fmt: skip
        assert_user_error(result, "cannot use the study storage", "study.db")
        result = cli("tune", tiny / "config.yaml", "--budget", "1m", "--out", disk / "t")
        assert_user_error(result, "Read-only file system")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_storage_locked_by_another_process_is_waited_for_then_one_line(tiny: Path, monkeypatch) -> None:
    monkeypatch.setattr(study, "STORAGE_WAIT", 2.0)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tiny / "held.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = cli("tune", tiny / "config.yaml", "--budget", "1m", "--space", tiny / "space.yaml",
                     "--storage", tiny / "held.db", "--out", tiny / "t")  # fmt: skip
        assert_user_error(result, "cannot use the study storage", "locked", "waited for 2s")
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------- a study knows its problem


def _tune(config: Path, out: Path, *extra: str | Path) -> dict:
    done = cli("tune", config, "--budget", "5m", "--space", config.parent / "space.yaml", "--trials", "1",
               "--out", out, "--json", "--quiet", *extra)  # fmt: skip
    assert done.code == 0, done.stderr
    return json.loads(done.stdout)


def _other_problem(tiny: Path) -> Path:
    write_config(tiny, {"data": {"path": "series.csv", "target": "temp", "features": []}}, "temp.yaml")
    return tiny / "temp.yaml"


@pytest.mark.slow
def test_another_problem_at_the_same_out_is_refused_and_at_the_same_storage_gets_its_own_study(tiny: Path) -> None:
    first = _tune(tiny / "config.yaml", tiny / "t")
    assert first["study"].startswith("lstmcast-") and first["problem"]["target"] == ["load"]
    temp = _other_problem(tiny)
    before = snapshot(tiny / "t")
    refused = cli("tune", temp, "--budget", "5m", "--space", tiny / "space.yaml", "--out", tiny / "t")
    assert_user_error(refused, "holds the study of another problem", "target ['load'] → ['temp']")
    assert snapshot(tiny / "t") == before
    for horizon in (6,):  # the horizon is part of the problem too
        other = cli("tune", tiny / "config.yaml", "--budget", "5m", "--space", tiny / "space.yaml", "--out",
                    tiny / "t", "--set", f"window.horizon={horizon}")  # fmt: skip
        assert_user_error(other, "horizon 12 → 6")
    shared = _tune(temp, tiny / "u", "--storage", tiny / "t" / "study.db")
    assert shared["study"] != first["study"] and shared["complete"] + shared["pruned"] == 1
    assert sorted(optuna.get_all_study_names(f"sqlite:///{tiny / 't' / 'study.db'}")) == sorted(
        [first["study"], shared["study"]]
    )
    assert (
        "temp" in (tiny / "u" / "best.yaml").read_text()
        and "load" not in yaml.safe_load((tiny / "u" / "best.yaml").read_text())["data"]["target"]
    )
    again = _tune(tiny / "config.yaml", tiny / "t", "--trials", "2")  # the same problem continues its study
    assert again["study"] == first["study"] and again["complete"] + again["pruned"] == 2
