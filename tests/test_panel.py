"""Many series in one long-format CSV: one global model, per-series scaling and splits, calendar inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.data import calendar, frame
from lstmcast.learn.dataset import assemble, fit_scaler
from lstmcast.learn.split import split_rows
from lstmcast.model import checkpoint

from .conftest import assert_user_error, cli, write_config


def long_csv(path: Path, specs: dict[str, tuple[str, int, float]], seed: int = 0) -> Path:
    """Series id → (start, rows, level): hourly sines of different lengths, starts and levels."""
    rng = np.random.default_rng(seed)
    parts = []
    for sid, (start, rows, level) in specs.items():
        t = np.arange(rows)
        stamps = pd.date_range(start, periods=rows, freq="h")
        load = level + level / 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, level / 50, rows)
        parts.append(
            pd.DataFrame({"meter": sid, "timestamp": stamps.strftime("%Y-%m-%d %H:%M"), "load": load.round(3)})
        )
    frame_ = pd.concat(parts).sample(frac=1.0, random_state=0)  # rows in any order
    frame_.to_csv(path, index=False)
    return path


SPECS = {"a": ("2024-01-01", 400, 10.0), "b": ("2024-02-03 05:00", 300, 1000.0), "c": ("2023-12-20", 500, 50.0)}


@pytest.fixture
def panel_project(tmp_path: Path) -> Path:
    long_csv(tmp_path / "series.csv", SPECS)
    write_config(tmp_path, {"data": {"series_id": "meter", "features": []}})
    return tmp_path


def test_many_series_train_and_forecast_in_long_format(panel_project):
    trained = cli("train", panel_project / "config.yaml")
    assert trained.code == 0, trained.stderr
    assert "3 series" in trained.stderr
    model = panel_project / "run" / "model.pt"
    assert checkpoint.load(model).series == ["a", "b", "c"]
    predicted = cli("predict", model, "--data", panel_project / "series.csv")
    assert predicted.code == 0, predicted.stderr
    assert "for 3 series" in predicted.stdout
    forecast = pd.read_csv(panel_project / "run" / "forecast.csv", parse_dates=["timestamp"])
    assert list(forecast.columns) == ["meter", "timestamp", "load", "forecaster"]
    for sid, (start, rows, level) in SPECS.items():
        part = forecast[forecast["meter"] == sid]
        last = pd.Timestamp(start) + pd.Timedelta(hours=rows - 1)
        assert list(part["timestamp"]) == list(pd.date_range(last, periods=13, freq="h")[1:])
        assert part["load"].between(0.5 * level, 1.5 * level).all()  # each series in its own units

    only = cli(
        "predict", model, "--data", panel_project / "series.csv", "--series", "b", "--out", panel_project / "b.csv"
    )
    assert only.code == 0
    assert set(pd.read_csv(panel_project / "b.csv")["meter"]) == {"b"}
    assert_user_error(cli("predict", model, "--data", panel_project / "series.csv", "--series", "zz"), "no series 'zz'")


def test_no_window_mixes_two_series_and_scalers_use_each_series_training_rows(tmp_path):
    long_csv(tmp_path / "s.csv", SPECS)
    panel = frame.load_panel(tmp_path / "s.csv", series_id="meter", timestamp="timestamp", target=["load"], features=[])
    assert [sid for sid, _ in panel] == ["a", "b", "c"] and [s.rows for _, s in panel] == [400, 300, 500]
    splits = [split_rows(s.rows, 0.15, 0.15) for _, s in panel]
    scaler = fit_scaler(panel, splits, "standard")
    for i, (_, series) in enumerate(panel):
        assert scaler.mean[i][0] == pytest.approx(series.values[: splits[i].train, 0].mean())
    ds = assemble(panel, scaler, lookback=48, horizon=12, calendar=[], splits=splits)
    for part, runs in ds.parts.items():
        origins = runs.array()
        assert len(origins), part
        first_row, last_row = origins - 48, origins + 12 - 1
        assert np.array_equal(ds.series_of(first_row), ds.series_of(last_row)), part


def test_short_series_are_skipped_and_counted(tmp_path):
    long_csv(tmp_path / "series.csv", {**SPECS, "tiny": ("2024-01-01", 50, 5.0)})
    write_config(tmp_path, {"data": {"series_id": "meter", "features": []}})
    result = cli("train", tmp_path / "config.yaml")
    assert result.code == 0, result.stderr
    assert "skipped 1 of 4 series" in result.stderr
    assert checkpoint.load(tmp_path / "run" / "model.pt").series == ["a", "b", "c"]
    long_csv(tmp_path / "short.csv", {"x": ("2024-01-01", 50, 5.0), "y": ("2024-01-01", 60, 5.0)})
    assert_user_error(
        cli("train", tmp_path / "config.yaml", "--data", tmp_path / "short.csv"), "longest series", "60 rows"
    )


def test_errors_name_the_series(tmp_path):
    path = long_csv(tmp_path / "series.csv", SPECS)
    text = path.read_text().splitlines()
    dup = next(line for line in text if line.startswith("b,"))
    path.write_text("\n".join([*text, dup]) + "\n")
    write_config(tmp_path, {"data": {"series_id": "meter", "features": []}})
    assert_user_error(cli("train", tmp_path / "config.yaml"), "series 'b'", "duplicate timestamp")


def test_unseen_series_is_forecast_with_its_own_scaling_and_a_warning(panel_project):
    assert cli("train", panel_project / "config.yaml", "--quiet").code == 0
    long_csv(panel_project / "new.csv", {"new": ("2024-03-01", 200, 300.0)})
    result = cli(
        "predict",
        panel_project / "run" / "model.pt",
        "--data",
        panel_project / "new.csv",
        "--out",
        panel_project / "n.csv",
    )
    assert result.code == 0, result.stderr
    assert "warning: 1 series not seen in training" in result.stderr
    assert pd.read_csv(panel_project / "n.csv")["load"].between(150, 450).all()


def test_series_embedding_and_per_series_evaluation(panel_project):
    trained = cli("train", panel_project / "config.yaml", "--quiet", "--set", "model.series_embedding=3")
    assert trained.code == 0, trained.stderr
    model = panel_project / "run" / "model.pt"
    report_path = panel_project / "e.json"
    result = cli("evaluate", model, "--data", panel_project / "series.csv", "--report", report_path)
    assert result.code == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["series"] == 3 and [row["series"] for row in report["per_series"]] == ["a", "b", "c"]
    mean_mase = np.mean([row["model"]["mase"] for row in report["per_series"]])
    assert report["overall"]["model"]["mase"] == pytest.approx(mean_mase)
    long_csv(panel_project / "new.csv", {"new": ("2024-03-01", 200, 300.0)})
    assert_user_error(
        cli("predict", model, "--data", panel_project / "new.csv", "--fallback", "error"),
        "1 series ('new')",
        "not in training",
    )


def test_calendar_features_for_known_timestamps():
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-06 18:00", "2024-07-16 12:00"])
    feats = calendar.calendar_features(index, ["hour", "dayofweek", "dayofmonth", "month"])
    assert feats.shape == (4, 8)
    hour_sin, hour_cos, dow_sin, dow_cos = feats[:, 0], feats[:, 1], feats[:, 2], feats[:, 3]
    assert np.allclose(hour_sin, [0, 1, -1, 0], atol=1e-6) and np.allclose(hour_cos, [1, 0, 0, -1], atol=1e-6)
    assert np.allclose([dow_sin[0], dow_cos[0]], [0, 1])  # Monday
    assert np.allclose(dow_sin[2], np.sin(2 * np.pi * 5 / 7))  # Saturday
    month_sin, month_cos = feats[:, 6], feats[:, 7]
    assert np.allclose([month_sin[3], month_cos[3]], [np.sin(2 * np.pi * 6 / 12), np.cos(2 * np.pi * 6 / 12)])
    assert calendar.calendar_names("auto", "h") == ["hour", "dayofweek"]
    assert calendar.calendar_names("auto", "D") == ["dayofweek", "month"] and calendar.calendar_names("auto", "MS") == [
        "month"
    ]
    assert calendar.calendar_names("none", "h") == [] and calendar.calendar_names("auto", None) == []


@pytest.mark.slow
def test_future_features_reach_the_forecast_and_are_required_at_predict(tmp_path):
    rng = np.random.default_rng(1)
    rows = 600
    stamps = pd.date_range("2024-01-01", periods=rows, freq="h")
    price = rng.normal(0, 1, rows)
    load = 10 + np.sin(2 * np.pi * np.arange(rows) / 24) + 3 * price  # the price moves the load at once
    frame_ = pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%d %H:%M"), "load": load.round(4), "price": price.round(4)}
    )
    frame_.to_csv(tmp_path / "series.csv", index=False)
    write_config(
        tmp_path,
        {
            "data": {"features": [], "future_features": ["price"], "calendar": "none"},
            "train": {"epochs": 25, "patience": 0},
        },
    )
    assert cli("train", tmp_path / "config.yaml", "--quiet").code == 0
    model = tmp_path / "run" / "model.pt"

    assert_user_error(cli("predict", model, "--data", tmp_path / "series.csv"), "future_features (price)", "12 rows")
    future = pd.DataFrame(
        {"timestamp": pd.date_range(stamps[-1], periods=13, freq="h")[1:].strftime("%Y-%m-%d %H:%M"), "load": np.nan}
    )
    forecasts = []
    for shift in (-1.0, 1.0):
        future["price"] = np.linspace(-1, 1, 12) + shift
        pd.concat([frame_, future]).to_csv(tmp_path / "with_future.csv", index=False)
        out = tmp_path / f"f{shift}.csv"
        result = cli("predict", model, "--data", tmp_path / "with_future.csv", "--out", out)
        assert result.code == 0, result.stderr
        forecast = pd.read_csv(out)
        assert list(pd.to_datetime(forecast["timestamp"])) == list(pd.to_datetime(future["timestamp"]))
        forecasts.append(forecast["load"].to_numpy())
    # Two units more price should add about six units of load at every step (the true effect is 3 per unit).
    assert np.all(forecasts[1] - forecasts[0] > 3.0)
