"""The real CLI end to end on tiny data: what a user (or their crontab) relies on."""

from __future__ import annotations

import json
import pickle
import sys

import pandas as pd
import pytest
import torch
import yaml

from lstmcast.config import config_from_dict
from lstmcast.model import checkpoint

from .conftest import assert_user_error, cli, cli_process, sine_csv, write_config


def test_train_then_predict_writes_every_output(project):
    trained = cli("train", project / "config.yaml")
    assert trained.code == 0, trained.stderr
    run = project / "run"
    assert {p.name for p in run.iterdir()} >= {"model.pt", "config.yaml", "metrics.json", "history.csv", "train.log"}
    assert f"checkpoint written to {run / 'model.pt'}" in trained.stdout

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["test_mae"] > 0 and metrics["seasonal_naive"]["season"] == 24
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert config_from_dict(resolved).data.freq == "h"  # the written config is complete and loads
    assert checkpoint.load(run / "model.pt").config.to_dict() == resolved

    predicted = cli("predict", run / "model.pt", "--data", project / "series.csv")
    assert predicted.code == 0, predicted.stderr
    assert str(run / "forecast.csv") in predicted.stdout
    forecast = pd.read_csv(run / "forecast.csv", parse_dates=["timestamp"])
    assert list(forecast.columns) == ["timestamp", "load", "forecaster"] and len(forecast) == 12
    last = pd.Timestamp(pd.read_csv(project / "series.csv")["timestamp"].iloc[-1])
    assert list(forecast["timestamp"]) == list(pd.date_range(last, periods=13, freq="h")[1:])
    assert forecast["load"].between(0, 20).all()  # original units (the sine lives in 7–13)


def test_same_seed_same_data_gives_identical_weights(project):
    weights = []
    for out in ("a", "b"):
        assert cli("train", project / "config.yaml", "--out", project / out, "--quiet").code == 0
        weights.append(checkpoint.load(project / out / "model.pt").members[0])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    changed = cli("train", project / "config.yaml", "--out", project / "c", "--quiet", "--set", "train.seed=1")
    assert changed.code == 0
    other = checkpoint.load(project / "c" / "model.pt").members[0]
    assert not all(torch.equal(weights[0][k], other[k]) for k in other)


