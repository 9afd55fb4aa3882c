"""Family 11 of the trust tables: promote's record and the model in service never disagree.

- The decision is recorded before the swap; a promotions.jsonl that cannot be written (read-only, a
  folder, a FIFO, a link to a device) means no swap and exit 2 — DIR exactly as it was.
- A corrupted promotions.jsonl makes --rollback say which lines it read and which it could not (exit 2).
- --keep prunes by the records' order, and keeps the model a rollback of the new champion needs.
- Races with real processes, 8 repetitions each: a candidate file replaced while promote evaluates it is
  never installed unevaluated (the bytes read once are scored, hashed and installed); `predict --archive`
  racing promotes archives every row under the id of the bytes it actually loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.data import sinks

from .conftest import assert_user_error, cli, sine_csv, write_config
from .trust import snapshot

REPEAT = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """series.csv and three models of the same columns: poor (1 epoch), mid (2) and good (6)."""
    folder = tmp_path_factory.mktemp("promote")
    sine_csv(folder / "series.csv")
    for name, train in (("poor", {"epochs": 1, "lr": 0.001}), ("mid", {"epochs": 2}), ("good", {"epochs": 6})):
        write_config(folder, {"train": train, "output": {"dir": name}}, f"{name}.yaml")
        done = cli("train", folder / f"{name}.yaml", "--quiet")
        assert done.code == 0, done.stderr
    return folder


def serving(models: Path, tmp_path: Path, champion: str = "poor") -> Path:
    folder = tmp_path / "serving"
    done = cli("promote", models / champion / "model.pt", "--to", folder, "--quiet")
    assert done.code == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def promoted(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serving folder where good replaced poor (history/poor.pt, two records): copied by each case."""
    folder = serving(models, tmp_path_factory.mktemp("promoted"))
    done = cli("promote", models / "good" / "model.pt", "--to", folder, "--json")
    assert done.code == 0 and json.loads(done.stdout)["action"] == "promoted", done.stderr
    return folder


