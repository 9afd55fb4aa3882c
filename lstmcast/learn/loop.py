"""The training loop: AdamW, the configured loss, gradient clipping, validation and early stopping.

It never prints: progress goes through the optional `Progress` callbacks, so the CLI decides
between a rich bar and plain log lines; `Observer`s (an experiment tracker) get each validation
point too, and only a `Watch` may stop a run.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from lstmcast.config import TrainConfig, quantile_levels
from lstmcast.cores import FairShare
from lstmcast.errors import ConfigError, TrainingDiverged
from lstmcast.learn import distributed
from lstmcast.learn.distributed import World
from lstmcast.learn.optim import AdamW
from lstmcast.learn.shuffle import Shuffle
from lstmcast.learn.windows import EVAL_BATCH, StartRuns, WindowSet


def pinball_loss(forecast: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of forecasts (…, Q) against targets (…): under-forecasts cost q, over-forecasts 1 − q."""
    error = target.unsqueeze(-1) - forecast
    return torch.maximum(levels * error, (levels - 1) * error).mean()


LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_function(name: str, quantiles: list[float]) -> LossFn:
    if name == "quantile":
        levels = torch.tensor(quantiles)
        return lambda forecast, target: pinball_loss(forecast, target, levels.to(forecast.device))
    return LOSSES[name]


def precision_problem(precision: str, device: torch.device) -> str | None:
    """Why `train.precision` cannot run on `device`, or None when it can.

    bf16 autocast runs the LSTM in bfloat16, which oneDNN implements only on CPUs with native
    bf16 instructions (AVX-512 BF16 or AMX); elsewhere it fails at the first step. Running the
    LSTM in fp32 and only the head in bf16 saved nothing on such a CPU (benchmarks/RESULTS.md),
    so the run is refused before any work instead. Decided by trying one tiny step, the same
    way on every machine.
    """
    if precision != "bf16":
        return None
    if device.type == "cuda":
        return (
            None
            if torch.cuda.is_bf16_supported()
            else "train.precision: bf16 needs a GPU with bfloat16 support — set train.precision: fp32"
        )
    lstm = nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 2))
    except RuntimeError:
        return (
            "train.precision: bf16 needs a GPU or a CPU with native bfloat16 instructions (AVX-512 BF16 or AMX), "
            "and this CPU has none — set train.precision: fp32 (the default)"
        )
    return None


# Windows per inference batch: as fast as 8192 on CPU, with a tenth of the activation memory (see
# benchmarks/perf.py figures 3 and 5, and "Measurements behind design choices" in benchmarks/RESULTS.md).
SINGLE_PROCESS = World()


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
    val_mae: float | None = None  # with a watch (tune): validation MAE on the scaled data, whatever the loss


class Progress(Protocol):
    """Who shows a run's progress (the Reporter); it only reports."""

    def on_batch(self, epoch: int, done: int, total: int) -> None: ...

    def on_validation(self, point: Validation, epochs: int) -> None: ...


class Observer(Protocol):
    """Who records each validation point as it happens (an experiment tracker): it neither stops the run nor
    changes it, and a failure inside it is its own to handle."""

    def on_validation(self, point: Validation, epochs: int) -> None: ...


class Watch(Protocol):
    """Who decides whether a run goes on (tune's budget, trial limit and pruner): it stops the run by raising.

    A watched run also measures the validation MAE on the scaled data at every validation, which
    compares runs of any loss.
    """

    def after_step(self, epoch: int, done: int, total: int) -> None: ...

    def after_validation(self, point: Validation, epochs: int) -> None: ...


@dataclass
class FitResult:
    history: list[Validation] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float | None = None
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


@dataclass
class BestWeights:
    """The best validation loss so far, its weights, and the validations since it (early stopping)."""

    patience: int  # 0 never stops early
    best_val: float | None = None
    best_epoch: int = 0
    stale: int = 0
    weights: dict[str, torch.Tensor] | None = None

    def record(self, val: float | None, epoch: int, model: nn.Module) -> bool:
        """Keep the weights if `val` is the best yet; True when patience has run out."""
        if val is not None and (self.best_val is None or val < self.best_val):
            self.best_val, self.best_epoch, self.stale = val, epoch, 0
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return val is not None and self.patience > 0 and self.stale >= self.patience

    def state_dict(self) -> dict[str, Any]:
        weights = None if self.weights is None else {k: v.cpu() for k, v in self.weights.items()}
        return {"best_val": self.best_val, "best_epoch": self.best_epoch, "stale": self.stale, "best_state": weights}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.best_val, self.best_epoch, self.stale = state["best_val"], state["best_epoch"], state["stale"]
        best = state["best_state"]
        self.weights = None if best is None else {k: v.to(device) for k, v in best.items()}


class Stopped(Exception):
    """Training stopped between batches at the caller's request (a signal); state is consistent."""

    def __init__(self, signum: int, epoch: int, step: int) -> None:
        super().__init__(signum)
        self.signum, self.epoch, self.step = signum, epoch, step


