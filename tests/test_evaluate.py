"""Backtests, baselines, quantile forecasts and plots."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from lstmcast.forecast import metrics
from lstmcast.model.lstm import ModelSpec, StackedLSTM

from .conftest import assert_user_error, cli, write_config


def test_errors_match_a_hand_computed_example():
    forecast = np.array([[[10.0], [12.0]]])  # one origin, horizon 2, one target
    actual = np.array([[[8.0], [12.0]]])
    history = np.array([[1.0], [2.0], [4.0], [7.0]])  # seasonal period 1 → mean |Δ| = (1 + 2 + 3) / 3 = 2
    scores = metrics.errors(forecast, actual, metrics.mase_scale(history, 1))
    overall = scores["overall"]
    assert overall["mae"] == pytest.approx(1.0)  # (2 + 0) / 2
    assert overall["rmse"] == pytest.approx(np.sqrt(2.0))  # sqrt((4 + 0) / 2)
    assert overall["smape"] == pytest.approx((200 * 2 / 18 + 0) / 2)
    assert overall["mase"] == pytest.approx(0.5)  # MAE 1 / scale 2
    assert scores["per_step"]["mae"] == pytest.approx([2.0, 0.0])


def test_seasonal_naive_is_exact_on_a_purely_seasonal_series():
    values = np.tile(np.arange(24.0), 10)[:, None] + 5
    origins = np.array([48, 61, 100])
    exact = metrics.seasonal_naive(values, origins, 36, 24)  # horizons beyond one season repeat it
    assert np.array_equal(exact, values[metrics.horizon_rows(origins, 36)])
    naive = metrics.seasonal_naive(values, origins, 3, 1)
    assert np.array_equal(naive[:, :, 0], np.repeat(values[origins - 1], 3, axis=1))


def test_pinball_and_coverage_by_hand():
    quantiles = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # two points, levels 0.1/0.5/0.9
    actual = np.array([2.5, 4.0])
    levels = [0.1, 0.5, 0.9]
    # point 1: 0.1·1.5, 0.5·0.5, 0.1·0.5 (over) ; point 2: 0.1·3, 0.5·2, 0.9·1
    expected = np.mean([0.15, 0.25, 0.05, 0.3, 1.0, 0.9])
    assert metrics.pinball(quantiles, actual, levels) == pytest.approx(expected)
    assert metrics.coverage(quantiles, actual, levels) == {"80% (q10–q90)": 0.5}


def test_quantiles_never_cross_by_construction():
    torch.manual_seed(0)
    model = StackedLSTM(
        ModelSpec(2, 2, lookback=12, horizon=4, hidden_size=8, patch=3, quantiles=[0.05, 0.25, 0.5, 0.75, 0.95])
    )
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 5)  # wild weights: crossing would show here if it could happen
        out = model(torch.randn(64, 12, 2))
    assert out.shape == (64, 4, 2, 5)
    assert (out.diff(dim=-1) >= 0).all()
    assert torch.equal(model.point(out), out[..., 2])


def test_quantile_training_writes_monotone_columns_and_evaluate_reports_coverage(project):
    assert cli("train", project / "config.yaml", "--quiet", "--set", "train.loss=quantile").code == 0
    model = project / "run" / "model.pt"
    assert cli("predict", model, "--data", project / "series.csv", "--out", project / "f.csv").code == 0
    forecast = pd.read_csv(project / "f.csv")
    assert list(forecast.columns) == ["timestamp", "load", "load_q10", "load_q50", "load_q90", "forecaster"]
    assert (forecast["load_q10"] <= forecast["load_q50"]).all() and (forecast["load_q50"] <= forecast["load_q90"]).all()
    assert np.allclose(forecast["load"], forecast["load_q50"])

    result = cli("evaluate", model, "--data", project / "series.csv", "--report", project / "e.json")
    assert result.code == 0, result.stderr
    report = json.loads((project / "e.json").read_text())
    assert set(report["quantiles"]) == {"levels", "pinball", "coverage"}
    assert 0 <= report["quantiles"]["coverage"]["80% (q10–q90)"] <= 1
    assert "coverage of the 80% (q10–q90) interval" in result.stdout


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_evaluate_defaults_to_the_test_period_and_writes_a_complete_json(project):
    run = project / "run"
    result = cli("evaluate", run / "model.pt", "--data", project / "series.csv", "--report", run / "eval.json")
    assert result.code == 0, result.stderr
    report = json.loads((run / "eval.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    assert report["origins"] == trained["windows"]["test"]
    assert report["overall"]["model"]["mae"] == pytest.approx(trained["test_mae"])
    assert set(report["overall"]) == {"model", "seasonal_naive", "naive"}
    for scores in report["overall"].values():
        assert set(scores) == {"mae", "rmse", "smape", "mase"}
    assert len(report["per_step"]["model"]["mae"]) == report["horizon"] == 12
    assert report["relative_skill"] == pytest.approx(
        report["overall"]["model"]["mase"] / report["overall"]["seasonal_naive"]["mase"]
    )
    for label in ("model", "seasonal naive", "naive", "MASE"):
        assert label in result.stdout


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_evaluate_window_and_stride(project):
    model, data = project / "run" / "model.pt", project / "series.csv"
    json_path = project / "e.json"
    args = ["--start", "2024-01-10 00:00", "--end", "2024-01-12 23:00", "--stride", "5", "--report", json_path]
    assert cli("evaluate", model, "--data", data, *args).code == 0
    report = json.loads(json_path.read_text())
    # origins 2024-01-10 00:00 … 2024-01-12 12:00 (the last whose 12-step forecast ends by 23:00), every 5 hours
    assert report["first_origin"].startswith("2024-01-10T00:00") and report["origins"] == len(range(0, 61, 5))
    assert report["last_origin"].startswith("2024-01-12T12:00")
    assert_user_error(cli("evaluate", model, "--data", data, "--start", "2031-01-01"), "no forecast origins")


@pytest.mark.slow
def test_plots_are_valid_png_files(project):
    pytest.importorskip("matplotlib")
    assert cli("train", project / "config.yaml", "--quiet", "--set", "train.loss=quantile").code == 0
    model, data = project / "run" / "model.pt", project / "series.csv"
    assert cli("predict", model, "--data", data, "--plot", project / "f.png").code == 0
    assert cli("evaluate", model, "--data", data, "--plot", project / "e.png").code == 0
    for name in ("f.png", "e.png"):
        content = (project / name).read_bytes()
        assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 5000


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_plot_without_matplotlib_says_what_to_install(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = cli("predict", project / "run" / "model.pt", "--data", project / "series.csv", "--plot", project / "f.png")
    assert_user_error(result, "install lstmcast[plot]")
    assert not (project / "run" / "forecast.csv").exists()  # refused before doing any work


def test_quantiles_must_include_the_median(tmp_path):
    write_config(tmp_path, {"train": {"loss": "quantile", "quantiles": [0.1, 0.9]}})
    assert_user_error(cli("validate", tmp_path / "config.yaml"), "include 0.5")
