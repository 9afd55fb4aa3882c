"""MLflow tracking on tiny data, into a temporary `file:` store read back with MLflow's own client: what train,
evaluate and tune log, the champion alias promote keeps on the model in service, and the rule for a store that
fails (one warning line and the run goes on, or with --track-required one error line and exit 2)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from lstmcast.config import TrackConfig, config_from_dict
from lstmcast.data import sinks
from lstmcast.extras import available
from lstmcast.flows import tracking

from .conftest import TINY, assert_user_error, cli, sine_csv, write_config

pytestmark = pytest.mark.skipif(not available("mlflow"), reason="needs lstmcast[mlflow] (mlflow-skinny)")

SPACE = {"train.lr": {"low": 0.001, "high": 0.02, "log": True}, "model.hidden_size": [4, 8]}


@pytest.fixture(scope="module", autouse=True)
def mlflow_environment() -> Any:
    """Tracking sets MLflow's settings where the environment does not (os.environ.setdefault): undone afterwards."""
    keys = [*tracking.MLFLOW_DEFAULTS, "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_URI"]
    saved = {key: os.environ.get(key) for key in keys}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """series.csv and good/ (6 epochs), trained with --track into a store; the store's URI."""
    folder = tmp_path_factory.mktemp("tracked")
    sine_csv(folder / "series.csv")
    uri = (folder / "mlruns").as_uri()
    write_config(folder, {"train": {"epochs": 6}, "output": {"dir": "good"}}, "good.yaml")
    write_config(folder, {"train": {"epochs": 1, "lr": 0.001}, "output": {"dir": "poor"}}, "poor.yaml")
    train(folder / "good.yaml", uri)
    return folder, uri


def train(config: Path, uri: str) -> None:
    done = cli("train", config, "--track", uri, "--quiet")
    assert done.code == 0 and "warning" not in done.stderr, done.stderr


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def runs(uri: str, command: str | None = None) -> list[Any]:
    """The experiment's runs, oldest first; those of one command when given."""
    c = client(uri)
    experiment = c.get_experiment_by_name("lstmcast")
    found = c.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [r for r in found if command is None or r.data.tags.get("lstmcast.command") == command]


def artifacts(uri: str, run: Any) -> set[str]:
    return {f.path for f in client(uri).list_artifacts(run.info.run_id)}


def history(uri: str, run: Any, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client(uri).get_metric_history(run.info.run_id, key)]


@pytest.mark.slow
def test_train_logs_the_config_every_validation_the_metrics_and_the_files(store: tuple[Path, str]) -> None:
    folder, uri = store
    good = runs(uri, "train")[0]
    assert good.info.status == "FINISHED" and good.info.run_name == "train good"
    params = good.data.params
    assert params["train.epochs"] == "6" and params["data.target"] == '["load"]' and params["data.freq"] == "h"
    assert params["track.uri"] == uri and params["model.hidden_size"] == "8"  # the config as resolved
    csv = pd.read_csv(folder / "good" / "history.csv")
    steps, losses = zip(*history(uri, good, "history.val_loss"), strict=True)
    assert list(steps) == list(csv["step"]) and list(losses) == pytest.approx(list(csv["val_loss"]))
    assert history(uri, good, "history.epoch") == list(zip(csv["step"], csv["epoch"], strict=True))
    metrics = json.loads((folder / "good" / "metrics.json").read_text())
    assert good.data.metrics["test_mae"] == pytest.approx(metrics["test_mae"])
    assert good.data.metrics["seasonal_naive.test_mase"] == pytest.approx(metrics["seasonal_naive"]["test_mase"])
    assert good.data.metrics["epochs_run"] == 6
    assert artifacts(uri, good) == {"model.pt", "metrics.json", "history.csv", "config.yaml"}
    assert good.data.tags[tracking.MODEL_ID] == sinks.model_id(folder / "good" / "model.pt")
    assert yaml.safe_load((folder / "good" / "config.yaml").read_text())["track"]["uri"] == uri  # a retrain logs too


def test_evaluate_logs_into_the_store_its_checkpoint_was_trained_with(store: tuple[Path, str], tmp_path: Path) -> None:
    folder, uri = store
    report = tmp_path / "report.json"
    done = cli("evaluate", folder / "good" / "model.pt", "--data", folder / "series.csv", "--report", report, "-q")
    assert done.code == 0 and "warning" not in done.stderr, done.stderr
    (run,) = runs(uri, "evaluate")
    scores = json.loads(report.read_text())
    assert run.info.status == "FINISHED" and run.data.params["evaluate.stride"] == "1"
    assert run.data.params["train.epochs"] == "6"  # the checkpoint's config
    assert run.data.metrics["overall.model.mase"] == pytest.approx(scores["overall"]["model"]["mase"])
    assert run.data.metrics["relative_skill"] == pytest.approx(scores["relative_skill"])
    steps, errors = zip(*history(uri, run, "per_step.model.mae"), strict=True)  # the error per horizon step
    assert list(steps) == list(range(1, 13)) and list(errors) == pytest.approx(scores["per_step"]["model"]["mae"])
    assert artifacts(uri, run) == {"report.json"}
    assert run.data.tags[tracking.MODEL_ID] == sinks.model_id(folder / "good" / "model.pt")


