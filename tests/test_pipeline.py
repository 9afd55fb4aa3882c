"""Split, scaling, windows and model: the structural facts the pipeline relies on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmcast.errors import DataError
from lstmcast.learn import scaling
from lstmcast.learn.split import Runs, check_length, origins, split_rows
from lstmcast.learn.windows import StartRuns, WindowSet, window_view
from lstmcast.model import checkpoint
from lstmcast.model.lstm import ModelSpec, StackedLSTM

from .conftest import cli, sine_csv


def test_windows_are_views_of_the_series():
    series = torch.arange(200 * 3, dtype=torch.float32).reshape(200, 3)
    windows = window_view(series, 60)
    assert windows.shape == (141, 3, 60)
    assert windows.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    data = WindowSet(series, lookback=48, horizon=12, n_targets=1, n_future=1)
    assert data.windows.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    (x, future, ids), y = data.take(torch.tensor([0, 17]))
    assert torch.equal(x[1], series[17:65]) and torch.equal(y[1, :, 0], series[65:77, 0])
    assert torch.equal(future[1, :, 0], series[65:77, 2]) and ids is None  # known-future columns come last


def test_the_training_loop_runs_no_python_per_window():
    """A step over 4096 windows makes about the Python calls of a step over 32: batches are tensors."""
    import sys

    from lstmcast.config import TrainConfig
    from lstmcast.learn.loop import Trainer

    def python_calls_for_one_step(batch: int) -> int:
        torch.manual_seed(0)
        data = WindowSet(torch.randn(batch + 40, 2), lookback=24, horizon=6, n_targets=1)
        model = StackedLSTM(ModelSpec(n_inputs=2, n_targets=1, lookback=24, horizon=6, hidden_size=8, patch=4))
        cfg = TrainConfig(epochs=1, batch_size=batch, patience=0)
        starts = StartRuns(Runs(np.array([24]), np.array([batch])), lookback=24)  # as the pipeline builds them
        trainer = Trainer(model, data, starts, torch.arange(batch)[:0], cfg=cfg)
        calls = 0

        def count(_frame, event, _arg):
            nonlocal calls
            calls += event == "call"

        sys.setprofile(count)
        try:
            trainer.run()
        finally:
            sys.setprofile(None)
        assert trainer.step == 1
        return calls

    python_calls_for_one_step(32)  # warm-up: first-use imports and caches inside torch
    small, large = python_calls_for_one_step(32), python_calls_for_one_step(4096)
    # Python per window would add ≥ 4064 calls; the shuffle's cycle-walking adds a few passes per doubling
    assert large <= small + 150, (small, large)


def test_split_origins_keep_each_forecast_inside_its_part():
    split = split_rows(1000, 0.15, 0.15)
    assert (split.train, split.val, split.test) == (700, 150, 150)
    parts = origins(split, lookback=48, horizon=12, stride=5)
    bounds = {"train": (0, 700), "val": (700, 850), "test": (850, 1000)}
    for name, (lo, hi) in bounds.items():
        t = parts[name].array()
        assert len(t) and t.min() >= max(lo, 48) and t.max() + 12 <= hi, name
    assert np.all(np.diff(parts["train"].array()) == 5) and np.all(np.diff(parts["val"].array()) == 1)


def test_training_starts_are_computed_per_batch_and_match_listing_them_all():
    """Three series' runs (stride 3): any positions give the starts a full list would, chunks cover them in order."""
    split = split_rows(300, 0.2, 0.2)
    runs = Runs.join([origins(split, 24, 6, stride=3)["train"]] * 3, [0, 300, 600])
    every = runs.array() - 24
    assert len(runs) == len(every) == 3 * len(range(24, 180 - 6 + 1, 3))
    starts = StartRuns(runs, lookback=24)
    positions = torch.randperm(len(every), generator=torch.Generator().manual_seed(0))
    assert torch.equal(starts[positions], torch.from_numpy(every)[positions])
    assert torch.equal(torch.cat(list(starts.split(7))), torch.from_numpy(every))
    assert len(StartRuns(Runs.join([], []), lookback=24)) == 0


def test_the_epoch_order_is_a_permutation_drawn_from_the_seed_and_never_stored():
    from lstmcast.learn.shuffle import Shuffle

    for n in [*range(1, 70), 1000, 65537, 1_000_003]:
        order = Shuffle.draw(n, torch.Generator().manual_seed(n))
        every = order[torch.arange(n)]
        assert torch.equal(torch.sort(every).values, torch.arange(n)), n  # each window exactly once
        again = Shuffle.draw(n, torch.Generator().manual_seed(n))[torch.arange(n)]
        assert torch.equal(every, again), n  # the seed decides it
    # shuffled, not shifted: early positions draw windows from everywhere
    assert abs(np.corrcoef(np.arange(1_000_003), every.numpy())[0, 1]) < 0.01
    assert not torch.equal(every, Shuffle.draw(n, torch.Generator().manual_seed(1))[torch.arange(n)])


def test_too_short_series_says_how_many_rows_are_needed():
    with pytest.raises(DataError, match=r"has 80 rows.*needs at least \d+") as exc:
        check_length(80, 48, 12, 0.15, 0.15, "x.csv")
    needed = int(str(exc.value).split("at least ")[1].split()[0])
    check_length(needed, 48, 12, 0.15, 0.15, "x.csv")  # exactly enough is enough
    with pytest.raises(DataError):
        check_length(needed - 1, 48, 12, 0.15, 0.15, "x.csv")