@pytest.fixture(scope="module")
def first(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serving folder whose first champion is poor: copied by each case."""
    return serving(models, tmp_path_factory.mktemp("first"))


def copy(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "serving", symlinks=True))


def served(folder: Path) -> str:
    return sinks.model_id(folder / "model.pt")


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "promotions.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------- a record that cannot be written


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _link_to_null(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/null")


def _loop(path: Path) -> None:
    path.unlink()
    (path.parent / "other.jsonl").symlink_to(path.name)
    path.symlink_to("other.jsonl")


BLOCKED = {
    "promotions.jsonl read-only (0444), even for root": (lambda p: p.chmod(0o444), "read-only"),
    "promotions.jsonl a folder": (_folder, "folder"),
    "promotions.jsonl a FIFO": (_fifo, "FIFO"),
    "promotions.jsonl a link to /dev/null": (_link_to_null, "character device"),
    "promotions.jsonl a link that loops": (_loop, "loops"),
    "model.pt read-only (0444)": (lambda p: (p.parent / "model.pt").chmod(0o444), "read-only"),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_a_decision_that_cannot_be_recorded_swaps_nothing(
    case: str, models: Path, first: Path, tmp_path: Path, forker
) -> None:
    folder = copy(first, tmp_path)
    block, fragment = BLOCKED[case]
    block(folder / "promotions.jsonl")
    before = snapshot(folder)
    run = (lambda *a: forker.run(*a, timeout=120)) if "FIFO" in case else cli  # a FIFO must not hang the suite
    result = run("promote", models / "good" / "model.pt", "--to", folder)
    assert_user_error(result, fragment)
    after = snapshot(folder)
    after.pop(".lstmcast.lock", None), before.pop(".lstmcast.lock", None)
    assert after == before  # no swap, no history copy, no record


# ---------------------------------------------------------------------------- rollback on a damaged record


def _append_bytes(data: bytes):
    def damage(path: Path) -> None:
        with open(path, "ab") as f:
            f.write(data)

    return damage


DAMAGED = {
    "a line that is not JSON": (_append_bytes(b"{not json\n"), "line 3 cannot be read"),
    "bytes that are not UTF-8": (_append_bytes(b"\xff\xfe\x00garbage\n"), "line 3 cannot be read"),
    "a JSON array": (_append_bytes(b"[1, 2, 3]\n"), "line 3 cannot be read"),
    "a record whose champion is a number": (
        _append_bytes(b'{"action": "promoted", "champion": 5, "champion_after": "x"}\n'),
        "line 3 cannot be read",
    ),
    "a last line cut by a crash": (_append_bytes(b'{"action": "promoted", "champ'), "line 3 cannot be read"),
    "an edited line in the middle": (
        lambda p: p.write_bytes(p.read_bytes().replace(b'"action"', b'"act!on"', 1)),
        "line 1 cannot be read",
    ),
    "the record is a FIFO": (_fifo, "FIFO"),
    "the record is a folder": (_folder, "folder"),
    "the record is gone": (lambda p: p.unlink(), "records no promotion"),
    "the history file was edited": (
        lambda p: (p.parent / "history").joinpath(next(iter(os.listdir(p.parent / "history")))).write_bytes(b"x"),
        "lstmcast checkpoint",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_rollback_on_a_damaged_record_says_what_it_could_not_read(
    case: str, promoted: Path, tmp_path: Path, forker
) -> None:
    folder = copy(promoted, tmp_path)
    damage, fragment = DAMAGED[case]
    damage(folder / "promotions.jsonl")
    before = snapshot(folder)
    run = (lambda *a: forker.run(*a, timeout=120)) if "FIFO" in case else cli  # a FIFO must not hang the suite
    result = run("promote", "--rollback", "--to", folder)
    assert_user_error(result, fragment)
    after = snapshot(folder)
    after.pop(".lstmcast.lock", None), before.pop(".lstmcast.lock", None)
    assert after == before


@pytest.mark.slow
def test_keep_1_keeps_what_the_next_rollback_needs(models: Path, tmp_path: Path) -> None:
    """poor → good (--keep 1) → rollback → good again (--keep 1): poor.pt survives (by file age it would not:
    good.pt was copied into history at the rollback, poor.pt was not copied again), so rollback works."""
    folder = serving(models, tmp_path)
    poor, good = (sinks.model_id(models / n / "model.pt") for n in ("poor", "good"))
    for step in (
        ["promote", models / "good/model.pt"],
        ["promote", "--rollback"],
        ["promote", models / "good/model.pt"],
    ):
        done = cli(*step, "--to", folder, "--keep", "1", "--quiet")
        assert done.code == 0, done.stderr
        time.sleep(0.02)  # distinct file ages
    assert served(folder) == good and (folder / "history" / f"{poor}.pt").exists()
    assert cli("promote", "--rollback", "--to", folder, "--quiet").code == 0
    assert served(folder) == poor
    assert [r["action"] for r in records(folder)] == ["promoted", "promoted", "rollback", "promoted", "rollback"]


@pytest.mark.slow
def test_keep_prunes_by_the_records_order(models: Path, tmp_path: Path) -> None:
    folder = serving(models, tmp_path)
    history = folder / "history"
    for name in ("mid", "good"):
        assert cli("promote", models / name / "model.pt", "--to", folder, "--keep", "1", "--quiet").code == 0
    kept = sorted(p.stem for p in history.glob("*.pt"))
    newest = records(folder)[-1]
    if newest["action"] == "promoted":  # mid replaced poor, good replaced mid: mid is what a rollback needs
        assert kept == [newest["champion"]["id"]]
    os.utime(history / f"{kept[0]}.pt", (1, 1))  # an ancient file age changes nothing
    assert cli("promote", models / "poor" / "model.pt", "--to", folder, "--keep", "1", "--quiet").code == 0
    assert sorted(p.stem for p in history.glob("*.pt")) == kept


# ---------------------------------------------------------------------------- races with real processes

FLIPPER = """
import os, sys, time
from pathlib import Path
target, a, b = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
n = 0
print("flipping", flush=True)
while True:  # a retrain writing model.pt again and again, each time complete (temporary file and rename)
    source = a if n % 2 else b
    tmp = target.with_name(f".flip{n % 2}")
    tmp.write_bytes(source.read_bytes())
    os.replace(tmp, target)
    n += 1
    time.sleep(0.003)
"""


def background(*args: str | Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", *map(str, args)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() in ("flipping", "swapping")
    return proc


@pytest.mark.slow
def test_a_candidate_replaced_while_evaluated_is_never_installed_unevaluated(models: Path, tmp_path: Path) -> None:
    candidate = tmp_path / "staging" / "model.pt"
    candidate.parent.mkdir()
    shutil.copy(models / "good" / "model.pt", candidate)
    scores: dict[str, set[float]] = {}
    flipper = background(FLIPPER, candidate, models / "good" / "model.pt", models / "poor" / "model.pt")
    try:
        for rep in range(REPEAT):
            folder = serving(models, tmp_path / str(rep), champion="mid")
            done = cli("promote", candidate, "--to", folder, "--json")
            assert done.code == 0, done.stderr
            record = json.loads(done.stdout)
            scores.setdefault(record["candidate"]["id"], set()).add(record["candidate"].get("score"))
            assert served(folder) == record["champion_after"]  # what the record says is what serves
            if record["action"] == "promoted":
                assert record["champion_after"] == record["candidate"]["id"]
            assert not (folder / ".candidate.pt").exists()
    finally:
        flipper.kill()
        flipper.wait()
    assert all(len(found) == 1 for found in scores.values()), scores  # an id always carries its own bytes' score


SWAPPER = """
import sys
from pathlib import Path
from lstmcast.flows.promote import _install
folder, a, b = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
n = 0
print("swapping", flush=True)
while True:  # promote's swap, as fast as it goes
    _install(a if n % 2 else b, folder, folder / "model.pt", keep=2)
    n += 1
"""


@pytest.mark.slow
def test_predict_racing_promote_archives_the_id_of_the_model_it_used(models: Path, tmp_path: Path) -> None:
    data = tmp_path / "upto.csv"
    pd.read_csv(models / "series.csv").iloc[:400].to_csv(data, index=False)
    reference = {}
    for name in ("good", "poor"):  # each model's own forecast for this data
        out = tmp_path / f"{name}.csv"
        assert cli("predict", models / name / "model.pt", "--data", data, "--out", out, "--quiet").code == 0
        reference[sinks.model_id(models / name / "model.pt")] = pd.read_csv(out)["load"].to_numpy()
    folder = serving(models, tmp_path, champion="good")
    archive = tmp_path / "archive.db"
    swapper = background(SWAPPER, folder, models / "good" / "model.pt", models / "poor" / "model.pt")
    try:
        for _ in range(REPEAT * 2):
            done = cli("predict", folder / "model.pt", "--data", data, "--out", tmp_path / "f.csv",
                       "--archive", archive, "--quiet")  # fmt: skip
            assert done.code == 0, done.stderr
    finally:
        swapper.kill()
        swapper.wait()
    with sqlite3.connect(archive) as con:
        rows = con.execute("SELECT model_id, value FROM lstmcast_forecasts ORDER BY model_id, step").fetchall()
    by_model: dict[str, list[float]] = {}
    for model, value in rows:
        by_model.setdefault(model, []).append(value)
    assert by_model and set(by_model) <= set(reference)
    for model, values in by_model.items():
        np.testing.assert_allclose(values, reference[model], rtol=1e-6, err_msg=model)