@pytest.mark.slow
def test_runs_from_root_with_an_empty_environment_and_no_tty(project):
    """As cron runs it: cwd /, only PATH set, stdout/stderr are pipes."""
    result = cli_process("train", project / "config.yaml", cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert result.code == 0, result.stderr
    assert (project / "run" / "model.pt").exists()
    assert "\x1b[" not in result.stderr and "\r" not in result.stderr
    epoch_lines = [line for line in result.stderr.splitlines() if " epoch " in line and " step " in line]
    assert len(epoch_lines) == 2 and all(line[:4].isdigit() for line in epoch_lines)  # timestamped


def test_help_and_version_do_not_import_torch_or_pandas():
    # nor the optional extras
    heavy = ("torch", "pandas", "numpy", "pyarrow", "sqlalchemy", "psycopg", "optuna", "ray", "mlflow")
    code = (
        "import sys; from lstmcast.cli import app\n"
        "for args in (['--help'], ['--version'], ['train', '--help'], ['predict', '--help'], ['score', '--help'],\n"
        "             ['promote', '--help'], ['tune', '--help'], ['init', '--help'], ['evaluate', '--help']):\n"
        "    try: app(args)\n"
        "    except SystemExit: pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the exploit's pickle protocol
def test_malicious_checkpoint_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "model.pt"
    torch.save({"format_version": 1, "payload": Exploit()}, bad)
    assert not marker.exists()
    result = cli("predict", bad, "--data", tmp_path / "x.csv")
    assert_user_error(result, "not a safe lstmcast checkpoint")
    assert not marker.exists()
    with open(bad, "wb") as f:  # a plain pickle, not even a torch file
        pickle.dump(Exploit(), f)
    assert_user_error(cli("predict", bad, "--data", tmp_path / "x.csv"), str(bad))
    assert not marker.exists()


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_bad_checkpoints_are_user_errors(project, tmp_path):
    good = (project / "run" / "model.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    assert_user_error(cli("predict", truncated, "--data", project / "series.csv"), "truncated")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert_user_error(cli("predict", text, "--data", project / "series.csv"), "not a readable lstmcast checkpoint")
    assert_user_error(cli("predict", tmp_path / "absent.pt", "--data", project / "series.csv"), "not found")
    assert_user_error(cli("predict", project / "run", "--data", project / "series.csv"), "is a folder")
    newer = torch.load(project / "run" / "model.pt", weights_only=True)
    newer["format_version"] = checkpoint.FORMAT_VERSION + 1
    torch.save(newer, tmp_path / "newer.pt")
    assert_user_error(cli("predict", tmp_path / "newer.pt", "--data", project / "series.csv"), "upgrade lstmcast")


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_predict_data_errors(project):
    model = project / "run" / "model.pt"
    frame = pd.read_csv(project / "series.csv")
    frame.tail(30).to_csv(project / "short.csv", index=False)
    assert_user_error(
        cli("predict", model, "--data", project / "short.csv", "--fallback", "error"), "30 rows", "lookback 48"
    )
    frame.drop(columns=["temp"]).to_csv(project / "nofeature.csv", index=False)
    assert_user_error(cli("predict", model, "--data", project / "nofeature.csv"), "'temp' not found", "'load'")


def test_config_and_data_errors_exit_2_with_one_line(project, tmp_path):
    config = project / "config.yaml"
    assert_user_error(cli("train", tmp_path / "nope.yaml"), "not found")
    assert_user_error(cli("train", config, "--set", "train.lrate=1"), "did you mean train.lr?")
    assert_user_error(cli("train", config, "--set", "train.epochs=0"), "train.epochs = 0", "≥ 1")
    assert_user_error(cli("train", config, "--set", "data.target=price"), "'price' not found")
    assert_user_error(cli("train", config, "--set", "window.lookback=480"), "needs at least")
    assert_user_error(cli("train", config, "--data", tmp_path / "missing.csv"), "missing.csv not found")
    assert_user_error(cli("train", config, "--set", "data.path=null"), "data.path is not set")


def test_unwritable_output_is_a_user_error(project):
    blocker = project / "file"
    blocker.write_text("")
    assert_user_error(cli("train", project / "config.yaml", "--out", blocker / "run"), "cannot create folder")


def test_internal_bug_exits_1_with_a_hint(project, monkeypatch):
    import lstmcast.flows.training

    def broken(*args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(lstmcast.flows.training, "train", broken)
    result = cli("train", project / "config.yaml")
    assert result.code == 1
    assert result.stderr.startswith("error: internal error: ZeroDivisionError: boom") and "--debug" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_checks_without_training(project):
    result = cli("validate", project / "config.yaml")
    assert result.code == 0, result.stderr
    assert "train 336, validation 72, test 72" in result.stdout
    assert not (project / "run").exists()


def test_other_frequency_and_no_timestamp(tmp_path):
    """Daily data forecasts daily dates; data without timestamps forecasts step numbers."""
    sine_csv(tmp_path / "daily.csv", rows=300, freq_hours=24)
    write_config(tmp_path, {"data": {"path": "daily.csv"}})
    assert cli("train", tmp_path / "config.yaml", "--quiet").code == 0
    assert cli("predict", tmp_path / "run" / "model.pt", "--data", tmp_path / "daily.csv").code == 0
    forecast = pd.read_csv(tmp_path / "run" / "forecast.csv", parse_dates=["timestamp"])
    assert (forecast["timestamp"].diff().dropna() == pd.Timedelta(days=1)).all()

    frame = pd.read_csv(tmp_path / "daily.csv").drop(columns=["timestamp"])
    frame.to_csv(tmp_path / "steps.csv", index=False)
    write_config(tmp_path, {"data": {"path": "steps.csv", "timestamp": None}}, name="steps.yaml")
    assert cli("train", tmp_path / "steps.yaml", "--out", tmp_path / "s", "--quiet").code == 0
    assert cli("predict", tmp_path / "s" / "model.pt", "--data", tmp_path / "steps.csv").code == 0
    steps = pd.read_csv(tmp_path / "s" / "forecast.csv")
    assert list(steps.columns) == ["step", "load", "forecaster"] and list(steps["step"]) == list(range(300, 312))


def test_multiple_targets_are_forecast_together(tmp_path):
    sine_csv(tmp_path / "series.csv")
    write_config(tmp_path, {"data": {"target": ["load", "temp"], "features": []}})
    assert cli("train", tmp_path / "config.yaml", "--quiet").code == 0
    assert (
        cli(
            "predict", tmp_path / "run" / "model.pt", "--data", tmp_path / "series.csv", "--out", tmp_path / "f.csv"
        ).code
        == 0
    )
    assert list(pd.read_csv(tmp_path / "f.csv").columns) == ["timestamp", "load", "temp", "forecaster"]


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_forecast_written_atomically_over_the_previous_one(project, monkeypatch):
    """A failure while writing leaves the previous forecast intact and no stray file."""
    model, data, out = project / "run" / "model.pt", project / "series.csv", project / "f.csv"
    assert cli("predict", model, "--data", data, "--out", out).code == 0
    before = out.read_bytes()

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    assert_user_error(cli("predict", model, "--data", data, "--out", out), "No space left", "intact")
    assert out.read_bytes() == before
    assert [p.name for p in project.iterdir() if p.name.startswith(".f.csv")] == []