def test_scaler_inverts_and_survives_constant_columns():
    values = np.column_stack([np.linspace(0, 10, 50), np.full(50, 3.0)])
    state = scaling.fit(values)
    scaled = scaling.transform(values, state)
    assert abs(scaled[:, 0].mean()) < 1e-6 and np.allclose(scaled[:, 1], 0)
    mean, std = state.mean[None], state.std[None]
    restored = scaling.inverse_rows(scaled[None], mean, std, np.array([0]), slice(None))[0]
    assert np.allclose(restored, values, atol=1e-5)


@pytest.mark.parametrize(("patch", "norm"), [(1, "last"), (6, "mean"), (12, "none")])
def test_model_maps_lookback_to_horizon(patch, norm):
    model = StackedLSTM(
        ModelSpec(n_inputs=3, n_targets=2, lookback=24, horizon=5, hidden_size=8, num_layers=2, patch=patch, norm=norm)
    )
    assert model(torch.randn(4, 24, 3)).shape == (4, 5, 2)


def test_last_value_norm_makes_forecasts_shift_with_the_level():
    torch.manual_seed(0)
    model = StackedLSTM(
        ModelSpec(n_inputs=2, n_targets=1, lookback=24, horizon=6, hidden_size=8, patch=4, norm="last")
    ).eval()
    x = torch.randn(3, 24, 2)
    lifted = x.clone()
    lifted[..., 0] += 5.0  # only the target moves
    assert torch.allclose(model(lifted), model(x) + 5.0, atol=1e-5)


def test_scaler_is_fitted_on_training_rows_only(project):
    """Changing values in the test part of the data must not change the stored scaler."""
    import pandas as pd

    first = cli("train", project / "config.yaml", "--quiet", "--set", "train.epochs=1")
    assert first.code == 0, first.stderr
    before = checkpoint.load(project / "run" / "model.pt").scaler
    frame = pd.read_csv(project / "series.csv")
    frame.loc[len(frame) - 20 :, "load"] += 1000.0  # the last rows are test rows
    frame.to_csv(project / "series.csv", index=False)
    second = cli("train", project / "config.yaml", "--quiet", "--set", "train.epochs=1")
    assert second.code == 0, second.stderr
    after = checkpoint.load(project / "run" / "model.pt")
    assert after.scaler == before
    assert after.metrics["test_mae"] > 100  # the change did reach the test part


def test_training_windows_come_from_training_rows(tmp_path):
    """A spike in the validation part must not leak into the scaler or training windows."""
    from lstmcast.config import load_config
    from lstmcast.flows.prepare import prepare
    from lstmcast.report import Reporter

    sine_csv(tmp_path / "s.csv", rows=400)
    (tmp_path / "c.yaml").write_text("data: {path: s.csv, target: load}\nwindow: {lookback: 24, horizon: 6}\n")
    prep = prepare(load_config(tmp_path / "c.yaml"), Reporter(quiet=True))
    parts = origins(prep.splits[0], 24, 6)
    assert parts["train"].array().max() + 6 <= prep.splits[0].train


def test_scale_norm_makes_forecasts_and_losses_scale_free():
    """With norm: scale a series at 10,000 is forecast like the same shape at 10, and weighs the same in the loss."""
    from torch.nn import functional as F

    from lstmcast.learn.loop import window_loss

    torch.manual_seed(0)
    model = StackedLSTM(
        ModelSpec(n_inputs=1, n_targets=1, lookback=24, horizon=6, hidden_size=8, patch=4, norm="scale")
    ).eval()
    x, y = torch.rand(4, 24, 1) + 0.5, torch.rand(4, 6, 1) + 0.5
    with torch.no_grad():
        assert torch.allclose(model(1000 * x), 1000 * model(x), rtol=1e-4)
        small = window_loss(model, F.l1_loss, (x, None, None), y)
        large = window_loss(model, F.l1_loss, (1000 * x, None, None), 1000 * y)
    assert large.item() == pytest.approx(small.item(), rel=1e-4)


def test_bf16_precision_trains_where_the_machine_can_and_is_refused_before_any_work_where_it_cannot(tmp_path):
    """Detected the way `train` detects it (one tiny bf16 LSTM step), so the test holds on every CPU."""
    from lstmcast.learn.loop import precision_problem

    from .conftest import assert_user_error, write_config

    sine_csv(tmp_path / "series.csv")
    write_config(tmp_path)
    problem = precision_problem("bf16", torch.device("cpu"))
    bf16 = ("--set", "train.precision=bf16")
    if problem is not None:  # e.g. an AVX2-only CPU: one line, exit 2, nothing written
        assert "AVX-512 BF16" in problem and "train.precision: fp32" in problem
        assert_user_error(cli("train", tmp_path / "config.yaml", "--out", tmp_path / "bf16", *bf16), "train.precision")
        assert not (tmp_path / "bf16").exists()
        assert_user_error(cli("validate", tmp_path / "config.yaml", *bf16), "train.precision")
        return
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        result = cli(
            "train", tmp_path / "config.yaml", "--out", out, "--set", f"train.precision={precision}", "--quiet"
        )
        assert result.code == 0, result.stderr
        runs[precision] = checkpoint.load(out / "model.pt").members[0]
        assert cli("predict", out / "model.pt", "--data", tmp_path / "series.csv", "--quiet").code == 0
    assert all(w.dtype == torch.float32 for w in runs["bf16"].values())
    assert any(
        not torch.equal(runs["bf16"][k], runs["fp32"][k]) for k in runs["fp32"]
    )  # autocast changed the arithmetic
