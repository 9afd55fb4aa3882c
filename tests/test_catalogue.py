"""Many series at once: the fast path gives what the per-series path gives, predict streams a Parquet data set a
batch of whole series at a time, and the one function at the core (`Predictor`) makes every forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmcast.config import DataConfig
from lstmcast.data import fast
from lstmcast.data.frame import layout, panel_of
from lstmcast.data.sources import Source
from lstmcast.errors import DataError

from .conftest import assert_user_error, cli, write_config

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def long_frame(
    series: int = 6, rows: int = 60, *, freq: str = "h", seed: int = 0, tz: str | None = None
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2026-01-01", periods=rows, freq=freq, tz=tz)
    parts = []
    for k in range(series):
        values = 10 + k + np.sin(np.arange(rows) / 4) + rng.normal(0, 0.1, rows)
        parts.append(pd.DataFrame({"id": f"s{k}", "timestamp": stamps, "load": values, "temp": values / 2}))
    return pd.concat(parts, ignore_index=True)


def broken(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    """One defect in series s2 (or in the whole frame), as a catalogue meets them."""
    out = frame.copy()
    s2 = out.index[out["id"] == "s2"]
    if how == "clean":
        pass
    elif how == "shuffled":
        out = out.sample(frac=1.0, random_state=0)
    elif how == "gap":
        out = out.drop(s2[10:13])
    elif how == "empty cell":
        out.loc[s2[20], "load"] = np.nan
    elif how == "empty feature":
        out.loc[s2[5], "temp"] = np.nan
    elif how == "one row":
        out = out.drop(s2[1:])
    elif how == "short":
        out = out.drop(s2[5:])
    return out


def both_ways(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, **rules) -> tuple:
    """The panel through the fast path, and through the per-series path alone; or the error each raises."""
    d = DataConfig(**{"series_id": "id", "target": ["load"], "features": ["temp"], **rules.pop("data", {})})
    source = Source("frame.parquet")
    spec, r = layout(d, source, **rules)
    results = []
    for path in ("fast", "slow"):
        if path == "slow":
            monkeypatch.setattr(fast, "clean_series", lambda *a, **k: None)
        try:
            results.append(panel_of(frame.reset_index(drop=True), source, spec, r))
        except DataError as exc:
            results.append(str(exc))
    monkeypatch.undo()
    return tuple(results)


def assert_same(a, b) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert list(a.ids) == list(b.ids) and a.freq == b.freq and a.columns == b.columns
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.values, b.values)
    assert np.array_equal(a.filled_rows, b.filled_rows) and np.array_equal(a.filled_cells, b.filled_cells)
    assert (a.future is None) == (b.future is None)
    if a.future is not None:
        assert np.array_equal(a.future, b.future)
    for k in range(len(a)):
        ta, tb = a[k][1].times(), b[k][1].times()
        assert (ta is None and tb is None) or ta.equals(tb), a.ids[k]


DEFECTS = ["clean", "shuffled", "gap", "empty cell", "empty feature", "one row", "short"]


@pytest.mark.parametrize("how", DEFECTS)
def test_the_fast_path_gives_what_the_per_series_path_gives(how, monkeypatch):
    frame = broken(long_frame(), how)
    for rules in ({"freq": "auto"}, {"freq": "h", "freq_from": "the model's frequency", "last_observed": True}):
        fast_panel, slow_panel = both_ways(frame, monkeypatch, **rules)
        assert_same(fast_panel, slow_panel)


@pytest.mark.parametrize(
    "case",
    ["duplicate time", "other step", "daily", "time zone", "seconds", "range", "no timestamps", "future rows"],
)
def test_the_fast_path_agrees_on_every_kind_of_time(case, monkeypatch):
    frame, rules = long_frame(), {"freq": "h"}
    if case == "duplicate time":
        frame.loc[frame.index[frame["id"] == "s3"][7], "timestamp"] = frame["timestamp"].iloc[6]
    elif case == "other step":
        frame.loc[frame["id"] == "s1", "timestamp"] = pd.date_range("2026-01-01", periods=60, freq="2h")
    elif case == "daily":
        frame, rules = long_frame(freq="D"), {"freq": "D"}
    elif case == "time zone":
        frame = long_frame(tz="Europe/Berlin")
    elif case == "seconds":
        frame["timestamp"] = frame["timestamp"].astype("datetime64[s]")
    elif case == "range":
        rules = {"freq": "h", "start": "2026-01-01 05:00", "end": "2026-01-02 20:00"}
    elif case == "no timestamps":
        frame, rules = frame.drop(columns="timestamp"), {"data": {"timestamp": None}}
    elif case == "future rows":
        frame.loc[frame.groupby("id").cumcount() >= 50, "load"] = np.nan
        # the last 10 rows of each series: no target, the future feature given
        rules = {"freq": "h", "future_rows": 10, "data": {"features": [], "future_features": ["temp"]}}
    a, b = both_ways(frame, monkeypatch, **rules)
    assert_same(a, b)
    if case == "duplicate time":
        assert isinstance(a, str) and "duplicate timestamp" in a
    if case in ("daily", "time zone", "seconds", "range", "no timestamps", "future rows"):
        assert not isinstance(a, str) and len(a) == 6


def parquet_folder(folder, frame: pd.DataFrame, per_file: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    ids = sorted(frame["id"].unique())
    for k in range(0, len(ids), per_file):
        part = frame[frame["id"].isin(ids[k : k + per_file])]
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), folder / f"part-{k:03d}.parquet", row_group_size=25
        )
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalogue")
    frame = long_frame(series=8, rows=120)
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_csv(folder / "panel.csv", index=False)
    write_config(
        folder,
        {"data": {"path": "panel.csv", "series_id": "id", "features": ["temp"]}, "window": {"lookback": 24, "horizon": 6},
         "model": {"patch": 6}, "train": {"select": "best", "epochs": 1}},
    )  # fmt: skip
    assert cli("train", folder / "config.yaml", "--quiet").code == 0
    data = long_frame(series=8, rows=120)
    data.loc[data["id"] == "s7", "load"] = data.loc[data["id"] == "s7", "load"].to_numpy()[::-1]  # a different shape
    parquet_folder(folder / "lake", pd.concat([data, long_frame(series=3, rows=12).assign(id=lambda f: "t" + f["id"])]))
    return folder


def test_predict_streams_a_data_set_and_forecasts_what_one_read_forecasts(trained, tmp_path):
    from lstmcast.flows.predict import predict
    from lstmcast.report import Reporter

    model, lake = trained / "run" / "model.pt", Source(str(trained / "lake"))
    outs = {}
    for rows in (10**9, 30):  # everything at once; about one series a batch (rows of a series never split)
        outs[rows] = tmp_path / f"f{rows}.csv"
        done = predict(model, lake, outs[rows], Reporter(quiet=True), batch_rows=rows)
        assert done.series == 11
    assert outs[30].read_bytes() == outs[10**9].read_bytes()
    forecast = pd.read_csv(outs[30])
    assert "model" not in forecast.groupby("id")["forecaster"].first().loc[["ts0", "ts1", "ts2"]].tolist()  # too short


def test_a_series_whose_rows_come_back_later_is_one_line(trained, tmp_path):
    from lstmcast.flows.predict import predict
    from lstmcast.report import Reporter

    frame = long_frame(series=4, rows=120)
    s1, others = frame[frame["id"] == "s1"], frame[frame["id"] != "s1"]
    moved = pd.concat([others.iloc[:120], s1.iloc[10:], others.iloc[120:], s1.iloc[:10]])  # s1's first rows come last
    pq.write_table(pa.Table.from_pandas(moved, preserve_index=False), tmp_path / "x.parquet", row_group_size=50)
    with pytest.raises(DataError, match="series 's1' comes back after rows of other series"):
        predict(
            trained / "run" / "model.pt",
            Source(str(tmp_path / "x.parquet")),
            tmp_path / "f.csv",
            Reporter(quiet=True),
            batch_rows=60,
        )
    assert not (tmp_path / "f.csv").exists()


def test_a_forecast_data_set_appears_whole_or_not_at_all(trained, tmp_path):
    out = tmp_path / "forecasts"
    first = cli("predict", trained / "run" / "model.pt", "--data", trained / "lake", "--out", f"{out}/")
    assert first.code == 0, first.stderr
    assert (out / "_SUCCESS").exists() and len(list(out.glob("part-*.parquet"))) >= 1
    whole = pd.read_parquet(out)
    assert whole["id"].nunique() == 11 and set(whole.columns) == {"id", "timestamp", "load", "forecaster"}
    (trained / "bad").mkdir(exist_ok=True)
    (trained / "bad" / "a.parquet").write_bytes(b"not parquet")
    failed = cli("predict", trained / "run" / "model.pt", "--data", trained / "bad", "--out", f"{out}/")
    assert_user_error(failed, "is not a readable Parquet file")
    assert pd.read_parquet(out).equals(whole) and not list(tmp_path.glob(".forecasts.*"))  # the previous set, whole
    again = cli("predict", trained / "run" / "model.pt", "--data", trained / "lake", "--out", f"{out}/")
    assert again.code == 0 and pd.read_parquet(out).equals(whole)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = cli("predict", trained / "run" / "model.pt", "--data", trained / "lake", "--out", f"{mine}/")
    assert_user_error(refused, "not a forecast data set lstmcast finished (it holds notes.txt)")
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1


def test_one_function_makes_every_forecast(trained, tmp_path):
    from lstmcast.forecast.partition import Predictor

    predictor = Predictor.load(trained / "run" / "model.pt")
    frame = pd.read_parquet(trained / "lake")
    rows = predictor(frame)  # what an engine maps over partitions of whole series
    out = tmp_path / "f.parquet"
    assert cli("predict", trained / "run" / "model.pt", "--data", trained / "lake", "--out", out).code == 0
    expected = pd.read_parquet(out)
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), expected, check_dtype=False)
    halves = pd.concat([predictor(frame[frame["id"] < "s4"]), predictor(frame[frame["id"] >= "s4"])])
    pd.testing.assert_frame_equal(
        halves.sort_values(["id", "timestamp"]).reset_index(drop=True), expected, check_dtype=False
    )
