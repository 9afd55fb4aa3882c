"""Every series gets a forecast: the model where it can and validation says it helps, a labelled baseline elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmcast.forecast.baselines import decide, t95
from lstmcast.model import checkpoint
from lstmcast.model.selection import Selection
from lstmcast.vocabulary import FORECASTERS

from .conftest import assert_user_error, cli, write_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def panel_csv(path: Path, ids: list[str], rows: dict[str, int], walks: set[str], seed: int = 0) -> Path:
    """Hourly series: noisy daily sines, or random walks (for which repeating the last value is hard to beat)."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, sid in enumerate(ids):
        n = rows.get(sid, 300)
        t = np.arange(n)
        if sid in walks:
            load = 100 + np.cumsum(rng.normal(0, 2, n))
        else:
            load = 10 * (k + 1) + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.2, n)
        stamps = pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")
        parts.append(pd.DataFrame({"meter": sid, "timestamp": stamps, "load": load.round(4)}))
    pd.concat(parts).to_csv(path, index=False)
    return path


IDS = [f"s{k}" for k in range(10)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quantile model over 9 long series (s9 is too short for training), chosen per series on validation."""
    folder = tmp_path_factory.mktemp("fallback")
    panel_csv(folder / "series.csv", IDS, {"s9": 40}, walks={"s7", "s8"})
    write_config(
        folder,
        {
            "data": {"series_id": "meter", "features": []},
            "train": {"select": "best", "loss": "quantile", "quantiles": [0.1, 0.5, 0.9]},
        },
    )
    result = cli("train", folder / "config.yaml", "--verbose", "--log-file", folder / "train.txt")
    assert result.code == 0, result.stderr
    return folder


def test_selection_is_stored_with_its_validation_scores_and_followed_by_predict(trained):
    ckpt = checkpoint.load(trained / "run" / "model.pt")
    sel = ckpt.selection
    assert sel is not None and sel.ids == ckpt.series and len(ckpt.series) == 9
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    assert metrics["skipped_series"] == ["s9"] and metrics["selection"]["mode"] == "best"
    for k, sid in enumerate(sel.ids):  # a series departs from the panel's choice only where it did better
        chosen = sel.choice(sid, "best")
        assert chosen == sel.default or sel.scores[chosen][k] < sel.scores[sel.default][k]
    assert sum(metrics["selection"]["mix"].values()) == 9
    out = trained / "served.csv"
    result = cli("predict", trained / "run" / "model.pt", "--data", trained / "series.csv", "--out", out, "--json")
    assert result.code == 0, result.stderr
    forecast = pd.read_csv(out)
    served = forecast.groupby("meter")["forecaster"].agg(set)
    for sid in sel.ids:
        assert served[sid] == {sel.choice(sid, "best")}
    summary = json.loads(result.stdout)
    assert summary["forecasters"] == {
        n: int((forecast.groupby("meter")["forecaster"].first() == n).sum()) for n in FORECASTERS
    }


def test_select_model_serves_every_long_series_with_the_model(trained):
    out = trained / "model_only.csv"
    result = cli(
        "predict", trained / "run" / "model.pt", "--data", trained / "series.csv", "--out", out, "--select", "model"
    )
    assert result.code == 0, result.stderr
    forecast = pd.read_csv(out)
    by_series = forecast.groupby("meter")["forecaster"].first()
    assert set(by_series.drop("s9")) == {"model"}
    assert by_series["s9"] in ("seasonal_naive", "naive")  # 40 rows < lookback 48: the model cannot serve it


def test_short_and_new_series_are_forecast_by_a_labelled_baseline_with_quantiles(trained):
    data = panel_csv(trained / "new.csv", [*IDS, "fresh"], {"s9": 40, "s3": 20, "fresh": 200}, walks={"s7", "s8"})
    out = trained / "all.csv"
    refused = cli("predict", trained / "run" / "model.pt", "--data", data, "--out", out, "--fallback", "naive")
    assert_user_error(refused, "series 's3', a series the model trained on, has 20 rows", "reads 48", "truncated")
    args = ("--fallback", "naive", "--short-history", "fallback", "--json")
    result = cli("predict", trained / "run" / "model.pt", "--data", data, "--out", out, *args)
    assert result.code == 0, result.stderr
    forecast = pd.read_csv(out)
    assert forecast["meter"].nunique() == 11 and len(forecast) == 11 * 12
    assert list(forecast.columns) == ["meter", "timestamp", "load", "load_q10", "load_q50", "load_q90", "forecaster"]
    rows = pd.read_csv(data)
    for sid in ("s9", "s3"):  # shorter than the lookback: naive repeats the last value
        mine = forecast[forecast["meter"] == sid]
        assert set(mine["forecaster"]) == {"naive"}
        assert np.allclose(mine["load"], rows[rows["meter"] == sid]["load"].iloc[-1])
    values = forecast[["load_q10", "load_q50", "load_q90"]].to_numpy()
    assert np.isfinite(values).all() and (np.diff(values, axis=1) >= 0).all()
    assert np.allclose(forecast["load"], forecast["load_q50"])
    fallback = forecast[forecast["forecaster"] != "model"]
    assert (fallback["load_q90"] > fallback["load_q10"]).all()  # a real interval, from validation residuals
    summary = json.loads(result.stdout)
    assert summary["not_model"]["short"] == {"count": 2, "examples": ["s3", "s9"]}
    assert sum(summary["forecasters"].values()) == 11


def test_seasonal_naive_fallback_repeats_the_last_day(trained):
    data = panel_csv(trained / "short.csv", ["s0"], {"s0": 30}, walks=set())
    out = trained / "short_forecast.csv"
    args = ("--fallback", "seasonal_naive", "--short-history", "fallback")
    result = cli("predict", trained / "run" / "model.pt", "--data", data, "--out", out, *args)
    assert result.code == 0, result.stderr
    assert "shorter than window.lookback" in result.stderr
    history = pd.read_csv(data)["load"].to_numpy()
    forecast = pd.read_csv(out)
    assert set(forecast["forecaster"]) == {"seasonal_naive"}
    assert np.allclose(forecast["load"], history[-24:][np.arange(12) % 24])


def test_less_than_a_season_is_naive_labelled_naive(trained):
    """Three rows of a series: a "seasonal naive" would repeat a period of 3, not of 24. Naive, named so."""
    data = panel_csv(trained / "three.csv", ["fresh"], {"fresh": 3}, walks=set())
    out = trained / "three_forecast.csv"
    args = ("--fallback", "seasonal_naive")
    result = cli("predict", trained / "run" / "model.pt", "--data", data, "--out", out, *args)
    assert result.code == 0, result.stderr  # a new series may be short: it gets the fallback
    forecast = pd.read_csv(out)
    assert set(forecast["forecaster"]) == {"naive"}
    assert np.allclose(forecast["load"], pd.read_csv(data)["load"].iloc[-1])


def test_a_truncated_extract_is_refused_unless_the_config_opts_in(trained, tmp_path):
    """Most series shorter than the lookback (new or not) is one error naming rows received and needed, and
    nothing is written; predict.short_history: fallback (the config's opt-in, here --set at training) serves them."""
    fresh = [f"n{k}" for k in range(3)]
    data = panel_csv(tmp_path / "cut.csv", [*fresh, "s0"], dict.fromkeys(fresh, 30), walks=set())
    out = tmp_path / "cut_forecast.csv"
    refused = cli("predict", trained / "run" / "model.pt", "--data", data, "--out", out)
    assert_user_error(refused, "3 of 4 series have fewer rows than the model reads", "'n0': 30 rows of the 48")
    assert not out.exists()
    opted = cli("train", trained / "config.yaml", "--set", "predict.short_history=fallback", "--set",
                "train.epochs=1", "--set", f"output.dir={tmp_path / 'opted'}", "--quiet")  # fmt: skip
    assert opted.code == 0, opted.stderr
    assert cli("predict", tmp_path / "opted" / "model.pt", "--data", data, "--out", out).code == 0
    assert set(pd.read_csv(out).groupby("meter")["forecaster"].first().drop("s0")) != {"model"}


def test_fallback_error_refuses_naming_how_many_and_which(trained):
    data = panel_csv(trained / "refuse.csv", IDS, {"s9": 40, "s2": 10}, walks=set())
    out = trained / "refused.csv"
    result = cli("predict", trained / "run" / "model.pt", "--data", data, "--out", out, "--fallback", "error")
    assert_user_error(result, "2 series", "s2", "s9", "window.lookback", "--fallback")
    assert not out.exists()


def test_evaluate_scores_the_selected_forecasts_and_reports_the_mix(trained):
    report = trained / "report.json"
    result = cli("evaluate", trained / "run" / "model.pt", "--data", trained / "series.csv", "--report", report)
    assert result.code == 0, result.stderr
    assert "selected" in result.stdout and "skipped 1 of 10 series" in result.stderr
    data = json.loads(report.read_text())
    assert set(data["overall"]) == {"model", "seasonal_naive", "naive", "selected"}
    assert sum(data["selection"]["mix"].values()) == 9
    for row in data["per_series"]:  # per series, "selected" is exactly the chosen forecaster's score
        chosen = checkpoint.load(trained / "run" / "model.pt").selection.choice(row["series"], "best")
        assert row["selected"] == row[chosen]


def test_skipped_series_are_named_in_the_log_with_verbose(trained):
    log = (trained / "train.txt").read_text()
    assert "series skipped as too short: 's9'" in log


def test_a_checkpoint_written_before_selection_serves_with_the_model(tmp_path):
    old = checkpoint.load(FIXTURES / "checkpoint_v2.pt")
    assert old.selection is None and old.config.train.select == "model"
    out = tmp_path / "f.csv"
    result = cli("predict", FIXTURES / "checkpoint_v2.pt", "--data", FIXTURES / "series.csv", "--out", out)
    assert result.code == 0, result.stderr
    assert set(pd.read_csv(out)["forecaster"]) == {"model"}


def test_selection_rules():
    sel = Selection(
        ["a", "b", "c"],
        {"model": [1.0, 2.0, None], "seasonal_naive": [1.0, 1.5, None], "naive": [3.0, 1.2, None]},
        chosen=["model", "naive", "model"],
        default="model",
        windows=6,
    )
    assert [sel.choice(s, "best") for s in "abc"] == ["model", "naive", "model"]
    assert sel.choice("zz", "best") is None and sel.choice("b", "model") == "model"
    assert sel.overall() == "model" and sel.overall("model") == "model"
    assert sel.best_baseline() == "seasonal_naive"  # mean validation MASE 1.25 against naive's 2.1
    assert sel.mix("best") == {"model": 2, "seasonal_naive": 0, "naive": 1}
    assert Selection.from_dict(sel.to_dict()) == sel
    with pytest.raises(ValueError):
        Selection.from_dict({**sel.to_dict(), "scores": {"model": [1.0, 2.0, None]}})
    with pytest.raises(ValueError):
        Selection.from_dict({**sel.to_dict(), "chosen": ["model", "oracle", "model"]})


def _series(model: np.ndarray, naive_gap: np.ndarray, seasonal_gap: float = 0.5) -> dict[str, np.ndarray]:
    """Per-block losses of one series: naive's and seasonal naive's are the model's plus a gap."""
    return {"model": model, "naive": model + naive_gap, "seasonal_naive": model + seasonal_gap}


def test_a_choice_changes_only_on_significant_evidence():
    rng = np.random.default_rng(0)
    blocks = [1.0 + rng.normal(0, 0.05, 10) for _ in range(3)]  # ten blocks per series
    assert t95(1) == 6.314 and t95(11) == 1.812 and t95(1000) == 1.645
    # The panel: a baseline that is consistently a little better wins, everywhere.
    assert decide([_series(b, np.full(10, -0.03)) for b in blocks]) == ("naive", ["naive"] * 3)
    # Better on average but swinging block by block is no evidence: the model stays.
    swings = np.resize([0.5, -0.56], 10)
    assert decide([_series(b, swings) for b in blocks]) == ("model", ["model"] * 3)
    # One window per series (M4 Hourly's validation) pools into evidence for the panel, none for a series.
    one = [_series(np.array([1.0 + k / 10]), np.array([0.2])) for k in range(30)]
    assert decide(one) == ("model", ["model"] * 30)
    # A series departs from the panel's choice only on its own evidence.
    walks = [_series(blocks[k % 3], np.full(10, -0.03)) for k in range(10)] + [_series(blocks[0], np.full(10, 0.1))]
    assert decide(walks) == ("naive", ["naive"] * 10 + ["model"])


def test_a_column_named_forecaster_is_refused(tmp_path):
    config = write_config(tmp_path, {"data": {"target": "forecaster"}})
    assert_user_error(cli("validate", config), "'forecaster'", "rename")


def test_quantiles_of_a_checkpoint_without_stored_residuals_come_from_the_history(trained):
    import dataclasses

    from lstmcast.data.frame import read_data
    from lstmcast.forecast import serve

    ckpt = dataclasses.replace(checkpoint.load(trained / "run" / "model.pt"), selection=None)
    panel = read_data(ckpt.config.data, trained / "series.csv", freq=ckpt.freq)
    plan = serve.Plan(["naive"] * len(panel))
    spec = dataclasses.replace(ckpt.spec(), quantiles=(0.1, 0.5, 0.9))  # as a quantile model would have
    table = serve.baseline_table(ckpt, spec, panel, plan)
    assert table.shape == (len(panel), 12, 4)  # point, q10, q50, q90
    assert np.isfinite(table).all() and (np.diff(table[..., 1:], axis=-1) >= 0).all()
    assert (table[..., 3] > table[..., 1]).all() and np.allclose(table[..., 0], table[..., 2])
    last = np.array([series.values[-1, 0] for _, series in panel])
    assert np.allclose(table[..., 0], last[:, None])