def alias_points_at(uri: str, name: str, checkpoint: Path) -> Any:
    """The version the champion alias names, checked to be the checkpoint's."""
    version = client(uri).get_model_version_by_alias(name, "champion")
    assert version.tags[tracking.MODEL_ID] == sinks.model_id(checkpoint)
    return version


@pytest.mark.slow
def test_promote_keeps_the_champion_alias_on_the_model_in_service(
    store: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, uri = store
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # MLflow's file registry reads versions through a default client
    serving, good, poor = tmp_path / "serving", folder / "good" / "model.pt", folder / "poor" / "model.pt"
    train(folder / "poor.yaml", uri)  # 1 epoch at a low rate: worse than good/
    trained = {r.data.tags[tracking.MODEL_ID]: r.info.run_id for r in runs(uri, "train")}
    assert cli("promote", poor, "--to", serving, "-q").code == 0
    first = alias_points_at(uri, "serving", poor)  # the registered model is named after the serving folder
    assert first.run_id == trained[sinks.model_id(poor)] and first.source.endswith("/model.pt")
    better = json.loads(cli("promote", good, "--to", serving, "--json", "-q").stdout)
    assert better["action"] == "promoted"
    champion = alias_points_at(uri, "serving", good)
    assert champion.tags["lstmcast.decision"] == "promoted" and champion.run_id == trained[sinks.model_id(good)]
    assert json.loads(cli("promote", poor, "--to", serving, "--json", "-q").stdout)["action"] == "kept"
    alias_points_at(uri, "serving", good)
    versions = client(uri).search_model_versions("name = 'serving'")
    assert len(versions) == 2  # one version per checkpoint, however often it is a candidate
    assert {v.tags["lstmcast.decision"] for v in versions} == {"promoted", "kept"}
    back = cli("promote", "--rollback", "--to", serving, "-q")
    assert back.code == 0 and "warning" not in back.stderr, back.stderr
    assert alias_points_at(uri, "serving", poor).tags["lstmcast.decision"] == "rollback"
    assert not list((tmp_path / "cwd").iterdir())  # no ./mlflow.db made by it


@pytest.mark.slow
def test_tune_logs_each_trial_as_a_nested_run(tmp_path: Path) -> None:
    sine_csv(tmp_path / "series.csv")
    config = write_config(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    uri = (tmp_path / "mlruns").as_uri()
    args = ("tune", config, "--budget", "5m", "--trials", "2", "--space", tmp_path / "space.yaml", "--train")
    done = cli(*args, "--out", tmp_path / "t", "--track", uri, "--quiet")
    assert done.code == 0 and "warning" not in done.stderr, done.stderr
    (parent,) = runs(uri, "tune")
    assert parent.info.status == "FINISHED" and json.loads(parent.data.params["space.train.lr"])["log"] is True
    assert parent.data.metrics["trials"] == 2 and parent.data.params["tune.trials"] == "2"
    assert {"best.yaml", "trials.csv", "report.json"} <= artifacts(uri, parent)
    trials = sorted(runs(uri, "tune trial"), key=lambda r: int(r.data.tags["lstmcast.trial"]))
    assert [r.data.tags["mlflow.parentRunId"] for r in trials] == [parent.info.run_id] * 2
    table = pd.read_csv(tmp_path / "t" / "trials.csv")
    for run, (_, row) in zip(trials, table.iterrows(), strict=True):
        assert float(run.data.params["train.lr"]) == pytest.approx(row["params_train.lr"])
        assert run.data.metrics["validation_mase"] == pytest.approx(row["validation_mase"])
        assert history(uri, run, "history.val_mae") and artifacts(uri, run) == set()  # a trial keeps no files
    (best,) = runs(uri, "train")
    assert best.data.tags["mlflow.parentRunId"] == parent.info.run_id and "model.pt" in artifacts(uri, best)
    assert yaml.safe_load((tmp_path / "t" / "best.yaml").read_text())["track"]["uri"] == uri


@pytest.mark.slow
def test_a_sqlite_store_holds_runs_and_the_registry(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "cwd").mkdir()
    monkeypatch.chdir(project / "cwd")  # MLflow's defaults would leave ./mlruns and ./mlflow.db here
    uri = f"sqlite:///{project / 'mlflow.db'}"  # the store MLflow recommends; the extra brings SQLAlchemy, Alembic
    done = cli("train", project / "config.yaml", "--track", uri, "--quiet")
    assert done.code == 0 and "warning" not in done.stderr, done.stderr
    (run,) = runs(uri, "train")
    assert run.data.params["train.epochs"] == "2" and "model.pt" in artifacts(uri, run)
    assert run.info.artifact_uri.startswith((project / "mlartifacts").as_uri())  # beside the database
    assert len(history(uri, run, "history.val_loss")) == 2
    assert cli("promote", project / "run" / "model.pt", "--to", project / "serving", "-q").code == 0
    assert alias_points_at(uri, "serving", project / "run" / "model.pt").run_id == run.info.run_id
    assert not list((project / "cwd").iterdir())


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning:" in line]


def test_a_store_that_cannot_be_written_is_one_warning_or_with_track_required_exit_2(project: Path) -> None:
    (project / "blocker").write_text("a file where the store's folder would be")
    uri = (project / "blocker" / "mlruns").as_uri()
    done = cli("train", project / "config.yaml", "--track", uri, "--quiet")
    assert done.code == 0 and (project / "run" / "model.pt").exists()
    (line,) = warnings_in(done.stderr)
    assert f"MLflow tracking at {uri} failed" in line and "Not a directory" in line and "without tracking" in line
    out = project / "required"
    refused = cli("train", project / "config.yaml", "--track", uri, "--track-required", "--out", out, "--quiet")
    assert_user_error(refused, f"MLflow tracking at {uri} failed", "--track-required")
    assert not (out / "model.pt").exists() and not warnings_in(refused.stderr)  # refused before training
    by_key = cli("train", project / "config.yaml", "--set", f"track.uri={uri}", "--set", "track.required=true")
    assert_user_error(by_key, "MLflow tracking at")
    kept = cli("promote", project / "run" / "model.pt", "--to", project / "serving", "--track", uri, "-q")
    assert kept.code == 0 and len(warnings_in(kept.stderr)) == 1 and (project / "serving" / "model.pt").exists()
    again = cli(
        "promote", project / "run" / "model.pt", "--to", project / "serving", "--track", uri, "--track-required"
    )
    assert_user_error(again, "the decision (kept) itself is made and in promotions.jsonl")


def test_a_tracking_server_that_is_down_is_one_warning(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # lstmcast's default (2) takes a few seconds
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = cli("train", project / "config.yaml", "--track", f"http://127.0.0.1:{port}", "--track-required")
    assert_user_error(done, f"MLflow tracking at http://127.0.0.1:{port} failed while starting a run")
    done = cli("train", project / "config.yaml", "--track", f"http://127.0.0.1:{port}", "--quiet")
    assert done.code == 0 and len(warnings_in(done.stderr)) == 1 and (project / "run" / "model.pt").exists()


def test_tracking_is_asked_for_needs_its_extra_and_no_password(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.for_config(config_from_dict(TINY)).target is None  # nothing is logged unless asked
    assert tracking.target(TrackConfig(uri="mlruns"), " ") is None  # --track '' turns a config's tracking off
    assert tracking.track_sets("", False) == ["track.uri=null"]
    found = tracking.target(TrackConfig(uri="mlruns", required=True))
    assert found is not None and found.uri == (Path.cwd() / "mlruns").as_uri() and found.required
    secret = cli("train", project / "config.yaml", "--track", "http://me:s3cret@tracking.example:5000")
    assert_user_error(secret, "MLFLOW_TRACKING_PASSWORD", "http://me:***@tracking.example:5000")
    assert "s3cret" not in secret.stderr
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if lstmcast[mlflow] were not installed
    missing = cli("evaluate", project / "absent.pt", "--data", project / "series.csv", "--track", "mlruns")
    assert_user_error(missing, "pip install 'lstmcast[mlflow]'")
    assert_user_error(cli("train", project / "config.yaml", "--track", "mlruns"), "pip install 'lstmcast[mlflow]'")
    assert not (project / "run").exists()  # before any work


def test_nested_values_become_params_and_metrics_by_their_paths() -> None:
    tree = {"a": {"b": 1, "c": [1, 2], "d": None}, "e": float("nan"), "f": True, "g": "text"}
    assert tracking.flat(tree) == {"a.b": 1, "a.c": [1, 2], "a.d": None, "e": tree["e"], "f": True, "g": "text"}
    assert tracking.numbers(tree) == {"a.b": 1.0, "f": 1.0}  # lists, text and what is not finite left out
    refused = ConnectionError(
        "HTTPConnectionPool(host='h', port=1): Max retries (Caused by [Errno 111] Connection refused)"
    )
    assert tracking._reason(refused) == "[Errno 111] Connection refused"
    assert tracking._reason(OSError(20, "Not a directory", "/x/y")) == "[Errno 20] Not a directory: '/x/y'"
