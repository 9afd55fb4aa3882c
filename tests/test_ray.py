"""predict --engine ray in Ray's local mode (2 CPUs): the same forecasts as one process, whole or nothing, one line
for every way it can go wrong. One Ray is started for the module; the engine uses a Ray already running."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from .conftest import assert_user_error, cli, cli_process, write_config
from .test_catalogue import long_frame, parquet_folder

pytestmark = pytest.mark.slow  # Ray takes seconds to start
ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def local_ray():
    import os

    from lstmcast.engines.ray import QUIET

    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def lake(tmp_path_factory, local_ray):
    folder = tmp_path_factory.mktemp("lake")
    frame = long_frame(series=10, rows=120, seed=3)
    text = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    text.to_csv(folder / "panel.csv", index=False)
    write_config(
        folder,
        {"data": {"path": "panel.csv", "series_id": "id", "features": ["temp"]}, "window": {"lookback": 24, "horizon": 6},
         "model": {"patch": 6}, "train": {"select": "model", "epochs": 1, "loss": "quantile"}},
    )  # fmt: skip
    assert cli("train", folder / "config.yaml", "--quiet").code == 0
    short = long_frame(series=2, rows=12, seed=4).assign(id=lambda f: "z" + f["id"])
    parquet_folder(folder / "data", pd.concat([frame, short]), per_file=3)
    return folder


def read(path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(["id", "timestamp"]).reset_index(drop=True)


def test_ray_forecasts_and_archives_what_one_process_does(lake, tmp_path):
    import sqlite3

    model = lake / "run" / "model.pt"
    local = cli(
        "predict", model, "--data", lake / "data", "--out", f"{tmp_path}/local/", "--archive", tmp_path / "a.db"
    )
    assert local.code == 0, local.stderr
    args = ("--engine", "ray", "--workers", "2", "--archive", tmp_path / "b.db", "--json")
    done = cli("predict", model, "--data", lake / "data", "--out", f"{tmp_path}/ray/", *args)
    assert done.code == 0, done.stderr
    pd.testing.assert_frame_equal(read(tmp_path / "ray"), read(tmp_path / "local"))  # every value, bit for bit
    assert (tmp_path / "ray" / "_SUCCESS").exists()
    served = json.loads(done.stdout.strip().splitlines()[-1])["forecasters"]
    assert served["model"] == 10 and served["model"] + served["seasonal_naive"] + served["naive"] == 12  # 2 too short
    assert set(read(tmp_path / "ray").columns) >= {"load_q10", "load_q90", "forecaster"}
    query = (
        "SELECT series, origin, target_time, target, step, value, forecaster FROM lstmcast_forecasts ORDER BY 1, 3, 4"
    )
    rows = [sqlite3.connect(tmp_path / db).execute(query).fetchall() for db in ("a.db", "b.db")]
    assert rows[0] == rows[1] and len(rows[0]) == 12 * 6
    quantiles = "SELECT series, target_time, level, value FROM lstmcast_quantiles ORDER BY 1, 2, 3"
    assert [sqlite3.connect(tmp_path / db).execute(quantiles).fetchall() for db in ("a.db", "b.db")].count([]) == 0


def test_series_split_across_files_is_one_line_or_regrouped(lake, tmp_path):
    model = lake / "run" / "model.pt"
    frame = long_frame(series=4, rows=120, seed=5)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    first = frame.groupby("id").cumcount() < 60
    for k, half in enumerate((frame[first], frame[~first])):  # every series' rows in two files, by time
        pq.write_table(pa.Table.from_pandas(half, preserve_index=False), mixed / f"p{k}.parquet")
    refused = cli("predict", model, "--data", mixed, "--out", f"{tmp_path}/a/", "--engine", "ray")
    assert_user_error(refused, "has rows in more than one file of the data set")
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.*"))
    regrouped = cli("predict", model, "--data", mixed, "--out", f"{tmp_path}/b/", "--engine", "ray", "--regroup")
    assert regrouped.code == 0, regrouped.stderr
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), whole)
    assert cli("predict", model, "--data", whole, "--out", tmp_path / "one.parquet").code == 0
    pd.testing.assert_frame_equal(read(tmp_path / "b"), read(tmp_path / "one.parquet"))


def test_a_bad_cell_on_a_worker_is_the_same_line_as_in_one_process(lake, tmp_path):
    model = lake / "run" / "model.pt"
    bad = tmp_path / "bad"
    frame = long_frame(series=4, rows=120, seed=6).astype({"load": object})
    frame.loc[130, "load"] = "n/a"
    parquet_folder(bad, frame.astype({"load": str}), per_file=2)
    local = cli("predict", model, "--data", bad, "--out", f"{tmp_path}/l/")
    on_ray = cli("predict", model, "--data", bad, "--out", f"{tmp_path}/r/", "--engine", "ray")
    assert_user_error(on_ray, "'n/a' is not a number")
    assert on_ray.stderr.strip().splitlines()[-1] == local.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()


def test_ray_options_that_cannot_work_are_one_line(lake, tmp_path):
    model = lake / "run" / "model.pt"
    assert_user_error(
        cli("predict", model, "--data", lake / "panel.csv", "--out", f"{tmp_path}/x/", "--engine", "ray"),
        "reads a Parquet file or folder",
    )
    assert_user_error(
        cli("predict", model, "--data", lake / "data", "--out", tmp_path / "x.csv", "--engine", "ray"),
        "give --out a folder",
    )


def test_no_cluster_at_the_address_is_one_line_at_once(lake, tmp_path):
    started = time.monotonic()
    done = cli_process(
        "predict", lake / "run" / "model.pt", "--data", lake / "data", "--out", f"{tmp_path}/x/", "--engine", "ray",
        "--address", "127.0.0.1:1",
    )  # fmt: skip
    assert_user_error(done, "cannot reach a Ray cluster at 127.0.0.1:1")
    assert time.monotonic() - started < 60 and not (tmp_path / "x").exists()