class Trainer:
    """Trains `model` in place on the windows at `train_starts` and restores the best validated weights.

    All progress lives in attributes captured by `state_dict()`: model and optimiser, the shuffling
    generator, torch's global RNG (dropout), the current epoch's order and position, and the
    early-stopping record. Loading that state and calling `run()` again continues exactly where
    it stopped, so an interrupted-then-resumed run ends with the same weights as an
    uninterrupted one (on CPU, same threads).

    Under torchrun (`world.distributed`) every rank runs this same loop on the same windows:
    the model is wrapped in DDP, each rank takes its disjoint shard of every epoch's order, the
    per-step loss (and any stop request) and the validation loss are all-reduced, and rank 0's
    early-stopping decision is broadcast, so all ranks take the same steps and stop together.
    """

    def __init__(
        self,
        model: nn.Module,
        data: WindowSet,
        train_starts: torch.Tensor | StartRuns,
        val_starts: torch.Tensor,
        *,
        cfg: TrainConfig,
        progress: Progress | None = None,
        world: World = SINGLE_PROCESS,
        share: FairShare | None = None,
        watch: Watch | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.model, self.data, self.cfg, self.progress, self.world = model, data, cfg, progress, world
        self.watch = watch
        self.observers = tuple(observers)
        self.share = share  # recounted every few seconds: other jobs starting or ending change the threads
        self.device = train_starts.device
        self.forward = distributed.wrap(model, world, self.device)
        self.train_starts, self.val_starts = train_starts, val_starts
        self.loss_fn = loss_function(cfg.loss, quantile_levels(cfg))
        self.optimizer = AdamW(model.parameters(), weight_decay=cfg.weight_decay)
        self.shuffle = torch.Generator().manual_seed(cfg.seed)  # same seed on every rank: same epoch order
        self.batch_size = distributed.rank_batch(cfg.batch_size, cfg.batch_size_per_rank, world)
        self.per_rank = distributed.per_rank(len(train_starts), world)  # windows each rank sees per epoch
        self.steps_per_epoch = math.ceil(self.per_rank / self.batch_size)
        self.result = FitResult()
        self.best = BestWeights(cfg.patience)
        self.epoch, self.batch, self.step = 1, 0, 0
        self.order: Shuffle | None = None  # this epoch's permutation of train_starts' positions
        self.running, self.seen = 0.0, 0  # training loss since the last validation
        self.elapsed = 0.0  # seconds spent in earlier (interrupted) sessions
        self.stop_signal: int | None = None

    def request_stop(self, signum: int) -> None:
        """Ask the loop to stop after the current batch (safe to call from a signal handler)."""
        self.stop_signal = signum

    def run(self, on_epoch_end: Callable[[Trainer], None] | None = None) -> FitResult:
        """Train until the epochs run out or early stopping; `on_epoch_end` may save `state_dict()`."""
        started = time.perf_counter() - self.elapsed
        cfg, done = self.cfg, False
        while self.epoch <= cfg.epochs and not done:
            if self.order is None:
                self.order, self.batch = Shuffle.draw(len(self.train_starts), self.shuffle), 0
            self.model.train()
            while self.batch < self.steps_per_epoch and not done:
                stop = self._train_batch()
                self.batch += 1
                self.elapsed = time.perf_counter() - started
                if cfg.val_every and self.step % cfg.val_every == 0:
                    done = self._validate()
                if stop or (self.stop_signal is not None and not self.world.distributed):
                    # under torchrun, `stop` says a signal reached some rank: all stop after this same step
                    raise Stopped(self.stop_signal or signal.SIGTERM, self.epoch, self.step)
            if done:  # early stopping at a mid-epoch validation
                self.result.epochs_run = self.epoch
            elif self.batch >= self.steps_per_epoch:
                self.result.epochs_run, self.order = self.epoch, None
                if not cfg.val_every:
                    done = self._validate()
                self.epoch += 1
                self.elapsed = time.perf_counter() - started
                if on_epoch_end is not None and not done:
                    on_epoch_end(self)
        self.result.stopped_early = done
        if self.seen:  # steps after the last validation point still count
            self._validate()
        r = self.result
        r.best_val, r.best_epoch = self.best.best_val, self.best.best_epoch
        if self.best.weights is not None:
            self.model.load_state_dict(self.best.weights)
        else:
            r.best_epoch = r.epochs_run
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _train_batch(self) -> bool:
        """One optimiser step; True when a stop was requested (on any rank)."""
        if self.share is not None and self.share.due():
            threads = self.share.threads()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
        bs, n = self.batch_size, len(self.train_starts)
        assert self.order is not None
        slots = distributed.shard(n, self.batch * bs, min((self.batch + 1) * bs, self.per_rank), self.world)
        inputs, y = self.data.take(self.train_starts[self.order[slots.to(self.device)]])
        with self._autocast():
            loss = window_loss(self.model, self.loss_fn, inputs, y, forward=self.forward)
        self.optimizer.zero_grad()
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step(self.learning_rate())
        total, count = loss.item() * len(y), float(len(y))
        stop = float(self.stop_signal or 0)
        if self.world.distributed:  # one all-reduce keeps every rank's view of the step identical
            total, count, stop = distributed.all_sum([total, count, stop], self.world, self.device)
        value = total / count
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training loss became {value} in epoch {self.epoch} (step {self.step + 1}) — lower train.lr "
                "(or set train.grad_clip) and check the data for extreme values; the previous model.pt was kept"
            )
        self.running, self.seen, self.step = self.running + total, self.seen + int(count), self.step + 1
        if self.progress:
            self.progress.on_batch(self.epoch, self.batch + 1, self.steps_per_epoch)
        if self.watch:
            self.watch.after_step(self.epoch, self.batch + 1, self.steps_per_epoch)
        return stop > 0

    def learning_rate(self) -> float:
        """train.lr for the next step: constant, or on a cosine from train.lr to 0 over all epochs' steps."""
        if self.cfg.lr_schedule != "cosine":
            return self.cfg.lr
        total = max(1, self.cfg.epochs * self.steps_per_epoch)
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * min(self.step, total) / total))

    def _autocast(self) -> torch.autocast:
        # bf16 is checked before any work (`precision_problem`): here it is known to run.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _validate(self) -> bool:
        """Record a validation point; True when early stopping says stop."""
        epoch = min(self.epoch, self.cfg.epochs)
        val = None
        if len(self.val_starts):
            mine = self.val_starts[self.world.rank :: self.world.size]
            with self._autocast():
                total, count = loss_sum_on(self.model, self.data, mine, self.loss_fn)
            total, count = distributed.all_sum([total, count], self.world, self.device)
            val = total / count
        point = Validation(epoch, self.step, self.running / max(self.seen, 1), val, self.elapsed)
        if self.watch is not None and len(self.val_starts):
            with self._autocast():
                total, count = loss_sum_on(self.model, self.data, mine, F.l1_loss)
            total, count = distributed.all_sum([total, count], self.world, self.device)
            point.val_mae = total / count
        self.running, self.seen = 0.0, 0
        stop = self.best.record(val, epoch, self.model)
        point.best_epoch, point.best_val = self.best.best_epoch, self.best.best_val
        self.result.history.append(point)
        if self.progress:
            self.progress.on_validation(point, self.cfg.epochs)
        for observer in self.observers:
            observer.on_validation(point, self.cfg.epochs)
        if self.watch:
            self.watch.after_validation(point, self.cfg.epochs)
        self.model.train()
        return distributed.decide(stop, self.world, self.device)

    # ------------------------------------------------------------------ resumable state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly here: plain types and tensors only."""
        return {
            **self.best.state_dict(),
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "shuffle_rng": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "world_size": self.world.size,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "order": None if self.order is None else self.order.keys,  # the keys of this epoch's permutation
            "running": self.running,
            "seen": self.seen,
            "elapsed": self.elapsed,
            "epochs_run": self.result.epochs_run,
            "history": [dataclasses.asdict(p) for p in self.result.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_world = state["world_size"]
        if saved_world != self.world.size:
            raise ConfigError(
                f"the interrupted run trained with {saved_world} processes and this one has {self.world.size} — "
                f"resume with the same number (--nproc {saved_world}), or train from scratch without --resume"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.shuffle.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.order = None if state["order"] is None else Shuffle(len(self.train_starts), state["order"])
        self.running, self.seen, self.elapsed = state["running"], state["seen"], state["elapsed"]
        self.best.load_state_dict(state, self.device)
        self.result.epochs_run = state["epochs_run"]
        self.result.history = [Validation(**p) for p in state["history"]]


def window_loss(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: tuple[torch.Tensor, ...],
    y: torch.Tensor,
    forward: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """The loss of the model's forecasts, on each window's own scale when the model has one.

    `forward` is the module to call when it differs from `model` (its DDP wrapper).
    """
    forecast = (forward or model)(*inputs).float()  # the loss in fp32, also under bf16 autocast
    scale = model.loss_scale(inputs[0])
    if scale is None:
        return loss_fn(forecast, y)
    return loss_fn(forecast / (scale[..., None] if forecast.dim() > y.dim() else scale), y / scale)


@torch.no_grad()
def loss_sum_on(
    model: nn.Module, data: WindowSet, starts: torch.Tensor | StartRuns, loss_fn: LossFn
) -> tuple[float, float]:
    """Summed per-window loss and the window count (to combine across ranks)."""
    model.eval()
    total = 0.0
    for chunk in starts.split(EVAL_BATCH):
        inputs, y = data.take(chunk)
        total += window_loss(model, loss_fn, inputs, y).item() * len(chunk)
    return total, float(len(starts))


def loss_on(model: nn.Module, data: WindowSet, starts: torch.Tensor | StartRuns, loss_fn: LossFn = F.mse_loss) -> float:
    """Mean loss over the windows at `starts`."""
    total, count = loss_sum_on(model, data, starts, loss_fn)
    return total / count
