"""Unattended operation: locks, interruption and resume, kills, logs, JSON, dated outputs, warm starts."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch

import lstmcast.learn.loop
from lstmcast.model import checkpoint

from .conftest import assert_user_error, cli
from .forked import Forker


def wait_for_line(proc: subprocess.Popen, fragment: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if fragment in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended (code {proc.returncode}) before printing {fragment!r}")
    raise AssertionError(f"no {fragment!r} within {timeout}s")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path).members[0]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- lock


HOLDER = "import sys, time; from lstmcast.lock import hold\nwith hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"


@pytest.mark.slow
def test_second_writer_exits_75_and_a_killed_holders_lock_is_not_stale(project):
    out = project / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = cli("train", project / "config.yaml", "--quiet")
        assert blocked.code == 75 and "another lstmcast run holds" in blocked.stderr
        assert f"pid {holder.pid}" in blocked.stderr
        waited = cli("train", project / "config.yaml", "--quiet", "--wait", "0.5")
        assert waited.code == 75 and "after waiting 0.5s" in waited.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert cli("train", project / "config.yaml", "--quiet").code == 0  # the dead holder's lock is gone


# ---------------------------------------------------------------------------- interrupt and resume


@pytest.mark.slow
def test_interrupted_then_resumed_run_ends_with_identical_weights(project, forker):
    long = ["--set", "train.epochs=24", "--set", "train.patience=0"]
    assert cli("train", project / "config.yaml", "--out", project / "straight", "--quiet", *long).code == 0

    out = project / "pieces"
    # The first piece is a forked process (tests/forked.py); the second is `python -m lstmcast` from another cwd.
    first = forker.start("train", project / "config.yaml", "--out", out, "--data", project / "series.csv", *long)
    first.wait_for("epoch 3/24")
    first.send(signal.SIGINT)
    assert first.wait(60) == 130, first.stderr
    err = first.stderr
    assert (out / "state.pt").exists() and not (out / "model.pt").exists()
    # The hint is the whole command: run exactly what it says, from another working directory.
    hint = shlex.split(err.split("continue with: ")[1].split(" (same config")[0])
    assert hint[0] == "lstmcast" and "--resume" in hint and "--out" in hint and "--data" in hint
    assert hint.count("--set") == 2

    second = subprocess.Popen(
        [sys.executable, "-m", *hint],
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    wait_for_line(second, "epoch 6/24")
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 143, err

    last = cli("train", project / "config.yaml", "--out", out, "--resume", "--quiet", *long)
    assert last.code == 0, last.stderr
    assert same(weights(out / "model.pt"), weights(project / "straight" / "model.pt"))
    assert not (out / "state.pt").exists()
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(1, 25))


@pytest.mark.slow
def test_resume_refuses_a_changed_config_or_a_missing_state(project, forker):
    assert_user_error(cli("train", project / "config.yaml", "--resume"), "no resumable state")
    proc = forker.start("train", project / "config.yaml", "--set", "train.epochs=60", "--set", "train.patience=0")
    proc.wait_for("epoch 2/60")
    proc.send(signal.SIGINT)
    assert proc.wait(60) == 130, proc.stderr
    changed = cli("train", project / "config.yaml", "--resume", "--set", "train.epochs=60", "--set", "train.lr=0.5")
    assert_user_error(changed, "train.lr = 0.01", "0.5")


def _kill_loop(forker, folder: Path, kills: int, seed: int) -> dict[str, int]:
    """Start training, SIGKILL it at a random moment, check what is on disk; `kills` times."""
    out = folder / "run"
    old = weights(out / "model.pt")
    rng = random.Random(seed)
    outcomes = {"old": 0, "new": 0}
    for _ in range(kills):
        proc = forker.start(
            "train",
            folder / "config.yaml",
            "--set",
            "train.seed=7",
            "--set",
            "train.epochs=30",
            "--set",
            "train.patience=0",
        )
        proc.wait_for("rows of")
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send(signal.SIGKILL)
        proc.wait(60)
        current = weights(out / "model.pt")  # always loads: complete
        if same(current, old):
            outcomes["old"] += 1
        else:
            outcomes["new"] += 1
            old = current
        if (out / "state.pt").exists():
            checkpoint.load_state(out / "state.pt")  # the resumable state is complete too
    return outcomes


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(project, forker):
    """20 kills while training rewrites state.pt each epoch: model.pt is always the old or the new one.

    Each run is a process forked from an interpreter that has imported lstmcast (tests/forked.py), so a
    kill costs the moment it waits for, not the seconds `python -m lstmcast` takes to import torch; two
    folders are killed in parallel (10 kills each), as most of that time is the wait before the kill.
    """
    folders = []
    for name in ("k1", "k2"):
        folder = project / name
        folder.mkdir()
        shutil.copy(project / "series.csv", folder / "series.csv")
        shutil.copy(project / "config.yaml", folder / "config.yaml")
        assert cli("train", folder / "config.yaml", "--quiet").code == 0
        folders.append(folder)
    (project / "second").mkdir()
    second = Forker(project / "second")  # a second zygote: the folders are killed in parallel (10 kills each)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(_kill_loop, [forker, second], folders, [10, 10], [0, 1]))
    finally:
        second.close()
    assert sum(sum(r.values()) for r in results) == 20
    for folder in folders:
        assert cli("train", folder / "config.yaml", "--quiet").code == 0  # the next run cleans up stray temporaries
        assert not [p for p in (folder / "run").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_non_finite_loss_stops_and_keeps_the_previous_model(project, monkeypatch):
    before = (project / "run" / "model.pt").read_bytes()
    calls = {"n": 0}
    mse = lstmcast.learn.loop.LOSSES["mse"]

    def poisoned(pred, target):
        calls["n"] += 1
        loss = mse(pred, target)
        return loss * float("nan") if calls["n"] > 15 else loss

    monkeypatch.setitem(lstmcast.learn.loop.LOSSES, "mse", poisoned)
    result = cli("train", project / "config.yaml", "--set", "train.epochs=5")
    assert_user_error(result, "training loss became nan in epoch 2", "lower train.lr")
    assert (project / "run" / "model.pt").read_bytes() == before


# ---------------------------------------------------------------------------- logs, JSON, dated files


def test_json_summary_log_file_and_dated_forecast(project):
    log = project / "logs" / "job.log"
    trained = cli("train", project / "config.yaml", "--json", "--quiet", "--log-file", log)
    assert trained.code == 0
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["command"] == "train" and summary["seconds"] > 0
    assert Path(summary["outputs"]["model.pt"]).exists() and "test_mae" in summary["metrics"]

    template = str(project / "forecasts" / "{origin:%Y-%m-%d}" / "load-{run_date:%Y}.csv")
    predicted = cli(
        "predict",
        project / "run" / "model.pt",
        "--data",
        project / "series.csv",
        "--out",
        template,
        "--json",
        "--log-file",
        log,
    )
    assert predicted.code == 0, predicted.stderr
    summary = json.loads(predicted.stdout)
    written = Path(summary["outputs"]["forecast"])
    assert written == project / "forecasts" / "2024-01-21" / f"load-{time.strftime('%Y')}.csv" and written.exists()

    lines = log.read_text().splitlines()
    assert any(" epoch 2/2 " in line for line in lines) and any("written to" in line for line in lines)
    assert all(line[:4].isdigit() for line in lines)  # every line timestamped

    failed = cli("predict", project / "missing.pt", "--data", project / "series.csv", "--json")
    assert failed.code == 2
    assert json.loads(failed.stdout) == {
        "status": "error",
        "command": "predict",
        "exit_code": 2,
        "error": failed.stderr.strip()[len("error: ") :],
    }


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_bad_placeholder_is_a_user_error(project):
    result = cli("predict", project / "run" / "model.pt", "--data", project / "series.csv", "--out", "{when}.csv")
    assert_user_error(result, "unknown placeholder {when}")


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_warm_start_fine_tunes_and_refuses_another_architecture(project):
    base = project / "run" / "model.pt"
    tuned = cli("train", project / "config.yaml", "--init-from", base, "--out", project / "tuned", "--quiet")
    assert tuned.code == 0, tuned.stderr
    assert checkpoint.load(project / "tuned" / "model.pt").scaler == checkpoint.load(base).scaler
    fresh = cli("train", project / "config.yaml", "--out", project / "fresh", "--quiet", "--set", "train.epochs=2")
    assert fresh.code == 0
    # Starting from trained weights ends closer to the data than starting from scratch.
    warm_loss = json.loads((project / "tuned" / "metrics.json").read_text())["val_loss"]
    cold_loss = json.loads((project / "fresh" / "metrics.json").read_text())["val_loss"]
    assert warm_loss < cold_loss
    wider = cli(
        "train", project / "config.yaml", "--init-from", base, "--out", project / "x", "--set", "model.hidden_size=16"
    )
    assert_user_error(wider, "hidden_size = 8", "16")


# ---------------------------------------------------------------------------- old checkpoints keep working


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("checkpoint_v*.pt")), ids=lambda p: p.stem)
def test_every_released_checkpoint_format_still_predicts(path, tmp_path):
    out = tmp_path / "f.csv"
    result = cli("predict", path, "--data", FIXTURES / "series.csv", "--out", out)
    assert result.code == 0, result.stderr
    forecast = pd.read_csv(out)
    assert len(forecast) == checkpoint.load(path).config.window.horizon and forecast["load"].notna().all()


def test_there_is_a_fixture_for_the_current_format():
    assert (FIXTURES / f"checkpoint_v{checkpoint.FORMAT_VERSION}.pt").exists()


@pytest.mark.slow
def test_cron_like_environment_with_log_file(project, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    log = tmp_path / "cron.log"
    proc = subprocess.run(
        [sys.executable, "-m", "lstmcast", "train", str(project / "config.yaml"), "--log-file", str(log), "--quiet"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert "checkpoint written to" in proc.stdout
    assert "trained 2 epochs" in log.read_text()


@pytest.mark.slow
def test_an_interrupted_ensemble_resumes_member_by_member(project, forker):
    args = ["--set", "train.ensemble=2", "--set", "train.epochs=16", "--set", "train.patience=0"]
    assert cli("train", project / "config.yaml", "--out", project / "straight", "--quiet", *args).code == 0
    out = project / "pieces"
    proc = forker.start("train", project / "config.yaml", "--out", out, *args)
    proc.wait_for("ensemble member 2 of 2")
    proc.wait_for("epoch 3/16")
    proc.send(signal.SIGINT)
    assert proc.wait(60) == 130, proc.stderr
    assert len(checkpoint.load_state(out / "state.pt").members) == 1  # the finished member is kept
    assert cli("train", project / "config.yaml", "--out", out, "--resume", "--quiet", *args).code == 0
    resumed, straight = checkpoint.load(out / "model.pt"), checkpoint.load(project / "straight" / "model.pt")
    assert len(resumed.members) == len(straight.members) == 2
    assert all(same(a, b) for a, b in zip(resumed.members, straight.members, strict=True))
