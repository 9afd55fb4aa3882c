"""The training loop: AdamW, the configured loss, gradient clipping, validation and early stopping.

It never prints: progress goes through the optional `Progress` callbacks, so the CLI decides
between a rich bar and plain log lines.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from lstmcast.config import TrainConfig
from lstmcast.errors import TrainingDiverged
from lstmcast.windows import gather

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}
EVAL_BATCH = 8192


@dataclass
class Validation:
    """One validation point: the training loss since the previous one and the validation loss."""

    epoch: int
    step: int
    train_loss: float
    val_loss: float | None
    seconds: float
    best_epoch: int = 0
    best_val: float | None = None


class Progress(Protocol):
    def on_batch(self, epoch: int, done: int, total: int) -> None: ...

    def on_validation(self, point: Validation, epochs: int) -> None: ...


@dataclass
class FitResult:
    history: list[Validation] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float | None = None
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def fit(
    model: nn.Module,
    windows: torch.Tensor,
    train_starts: torch.Tensor,
    val_starts: torch.Tensor,
    *,
    lookback: int,
    n_targets: int,
    cfg: TrainConfig,
    progress: Progress | None = None,
) -> FitResult:
    """Train `model` in place on the windows at `train_starts`; restore the best validated weights.

    `windows` is the (N, columns, lookback + horizon) view from `window_view`; the starts index it.
    """
    loss_fn = LOSSES[cfg.loss]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    n, bs = len(train_starts), cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0  # validations since the best one
    started = time.perf_counter()
    step, running, seen = 0, 0.0, 0

    def validate(epoch: int) -> bool:
        """Record a validation point; True when early stopping says stop."""
        nonlocal best_state, stale, running, seen
        val = loss_on(model, windows, val_starts, lookback, n_targets, loss_fn) if len(val_starts) else None
        point = Validation(epoch, step, running / max(seen, 1), val, time.perf_counter() - started)
        running, seen = 0.0, 0
        if val is not None and (result.best_val is None or val < result.best_val):
            result.best_val, result.best_epoch, stale = val, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        point.best_epoch, point.best_val = result.best_epoch, result.best_val
        result.history.append(point)
        if progress:
            progress.on_validation(point, cfg.epochs)
        model.train()
        return val is not None and cfg.patience > 0 and stale >= cfg.patience

    stop = False
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = train_starts[torch.randperm(n, generator=shuffle).to(train_starts.device)]
        for b in range(steps_per_epoch):
            x, y = gather(windows, order[b * bs : (b + 1) * bs], lookback, n_targets)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"training loss became {value} in epoch {epoch} (step {step + 1}) — lower train.lr "
                    "(or set train.grad_clip) and check the data for extreme values"
                )
            running, seen, step = running + value * len(x), seen + len(x), step + 1
            if progress:
                progress.on_batch(epoch, b + 1, steps_per_epoch)
            if cfg.val_every and step % cfg.val_every == 0 and validate(epoch):
                stop = True
                break
        result.epochs_run = epoch
        if stop or (not cfg.val_every and validate(epoch)):
            result.stopped_early = True
            break
    if seen:  # steps after the last validation point still count towards the final train loss
        validate(result.epochs_run)
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = result.epochs_run
    result.seconds = time.perf_counter() - started
    return result


@torch.no_grad()
def predict_windows(
    model: nn.Module, windows: torch.Tensor, starts: torch.Tensor, lookback: int, n_targets: int
) -> torch.Tensor:
    """Forecasts (N, horizon, n_targets) for the windows at `starts`, in large batches."""
    model.eval()
    parts = [model(gather(windows, chunk, lookback, n_targets)[0]) for chunk in starts.split(EVAL_BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)


@torch.no_grad()
def loss_on(
    model: nn.Module, windows: torch.Tensor, starts: torch.Tensor, lookback: int, n_targets: int, loss_fn=F.mse_loss
) -> float:
    """Mean loss over the windows at `starts`."""
    model.eval()
    total = 0.0
    for chunk in starts.split(EVAL_BATCH):
        x, y = gather(windows, chunk, lookback, n_targets)
        total += loss_fn(model(x), y).item() * len(chunk)
    return total / len(starts)
