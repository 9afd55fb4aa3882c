"""Times on another clock than the model's (issue 26, family 8): calendar features (hour, day of week) read the
clock the times are written in, so naive times given to a model trained on times with an offset (or the reverse)
would shift every feature by the offset, exit 0. The checkpoint records the training times' zone; predict refuses
the naive/offset mismatch naming both, converts times with another offset to the model's (the same instants),
and lets a model without calendar features read any clock."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lstmcast.model import checkpoint

from .conftest import assert_user_error, cli, sine_csv, write_config


def with_offset(source: Path, target: Path, offset: str) -> Path:
    """The same instants as `source` (naive local times at +01:00), written with `offset`."""
    frame = pd.read_csv(source)
    instants = pd.to_datetime(frame["timestamp"]).dt.tz_localize("+01:00")
    frame["timestamp"] = [t.isoformat(sep=" ") for t in instants.dt.tz_convert(offset)]
    frame.to_csv(target, index=False)
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """naive/: a model trained on naive times; aware/: on the same series at +01:00; plain/: no calendar."""
    root = tmp_path_factory.mktemp("clock")
    sine_csv(root / "series.csv")
    with_offset(root / "series.csv", root / "aware.csv", "+01:00")
    for name, data, calendar in (("naive", "series.csv", "auto"), ("aware", "aware.csv", "auto"),
                                 ("plain", "series.csv", "none")):  # fmt: skip
        folder = root / name
        folder.mkdir()
        write_config(folder, {"data": {"path": str(root / data), "calendar": calendar}, "train": {"epochs": 1}})
        done = cli("train", folder / "config.yaml", "--quiet")
        assert done.code == 0, done.stderr
    return root


def test_the_checkpoint_records_the_training_clock(models: Path) -> None:
    assert checkpoint.load(models / "naive" / "run" / "model.pt").time_zone == ""
    assert checkpoint.load(models / "aware" / "run" / "model.pt").time_zone == "UTC+01:00"
    card = cli("inspect", models / "aware" / "run" / "model.pt")
    assert card.code == 0 and "in UTC+01:00" in card.stdout


def test_times_with_an_offset_given_a_naive_model_are_refused_naming_both(models: Path, tmp_path: Path) -> None:
    data = with_offset(models / "series.csv", tmp_path / "offset.csv", "+01:00")
    out = tmp_path / "f.csv"
    refused = cli("predict", models / "naive" / "run" / "model.pt", "--data", data, "--out", out)
    assert_user_error(refused, "offset.csv", "in UTC+01:00", "trained on times without a UTC offset", "hour")
    assert not out.exists()


def test_naive_times_given_a_model_trained_with_offsets_are_refused(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    refused = cli("predict", models / "aware" / "run" / "model.pt", "--data", models / "series.csv", "--out", out)
    assert_user_error(refused, "series.csv", "no UTC offset", "trained on times in UTC+01:00")
    assert not out.exists()
    evaluated = cli("evaluate", models / "aware" / "run" / "model.pt", "--data", models / "series.csv")
    assert_user_error(evaluated, "no UTC offset", "UTC+01:00")


def test_another_offset_is_converted_to_the_models_and_forecasts_the_same(models: Path, tmp_path: Path) -> None:
    model = models / "aware" / "run" / "model.pt"
    same, other = tmp_path / "same.csv", tmp_path / "other.csv"
    assert cli("predict", model, "--data", models / "aware.csv", "--out", same).code == 0
    data = with_offset(models / "series.csv", tmp_path / "summer.csv", "+02:00")
    done = cli("predict", model, "--data", data, "--out", other)
    assert done.code == 0, done.stderr
    assert "converted to the model's zone UTC+01:00" in done.stderr
    expected, got = pd.read_csv(same), pd.read_csv(other)
    assert got["timestamp"].tolist() == expected["timestamp"].tolist()  # the same instants, on the model's clock
    pd.testing.assert_series_equal(got["load"], expected["load"])


def test_a_model_without_calendar_features_reads_any_clock(models: Path, tmp_path: Path) -> None:
    data = with_offset(models / "series.csv", tmp_path / "offset.csv", "+05:30")
    done = cli("predict", models / "plain" / "run" / "model.pt", "--data", data, "--out", tmp_path / "f.csv")
    assert done.code == 0, done.stderr
    assert pd.read_csv(tmp_path / "f.csv")["timestamp"].str.endswith("+05:30").all()
