"""model.cell: both cells train and predict through the CLI and share checkpoints; lstmcast inspect."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lstmcast.model import checkpoint

from .conftest import assert_user_error, cli


def test_reference_cell_trains_and_its_checkpoint_runs_in_the_fused_cell(project):
    trained = cli("train", project / "config.yaml", "--quiet", "--set", "model.cell=reference")
    assert trained.code == 0, trained.stderr
    path = project / "run" / "model.pt"
    ckpt = checkpoint.load(path)
    assert ckpt.spec().cell == "reference"
    assert cli("predict", path, "--data", project / "series.csv").code == 0
    reference, fused = ckpt.forecaster(), ckpt.forecaster(cell="fused")
    assert isinstance(fused.lstm, torch.nn.LSTM) and not isinstance(reference.lstm, torch.nn.LSTM)
    x, future = torch.randn(5, 48, ckpt.dims.n_inputs), torch.randn(5, 12, ckpt.dims.n_future)
    with torch.no_grad():
        assert torch.allclose(reference(x, future), fused(x, future), atol=1e-5)


@pytest.mark.usefixtures("trained_project")  # run/ trained once per session, copied
def test_inspect_shows_the_card_and_the_gates(project):
    path = project / "run" / "model.pt"
    plain = cli("inspect", path)
    assert plain.code == 0, plain.stderr
    for label in ("lstmcast version", "format version", "parameters", "lookback 48, horizon 12", "training period"):
        assert label in plain.stdout

    result = cli("inspect", path, "--data", project / "series.csv", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["card"]["targets"] == "load" and report["card"]["series"] == 1
    assert len(report["gates"]) == 2  # one row per layer
    steps = 48 // 12
    for layer in report["gates"]:
        for gate in ("mean_forget", "mean_input", "mean_output", "saturated_fraction"):
            assert 0.0 <= layer[gate] <= 1.0
        assert 1 <= layer["memory_length"] <= steps and layer["memory_steps"] == layer["memory_length"] * 12


def test_inspect_errors_are_user_errors(project):
    assert_user_error(cli("inspect", project / "nothing.pt"), "not found")


@pytest.mark.slow
def test_ensemble_trains_members_with_consecutive_seeds_and_forecasts_their_median(project):
    result = cli("train", project / "config.yaml", "--quiet", "--set", "train.ensemble=3")
    assert result.code == 0, result.stderr
    path = project / "run" / "model.pt"
    ckpt = checkpoint.load(path)
    assert len(ckpt.members) == 3 and ckpt.metrics["ensemble"] == 3
    single = cli("train", project / "config.yaml", "--quiet", "--out", project / "seed1", "--set", "train.seed=1")
    assert single.code == 0
    # member 2 is exactly the model a plain run with seed 1 trains
    second = ckpt.members[1]
    alone = checkpoint.load(project / "seed1" / "model.pt").members[0]
    assert all(torch.equal(second[k], alone[k]) for k in alone)

    model = ckpt.forecaster()
    members = [dataclasses.replace(ckpt, members=[weights]).forecaster() for weights in ckpt.members]
    x, future = torch.randn(4, 48, ckpt.dims.n_inputs), torch.randn(4, 12, ckpt.dims.n_future)
    with torch.no_grad():
        expected = torch.stack([m(x, future) for m in members]).median(dim=0).values  # odd count: the middle one
        assert torch.allclose(model(x, future), expected, atol=1e-6)
    assert cli("predict", path, "--data", project / "series.csv").code == 0
