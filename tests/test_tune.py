"""`lstmcast tune` and `lstmcast init` on tiny data: a few trials of a few steps each.

best.yaml must train as is; the budget must stop a trial within a step; a rerun continues the
study's trial count; two processes on one SQLite study must not corrupt it; SIGTERM must stop
cleanly (exit 143, study kept); a bad space file is one error line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import assert_user_error, cli, sine_csv, write_config

optuna = pytest.importorskip("optuna")

SPACE = {"train.lr": {"low": 0.001, "high": 0.02, "log": True}, "model.hidden_size": [4, 8], "train.epochs": [1, 2]}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    sine_csv(tmp_path / "series.csv")
    write_config(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path


def trials_of(storage: Path) -> list:
    """The trials of the one study in `storage` (its name is the problem's fingerprint)."""
    (name,) = optuna.get_all_study_names(storage=f"sqlite:///{storage}")
    return optuna.load_study(study_name=name, storage=f"sqlite:///{storage}").trials


@pytest.mark.slow
def test_best_yaml_trains_and_a_rerun_continues_the_study(tiny: Path) -> None:
    args = ("tune", tiny / "config.yaml", "--budget", "10m", "--space", tiny / "space.yaml", "--out", tiny / "t")
    done = cli(*args, "--trials", "3", "--json", "--quiet")
    assert done.code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["trials"] == 3 and summary["complete"] + summary["pruned"] == 3
    assert summary["best"]["validation_mase"] > 0 and set(summary["best"]["params"]) == set(SPACE)
    trials = pd.read_csv(tiny / "t" / "trials.csv")
    assert len(trials) == 3 and trials["validation_mase"].min() == pytest.approx(summary["best"]["validation_mase"])
    assert trials.loc[0, "params_model.hidden_size"] == 8  # the first trial is the config as written
    best = yaml.safe_load((tiny / "t" / "best.yaml").read_text())
    assert {k: best[k.split(".")[0]][k.split(".")[1]] for k in SPACE} == summary["best"]["params"]
    assert [p.name for p in (tiny / "t" / "trials").iterdir()] == [str(summary["best"]["trial"])]  # only the best kept
    history = pd.read_csv(tiny / "t" / "trials" / str(summary["best"]["trial"]) / "history.csv")
    assert history["val_mae"].notna().all()  # what the pruner compares, measured whatever the loss
    trained = cli("train", tiny / "t" / "best.yaml", "--quiet")
    assert trained.code == 0, trained.stderr
    assert (tiny / "t" / "model" / "model.pt").exists()
    again = json.loads(cli(*args, "--trials", "5", "--json", "--quiet").stdout)
    assert again["trials"] == 5 and again["trials_this_run"] == 2
    assert len(trials_of(tiny / "t" / "study.db")) == 5


@pytest.mark.slow
def test_the_budget_stops_a_trial_within_a_step(tiny: Path, monkeypatch) -> None:
    import lstmcast.flows.tune

    monkeypatch.setattr(
        lstmcast.flows.tune, "PACE_SECONDS", 2.0
    )  # the pace is judged sooner: the same rules, less waiting
    (tiny / "long.yaml").write_text(yaml.safe_dump({"train.epochs": [4000, 5000], "model.hidden_size": [8]}))
    # no early stopping: 4,000 epochs cannot end within the budget on any machine
    done = cli("tune", tiny / "config.yaml", "--budget", "2s", "--space", tiny / "long.yaml", "--out", tiny / "t",
               "--set", "train.patience=0", "--json", "--quiet")  # fmt: skip
    assert done.code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["complete"] == 0 and summary["pruned"] == 1 and "best" not in summary
    trial = trials_of(tiny / "t" / "study.db")[0]
    assert trial.user_attrs["stopped"] == "budget"
    assert not (tiny / "t" / "best.yaml").exists()
    # --trial-limit stops one trial and the search goes on to the next
    done = cli("tune", tiny / "config.yaml", "--budget", "10m", "--trial-limit", "1s", "--trials", "2", "--space",
               tiny / "long.yaml", "--out", tiny / "u", "--set", "train.patience=0", "--json", "--quiet")  # fmt: skip
    assert done.code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["complete"] == 0 and summary["pruned"] == 2 and summary["trials_this_run"] == 2
    assert [t.user_attrs["stopped"] for t in trials_of(tiny / "u" / "study.db")] == ["trial limit"] * 2
    # a trial whose pace would take it far past its limit is stopped once the pace is known, not at the limit
    started = time.monotonic()
    done = cli("tune", tiny / "config.yaml", "--budget", "10m", "--trial-limit", "2m", "--trials", "1", "--space",
               tiny / "long.yaml", "--out", tiny / "v", "--set", "train.patience=0", "--json", "--quiet")  # fmt: skip
    assert done.code == 0, done.stderr
    assert time.monotonic() - started < 100
    (trial,) = trials_of(tiny / "v" / "study.db")
    assert trial.user_attrs["stopped"] == "trial limit" and "pace" in trial.user_attrs["pruned"]
    # … and one whose pace would end it after the budget: stopped, and the search goes on to the next
    done = cli("tune", tiny / "config.yaml", "--budget", "50s", "--trial-limit", "10m", "--trials", "2", "--space",
               tiny / "long.yaml", "--out", tiny / "w", "--set", "train.patience=0", "--json", "--quiet")  # fmt: skip
    assert done.code == 0, done.stderr
    assert [t.user_attrs["stopped"] for t in trials_of(tiny / "w" / "study.db")] == ["budget pace"] * 2


def test_a_pruned_trials_last_report_is_not_ranked_as_a_score(tiny: Path) -> None:
    # Optuna keeps a pruned trial's last intermediate value (a scaled MAE, often far below any MASE) as its value
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from lstmcast.config import load_config
    from lstmcast.flows.space import Dim
    from lstmcast.flows.starter import DataFacts
    from lstmcast.flows.tune import write_outputs

    study = optuna.create_study()
    lr = {"train.lr": FloatDistribution(1e-4, 1e-1, log=True)}
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.9, params={"train.lr": 0.01}, distributions=lr))
    study.add_trial(
        create_trial(state=TrialState.PRUNED, value=0.2, params={"train.lr": 0.001}, distributions=lr,
                     intermediate_values={10: 0.2})
    )  # fmt: skip
    facts = DataFacts(freq="h", season=24, series=1, shortest=400, median=400)
    space = [Dim("train.lr", low=1e-4, high=1e-1, log=True)]
    summary = write_outputs(study, load_config(tiny / "config.yaml"), space, tiny / "w", facts)
    assert summary["best"]["trial"] == 0 and [t["trial"] for t in summary["top"]] == [0]
    assert summary["importance"] is None  # one finished trial: Optuna would return equal made-up shares
    frame = pd.read_csv(tiny / "w" / "trials.csv")
    assert frame["validation_mase"].isna().tolist() == [False, True]
    assert "# Found by lstmcast tune: trial 0" in (tiny / "w" / "best.yaml").read_text()


