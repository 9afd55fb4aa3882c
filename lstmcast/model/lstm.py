"""The stacked LSTM forecaster: torch only, no files, no pandas.

    x (B, lookback, C) ──shift targets by the window's last value (or mean)──▶
    (B, lookback / patch, patch·C) ──nn.LSTM × num_layers──▶ h_T of the top layer (B, hidden)
    ──linear head──▶ (B, horizon, n_targets[, quantiles]) ──shift back──▶ forecast

Inputs hold the target columns first, then the features, all standard-scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lstmcast.config import Config, quantile_levels
from lstmcast.model.reference import ReferenceLSTM


@dataclass(frozen=True)
class Dims:
    """What the data decides about the model's shape (the config decides the rest)."""

    n_inputs: int  # columns of a window: targets, features, future features, calendar
    n_targets: int
    n_future: int = 0  # known-future columns the head reads over the horizon
    n_series: int = 0  # rows of the series embedding (0 without one)


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides a `StackedLSTM`'s parameters and forward pass."""

    n_inputs: int
    n_targets: int
    lookback: int
    horizon: int
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    patch: int = 1
    norm: str = "last"
    quantiles: tuple[float, ...] = ()
    cell: str = "fused"
    n_future: int = 0
    n_series: int = 0
    series_embedding: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantiles", tuple(self.quantiles))

    @property
    def median(self) -> int:
        """Position of the point forecast among the quantiles."""
        return self.quantiles.index(0.5) if self.quantiles else 0

    @property
    def embeds(self) -> bool:
        """Whether the model learned one vector per training series."""
        return self.series_embedding > 0 and self.n_series > 0


def spec_for(cfg: Config, dims: Dims, cell: str | None = None) -> ModelSpec:
    """The model a config describes for data of these dimensions (optionally with the other cell)."""
    w, m = cfg.window, cfg.model
    return ModelSpec(
        n_inputs=dims.n_inputs,
        n_targets=dims.n_targets,
        lookback=w.lookback,
        horizon=w.horizon,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        dropout=m.dropout,
        patch=m.patch,
        norm=w.norm,
        quantiles=tuple(quantile_levels(cfg.train)),
        cell=cell or m.cell,
        n_future=dims.n_future,
        n_series=dims.n_series if m.series_embedding else 0,
        series_embedding=m.series_embedding,
    )


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """The parameter shapes a model of `spec` has, computed without allocating it."""
    h, gates = spec.hidden_size, 4 * spec.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(spec.num_layers):
        shapes[f"lstm.weight_ih_l{k}"] = (gates, spec.n_inputs * spec.patch if k == 0 else h)
        shapes[f"lstm.weight_hh_l{k}"] = (gates, h)
        shapes[f"lstm.bias_ih_l{k}"] = shapes[f"lstm.bias_hh_l{k}"] = (gates,)
    head_in = h + spec.horizon * spec.n_future + (spec.series_embedding if spec.embeds else 0)
    head_out = spec.horizon * spec.n_targets * max(1, len(spec.quantiles))
    shapes.update({"head.weight": (head_out, head_in), "head.bias": (head_out,)})
    if spec.embeds:
        shapes["embedding.weight"] = (spec.n_series, spec.series_embedding)
    return shapes


def build(cfg: Config, dims: Dims, cell: str | None = None) -> StackedLSTM:
    """The one place a model is made from a config: training, warm starts and checkpoints."""
    return StackedLSTM(spec_for(cfg, dims, cell))


class StackedLSTM(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.lookback % spec.patch:
            raise ValueError(f"lookback {spec.lookback} is not a multiple of patch {spec.patch}")
        if spec.norm not in ("last", "mean", "scale", "none"):
            raise ValueError(f"unknown norm {spec.norm!r}")
        self.spec = spec
        self.n_targets, self.lookback, self.horizon = spec.n_targets, spec.lookback, spec.horizon
        self.patch, self.norm, self.n_future = spec.patch, spec.norm, spec.n_future
        self.quantiles, self.median = list(spec.quantiles), spec.median
        # Both cells have the same parameter names and layout, so weights move freely between them.
        lstm_class = ReferenceLSTM if spec.cell == "reference" else nn.LSTM
        self.lstm = lstm_class(
            input_size=spec.n_inputs * spec.patch,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0,
            batch_first=True,
        )
        # Known-future inputs (calendar) of every horizon step go straight to the head, beside h_T:
        # the direct multi-step head then knows which hour/day each output step is.
        self.embedding = nn.Embedding(spec.n_series, spec.series_embedding) if spec.embeds else None
        head_in = spec.hidden_size + spec.horizon * spec.n_future + (spec.series_embedding if spec.embeds else 0)
        self.head = nn.Linear(head_in, spec.horizon * spec.n_targets * max(1, len(spec.quantiles)))
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
    """Several StackedLSTMs of one spec trained with different seeds; the forecast is their elementwise median.

    An elementwise median of non-crossing quantile vectors does not cross either.
    """

    def __init__(self, members: list[StackedLSTM]) -> None:
        super().__init__()
        if any(m.spec != members[0].spec for m in members):
            raise ValueError("ensemble members must share one spec")
        self.members = nn.ModuleList(members)
        self.spec = members[0].spec

    @property
    def first(self) -> StackedLSTM:
        return self.members[0]  # type: ignore[return-value]

    def forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        # quantile(0.5) interpolates: with an even count it is the mean of the middle two, not the lower one.
        return torch.stack([m(*inputs) for m in self.members]).quantile(0.5, dim=0)

    def loss_scale(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.first.loss_scale(x)


Forecaster = StackedLSTM | Ensemble


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
