"""The stacked LSTM forecaster: torch only, no files, no pandas.

    x (B, lookback, C) ──shift targets by the window's last value (or mean)──▶
    (B, lookback / patch, patch·C) ──nn.LSTM × num_layers──▶ h_T of the top layer (B, hidden)
    ──linear head──▶ (B, horizon, n_targets[, quantiles]) ──shift back──▶ forecast

Inputs hold the target columns first, then the features, all standard-scaled.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lstmcast.reference import ReferenceLSTM


class StackedLSTM(nn.Module):
    def __init__(
        self,
        n_inputs: int,
        n_targets: int,
        lookback: int,
        horizon: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        patch: int = 1,
        norm: str = "last",
        quantiles: list[float] | None = None,
        cell: str = "fused",
    ) -> None:
        super().__init__()
        if lookback % patch:
            raise ValueError(f"lookback {lookback} is not a multiple of patch {patch}")
        if norm not in ("last", "mean", "none"):
            raise ValueError(f"unknown norm {norm!r}")
        self.n_targets, self.lookback, self.horizon = n_targets, lookback, horizon
        self.patch, self.norm = patch, norm
        self.quantiles = list(quantiles or [])
        self.median = self.quantiles.index(0.5) if self.quantiles else 0
        # Both cells have the same parameter names and layout, so weights move freely between them.
        lstm_class = ReferenceLSTM if cell == "reference" else nn.LSTM
        self.lstm = lstm_class(
            input_size=n_inputs * patch,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, horizon * n_targets * max(1, len(self.quantiles)))
        self._init_forget_bias()

    def _init_forget_bias(self) -> None:
        # A forget-gate bias of 1 starts the cell state "open", so early gradients reach far back
        # (Gers et al. 2000; Jozefowicz et al. 2015). nn.LSTM packs gates as i, f, g, o.
        h = self.lstm.hidden_size
        with torch.no_grad():
            for k in range(self.lstm.num_layers):
                getattr(self.lstm, f"bias_ih_l{k}")[h : 2 * h].fill_(1.0)
                getattr(self.lstm, f"bias_hh_l{k}")[h : 2 * h].fill_(0.0)

    def lstm_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM's input sequence (B, lookback / patch, patch·C) and the per-window shift (B, 1, nt)."""
        batch, lookback, channels = x.shape
        nt = self.n_targets
        shift = self._shift(x[..., :nt])
        x = torch.cat([x[..., :nt] - shift, x[..., nt:]], dim=-1)
        return x.reshape(batch, lookback // self.patch, self.patch * channels), shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, nt = x.shape[0], self.n_targets
        steps, shift = self.lstm_inputs(x)
        out = self.lstm(steps)[0]  # (B, steps, hidden)
        y = self.head(out[:, -1])  # (B, horizon · nt · Q)
        if not self.quantiles:
            return y.view(batch, self.horizon, nt) + shift
        return self._monotone(y.view(batch, self.horizon, nt, len(self.quantiles))) + shift[..., None]

    def _monotone(self, raw: torch.Tensor) -> torch.Tensor:
        """Quantiles that cannot cross: the median plus cumulative positive gaps either side."""
        m = self.median
        mid = raw[..., m : m + 1]
        above = mid + torch.cumsum(F.softplus(raw[..., m + 1 :]), dim=-1)
        below = mid - torch.cumsum(F.softplus(raw[..., :m].flip(-1)), dim=-1).flip(-1)
        return torch.cat([below, mid, above], dim=-1)  # (B, horizon, nt, Q)

    def point(self, forecast: torch.Tensor) -> torch.Tensor:
        """The point forecast (B, horizon, nt): the median when forecasting quantiles."""
        return forecast[..., self.median] if self.quantiles else forecast

    def _shift(self, targets: torch.Tensor) -> torch.Tensor:
        if self.norm == "last":
            return targets[:, -1:]
        if self.norm == "mean":
            return targets.mean(dim=1, keepdim=True)
        return torch.zeros_like(targets[:, :1])


def build(args: dict[str, Any]) -> StackedLSTM:
    """The model a checkpoint's `model_args` describe."""
    return StackedLSTM(**args)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
