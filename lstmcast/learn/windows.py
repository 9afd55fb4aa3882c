"""Training windows as views of one tensor, and batches gathered by index.

Memory stays O(rows): `window_view` is a strided view over the scaled series (all series of a
panel concatenated), and a batch is one advanced-indexing gather of the windows it needs.
Windows never cross a series boundary because only origins inside one series are ever used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lstmcast.learn.split import Runs


def window_view(series: torch.Tensor, length: int) -> torch.Tensor:
    """(rows, columns) → (rows - length + 1, columns, length); shares storage with `series`."""
    return series.unfold(0, length, 1)


@dataclass
class WindowSet:
    """Windows over the concatenated, scaled rows, and how to cut a batch into model inputs.

    Column layout: targets, then past features, then the `n_future` known-future columns
    (calendar), which the model also reads over the horizon.
    """

    rows: torch.Tensor  # (rows, columns) float32
    lookback: int
    horizon: int
    n_targets: int
    n_future: int = 0
    series_of_row: torch.Tensor | None = None  # (rows,) int64: which series each row belongs to

    @functools.cached_property
    def windows(self) -> torch.Tensor:
        """Every window, as a view (made on first use: a forecast from the end needs none)."""
        return window_view(self.rows, self.lookback + self.horizon)

    def starts(self, origins: np.ndarray) -> torch.Tensor:
        """The first rows of the windows whose first forecast rows are `origins` (on the rows' device)."""
        return torch.as_tensor(np.asarray(origins) - self.lookback, device=self.rows.device)

    def take(self, starts: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Model inputs (x, future, series) and targets (B, horizon, n_targets) of the windows at `starts`."""
        # One gather, then contiguous: oneDNN's LSTM backward is slower on strided tensors (benchmarks/RESULTS.md).
        batch = self.windows[starts].transpose(1, 2).contiguous()  # (B, lookback + horizon, columns)
        x, y = batch[:, : self.lookback], batch[:, self.lookback :, : self.n_targets]
        future = batch[:, self.lookback :, batch.shape[-1] - self.n_future :] if self.n_future else None
        series = self.series_of_row[starts] if self.series_of_row is not None else None
        return (x, future, series), y


class StartRuns:
    """The first rows of the windows whose origins are `runs`, indexed like a tensor of starts.

    `starts[positions]` computes only those starts (one searchsorted over the runs), so the
    training windows of a 10-million-row series need no 10-million-entry index (nor does an
    epoch's order: `shuffle.Shuffle` computes it the same way, batch by batch).
    """

    def __init__(self, runs: Runs, lookback: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.first = torch.as_tensor(runs.first - lookback, dtype=torch.int64, device=self.device)
        self.count = torch.as_tensor(runs.count, dtype=torch.int64, device=self.device)
        self.ends = torch.cumsum(self.count, 0)  # position after each run's last window
        self.step = runs.step

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        positions = positions.to(torch.int64)
        run = torch.searchsorted(self.ends, positions, right=True)
        return self.first[run] + (positions - (self.ends[run] - self.count[run])) * self.step

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive chunks of at most `size` starts, like `Tensor.split`."""
        for begin in range(0, len(self), size):
            yield self[torch.arange(begin, min(begin + size, len(self)), device=self.device)]


EVAL_BATCH = 1024  # windows per forward pass when nothing is learned (validation, backtests)


@torch.no_grad()
def predict_windows(model: torch.nn.Module, data: WindowSet, starts: torch.Tensor | StartRuns) -> torch.Tensor:
    """Forecasts (N, horizon, n_targets[, Q]) for the windows at `starts`, in large batches."""
    model.eval()
    parts = [model(*data.take(chunk)[0]) for chunk in starts.split(EVAL_BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)