BAD_SPACES = {
    "not a key": ({"train.speed": [1, 2]}, "'train.speed' is not a config key"),
    "no section": ({"lr": [0.1]}, "'lr' is not a config key"),
    "backwards range": ({"train.lr": {"low": 0.1, "high": 0.01}}, "needs numbers low < high"),
    "a bad choice": ({"window.norm": ["last", "sideways"]}, "window.norm = 'sideways'"),
    "a scalar": ({"train.lr": 0.1}, "must be a list of choices"),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_a_bad_space_is_one_error_line(case: str, tiny: Path) -> None:
    space, fragment = BAD_SPACES[case]
    (tiny / "bad.yaml").write_text(yaml.safe_dump(space))
    result = cli("tune", tiny / "config.yaml", "--budget", "1m", "--space", tiny / "bad.yaml", "--out", tiny / "t")
    assert_user_error(result, fragment)
    assert not (tiny / "t" / "study.db").exists()


def test_bad_tune_options_are_one_error_line(tiny: Path) -> None:
    assert_user_error(cli("tune", tiny / "config.yaml", "--budget", "soon"), "--budget 'soon' is not a duration")
    assert_user_error(cli("tune", tiny / "config.yaml", "--budget", "1m", "--trial-limit", "0"), "--trial-limit '0'")
    (tiny / "broken.yaml").write_text("train.lr: [1, 2\n")
    assert_user_error(cli("tune", tiny / "config.yaml", "--budget", "1m", "--space", tiny / "broken.yaml"), "line")
    clear = cli("tune", tiny / "config.yaml", "--budget", "1m", "--storage", "postgresql://u:hunter2@h/db")
    assert_user_error(clear, "password in clear")
    assert "hunter2" not in clear.stderr


def tune_process(tiny: Path, out: str, *extra: str) -> subprocess.Popen:
    (tiny / "quick.yaml").write_text(yaml.safe_dump({**SPACE, "train.epochs": [1]}))
    return subprocess.Popen(
        [sys.executable, "-m", "lstmcast", "tune", str(tiny / "config.yaml"), "--budget", "5m", "--space",
         str(tiny / "quick.yaml"), "--out", str(tiny / out), "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
def test_two_processes_share_one_study_and_sigterm_stops_cleanly(tiny: Path) -> None:
    shared = ("--storage", str(tiny / "shared.db"), "--trials", "4")
    first, second = tune_process(tiny, "a", *shared), tune_process(tiny, "b", *shared)
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    trials = trials_of(tiny / "shared.db")
    assert len({t.number for t in trials}) == len(trials) >= 4
    assert all(t.state.is_finished() for t in trials)
    # SIGTERM during a long trial: exit 143, one line, the study kept for the next run
    (tiny / "long.yaml").write_text(yaml.safe_dump({"train.epochs": [4000, 5000], "model.hidden_size": [8]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstmcast", "tune", str(tiny / "config.yaml"), "--budget", "5m", "--space",
         str(tiny / "long.yaml"), "--out", str(tiny / "c"), "--set", "train.patience=0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tiny / "c" / "trials" / "0" / "train.log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # into the training loop
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "SIGTERM" in errors[0] and "Traceback" not in err
    assert [t.state.name for t in trials_of(tiny / "c" / "study.db")] == ["FAIL"]


def test_init_sizes_the_model_by_the_training_windows() -> None:
    from lstmcast.flows import starter

    facts = {"freq": "h", "season": 24, "shortest": 700, "median": 700, "rows": 0, "filled": 0}
    one = starter.suggest(starter.DataFacts(**facts, series=1), horizon=48)  # ~400 training windows
    many = starter.suggest(starter.DataFacts(**facts, series=414), horizon=48)  # M4 Hourly's shape: ~160,000 windows
    assert (one["model"]["hidden_size"], one["train"]["lr"]) == (64, 0.001)
    assert (many["model"]["hidden_size"], many["train"]["lr"]) == (128, 0.005)
    assert one["window"] == many["window"] and one["model"]["patch"] == many["model"]["patch"] == 24


def test_init_writes_a_config_that_trains(tmp_path: Path) -> None:
    sine_csv(tmp_path / "series.csv", rows=600)
    out = tmp_path / "start.yaml"
    done = cli("init", tmp_path / "series.csv", "--target", "load", "--horizon", "12", "--out", out, "--json")
    assert done.code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["data"]["freq"] == "h" and report["data"]["season"] == 24 and report["data"]["series"] == 1
    cfg = yaml.safe_load(out.read_text())
    assert cfg["window"]["lookback"] % 24 == 0 and cfg["window"]["lookback"] % cfg["model"]["patch"] == 0
    assert "seasonal period 24" in out.read_text()
    assert cli("validate", out, "--quiet").code == 0
    assert_user_error(
        cli("init", tmp_path / "series.csv", "--target", "load", "--horizon", "12", "--out", out), "exists"
    )
    too_far = cli("init", tmp_path / "series.csv", "--target", "load", "--horizon", "400", "--out", tmp_path / "x.yaml")
    assert_user_error(too_far, "too few for horizon 400")
    assert_user_error(cli("init", tmp_path / "series.csv", "--target", "nope", "--horizon", "12", "--out",
                          tmp_path / "y.yaml"), "column 'nope' not found")  # fmt: skip
