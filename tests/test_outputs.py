"""What each command tells its user: every written file named once, one meaning of --json, rounded
figures for people, the checkpoint's own test period by default, and the typed checkpoint's guards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from lstmcast.forecast.plots import quantile_columns
from lstmcast.model import checkpoint

from .conftest import assert_user_error, cli

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def trained(trained_project):
    return trained_project / "run" / "model.pt"


def test_predict_and_evaluate_name_every_file_they_write(project, trained):
    data = project / "series.csv"
    plot, report, evaluation_plot = project / "f.png", project / "e.json", project / "e.png"
    predicted = cli("predict", trained, "--data", data, "--plot", plot)
    assert predicted.code == 0, predicted.stderr
    assert plot.stat().st_size > 0 and f"plot written to {plot}" in predicted.stdout
    assert predicted.stdout.count("written to") == 2  # the forecast and the plot, once each

    evaluated = cli("evaluate", trained, "--data", data, "--report", report, "--plot", evaluation_plot)
    assert evaluated.code == 0, evaluated.stderr
    assert (
        f"report written to {report}" in evaluated.stdout and f"plot written to {evaluation_plot}" in evaluated.stdout
    )
    assert json.loads(report.read_text())["horizon"] == 12

    as_json = cli("evaluate", trained, "--data", data, "--json", "--report", project / "e2.json")
    assert as_json.code == 0, as_json.stderr
    summary = json.loads(as_json.stdout.strip().splitlines()[-1])  # --json: one line on stdout, as everywhere
    assert summary["status"] == "ok" and summary["outputs"] == {"report": str(project / "e2.json")}
    assert summary["report"]["overall"]["model"]["mae"] == json.loads(report.read_text())["overall"]["model"]["mae"]


def test_validate_and_inspect_take_the_common_options(project, trained):
    log = project / "v.log"
    checked = cli("validate", project / "config.yaml", "--json", "--log-file", log, "--profile")
    assert checked.code == 0, checked.stderr
    line = json.loads(checked.stdout.strip().splitlines()[-1])
    assert line["status"] == "ok" and line["command"] == "validate" and line["checks"]["freq"] == "h"
    assert "profile:" in checked.stderr and log.exists()
    quiet = cli("validate", project / "config.yaml", "--quiet")
    assert quiet.code == 0 and quiet.stderr == "" and quiet.stdout.strip().endswith("ok")
    card = cli("inspect", trained, "--json", "--quiet")
    assert card.code == 0 and json.loads(card.stdout)["card"]["targets"] == "load"


def test_the_last_training_line_rounds_and_metrics_json_keeps_full_precision(project):
    result = cli("train", project / "config.yaml", "--set", "data.split.test=0")  # no test part: validation loss
    assert result.code == 0, result.stderr
    last = (project / "run" / "train.log").read_text().strip().splitlines()[-1]
    loss = re.search(r"validation loss (\S+)$", last).group(1)
    assert len(loss.replace(".", "").lstrip("0")) <= 4, last
    metrics = json.loads((project / "run" / "metrics.json").read_text())
    assert float(loss) == pytest.approx(metrics["val_loss"], rel=1e-3) and str(metrics["val_loss"]) != loss


def test_the_training_loss_is_measured_on_a_bounded_sample(project, monkeypatch):
    import lstmcast.flows.training

    monkeypatch.setattr(lstmcast.flows.training, "TRAIN_LOSS_SAMPLE", 50)
    result = cli("train", project / "config.yaml", "--quiet")
    assert result.code == 0, result.stderr
    metrics = json.loads((project / "run" / "metrics.json").read_text())
    assert metrics["windows"]["train"] > 50 and metrics["train_loss_windows"] == 50 and metrics["train_loss"] > 0


def test_evaluate_defaults_to_the_checkpoints_own_period_when_training_cut_the_data(project):
    end = "2024-01-17 23:00"  # the CSV runs to 2024-01-20 23:00
    assert cli("train", project / "config.yaml", "--quiet", "--set", f"data.end={end}").code == 0
    model, data = project / "run" / "model.pt", project / "series.csv"
    default = cli("evaluate", model, "--data", data, "--report", project / "d.json")
    explicit = cli("evaluate", model, "--data", data, "--end", end, "--report", project / "x.json")
    assert default.code == 0 and explicit.code == 0, default.stderr
    d, x = (json.loads((project / name).read_text()) for name in ("d.json", "x.json"))
    assert d["origins"] == x["origins"] and d["last_origin"] == x["last_origin"]
    last_target = pd.Timestamp(d["last_origin"]) + pd.Timedelta(hours=11)
    assert last_target == pd.Timestamp(end)  # the test period training held out, not the rows after data.end


def test_quantile_columns_are_ordered_by_level_not_as_text():
    columns = {f"load_q{q}": None for q in ("10", "2.5", "90", "50", "97.5")} | {"load": None, "load_qx": None}
    assert quantile_columns(columns, "load") == ["load_q2.5", "load_q10", "load_q50", "load_q90", "load_q97.5"]


def test_an_older_checkpoint_format_upgrades_to_the_same_model(tmp_path):
    old = checkpoint.load(FIXTURES_DIR / "checkpoint_v1.pt")
    assert old.format_version == 1 and old.config.window.lookback == 24 and old.dims.n_inputs == 2
    assert old.scaler.ids == [None] and old.scaler.stats(None) is not None and old.series is None
    assert old.spec().patch == 6 and old.spec().hidden_size == 4 and old.freq == "h"


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda p: p["members"][0].update({"head.bias": torch.zeros(99)}), "do not fit the model"),
        (lambda p: p["scaler"].update(mean=[[0.0]], std=[[1.0]]), "scaler does not fit"),
        (lambda p: p["dims"].update(n_targets=3), "dimensions do not fit"),
        (lambda p: p["config"]["window"].update(lookback=-5), "stored config is not valid"),
        (lambda p: p.pop("dims"), "missing or malformed"),
        (lambda p: p.update(members=[]), "holds no weights"),
        (lambda p: p.update(format_version=True), "checkpoint format"),
    ],
)
def test_a_checkpoint_whose_fields_are_wrong_is_refused_in_one_line(trained, tmp_path, damage, fragment):
    payload = torch.load(trained, weights_only=True)
    damage(payload)
    torch.save(payload, tmp_path / "bad.pt")
    assert_user_error(cli("predict", tmp_path / "bad.pt", "--data", trained.parents[1] / "series.csv"), fragment)
