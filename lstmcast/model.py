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
        n_future: int = 0,
        n_series: int = 0,
        series_embedding: int = 0,
    ) -> None:
        super().__init__()
        if lookback % patch:
            raise ValueError(f"lookback {lookback} is not a multiple of patch {patch}")
        if norm not in ("last", "mean", "scale", "none"):
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
        self.n_future = n_future
        # Known-future inputs (calendar) of every horizon step go straight to the head, beside h_T:
        # the direct multi-step head then knows which hour/day each output step is.
        self.embedding = nn.Embedding(n_series, series_embedding) if series_embedding and n_series else None
        head_in = hidden_size + horizon * n_future + (series_embedding if self.embedding is not None else 0)
        self.head = nn.Linear(head_in, horizon * n_targets * max(1, len(self.quantiles)))
        self._init_forget_bias()

    def _init_forget_bias(self) -> None:
        # A forget-gate bias of 1 starts the cell state "open", so early gradients reach far back
        # (Gers et al. 2000; Jozefowicz et al. 2015). nn.LSTM packs gates as i, f, g, o.
        h = self.lstm.hidden_size
        with torch.no_grad():
            for k in range(self.lstm.num_layers):
                getattr(self.lstm, f"bias_ih_l{k}")[h : 2 * h].fill_(1.0)
                getattr(self.lstm, f"bias_hh_l{k}")[h : 2 * h].fill_(0.0)

    def lstm_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The LSTM's input sequence (B, lookback / patch, patch·C) and the window's (shift, scale), each (B, 1, nt)."""
        batch, lookback, channels = x.shape
        nt = self.n_targets
        shift, scale = self._normalizer(x[..., :nt])
        x = torch.cat([(x[..., :nt] - shift) / scale, x[..., nt:]], dim=-1)
        return x.reshape(batch, lookback // self.patch, self.patch * channels), (shift, scale)

    def forward(
        self, x: torch.Tensor, future: torch.Tensor | None = None, series: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, lookback, C); future (B, horizon, n_future) known-future inputs; series (B,) ids for the embedding."""
        batch, nt = x.shape[0], self.n_targets
        steps, (shift, scale) = self.lstm_inputs(x)
        features = [self.lstm(steps)[0][:, -1]]  # h_T of the top layer (B, hidden)
        if self.n_future:
            features.append(future.reshape(batch, -1))
        if self.embedding is not None:
            features.append(self.embedding(series))
        y = self.head(torch.cat(features, dim=-1) if len(features) > 1 else features[0])  # (B, horizon · nt · Q)
        if not self.quantiles:
            return y.view(batch, self.horizon, nt) * scale + shift
        y = self._monotone(y.view(batch, self.horizon, nt, len(self.quantiles)))
        return y * scale[..., None] + shift[..., None]

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

    def loss_scale(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, 1, nt) per-window scale to divide errors by, so every window weighs alike; None when unscaled.

        With `norm: scale` the data are in original units, where a series at 10,000 would otherwise
        outweigh one at 10 a thousandfold.
        """
        return self._normalizer(x[..., : self.n_targets])[1] if self.norm == "scale" else None

    def _normalizer(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window: last → subtract the last value; mean → subtract the mean; scale → divide by the mean |value|."""
        zero, one = torch.zeros_like(targets[:, :1]), torch.ones_like(targets[:, :1])
        if self.norm == "last":
            return targets[:, -1:], one
        if self.norm == "mean":
            return targets.mean(dim=1, keepdim=True), one
        if self.norm == "scale":
            return zero, targets.abs().mean(dim=1, keepdim=True).clamp_min(1e-6)
        return zero, one


class Ensemble(nn.Module):
    """Several StackedLSTMs trained with different seeds; the forecast is their elementwise median.

    An elementwise median of non-crossing quantile vectors does not cross either.
    """

    def __init__(self, members: list[StackedLSTM]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0]
        for name in (
            "n_targets",
            "lookback",
            "horizon",
            "patch",
            "norm",
            "quantiles",
            "median",
            "n_future",
            "embedding",
            "lstm",
        ):
            object.__setattr__(self, name, getattr(first, name))

    def forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        # quantile(0.5) interpolates: with an even count it is the mean of the middle two, not the lower one.
        return torch.stack([m(*inputs) for m in self.members]).quantile(0.5, dim=0)

    def point(self, forecast: torch.Tensor) -> torch.Tensor:
        return self.members[0].point(forecast)

    def loss_scale(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.members[0].loss_scale(x)

    def lstm_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return self.members[0].lstm_inputs(x)


def build(args: dict[str, Any]) -> StackedLSTM:
    """The model a checkpoint's `model_args` describe."""
    return StackedLSTM(**args)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
