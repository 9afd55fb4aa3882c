"""Training windows as views of one tensor, and batches gathered by index.

Memory stays O(rows): `window_view` is a strided view over the scaled series, and a
batch is one advanced-indexing gather of the windows it needs.
"""

from __future__ import annotations

import torch


def window_view(series: torch.Tensor, length: int) -> torch.Tensor:
    """(rows, columns) → (rows - length + 1, columns, length); shares storage with `series`."""
    return series.unfold(0, length, 1)


def gather(
    windows: torch.Tensor, starts: torch.Tensor, lookback: int, n_targets: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs (B, lookback, columns) and targets (B, horizon, n_targets) of the windows at `starts`."""
    batch = windows[starts].transpose(1, 2)
    return batch[:, :lookback], batch[:, lookback:, :n_targets]
