"""Run by the distributed tests under torchrun (`python -m torch.distributed.run … tests/ddp_worker.py MODE …`).

step OUT      — one optimisation step of lstmcast's Trainer on the shared toy problem; rank 0 saves the weights.
fail ARGS…    — the real `lstmcast train ARGS…`, with an exception injected on rank 1 at its second step.
"""

from __future__ import annotations

import os
import sys

import torch

from lstmcast.config import TrainConfig
from lstmcast.learn.windows import WindowSet
from lstmcast.model.lstm import ModelSpec, StackedLSTM

BATCH = 16


def toy_problem(batch_size: int) -> tuple[StackedLSTM, WindowSet, torch.Tensor, TrainConfig]:
    """The same model, windows and 2 × BATCH training origins in every process."""
    torch.manual_seed(0)
    t = torch.arange(400, dtype=torch.float32)
    rows = torch.stack([torch.sin(t / 4) + 0.1 * torch.randn(400), torch.cos(t / 7)], dim=1)
    data = WindowSet(rows=rows, lookback=24, horizon=6, n_targets=1)
    starts = torch.randperm(len(data.windows))[: 2 * BATCH]
    model = StackedLSTM(
        ModelSpec(n_inputs=2, n_targets=1, lookback=24, horizon=6, hidden_size=16, num_layers=2, patch=4)
    )
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=0.01, patience=0, threads=1)
    return model, data, starts, cfg


def one_step(out: str) -> None:
    from lstmcast.cli import leave_now
    from lstmcast.learn import distributed
    from lstmcast.learn.loop import Trainer

    world = distributed.from_env()
    device = distributed.start(world, torch.device("cpu"))
    torch.set_num_threads(1)
    model, data, starts, cfg = toy_problem(BATCH)
    trainer = Trainer(model, data, starts.to(device), starts[:0], cfg=cfg, world=world)
    trainer.run()
    assert trainer.step == 1, trainer.step  # each rank took one step of BATCH windows
    if world.main:
        torch.save(model.state_dict(), out)
    del trainer  # its DDP wrapper must go before the process group, as in the pipeline
    distributed.finish()
    leave_now(0)


def fail_on_rank_1(argv: list[str]) -> None:
    from lstmcast import cli
    from lstmcast.learn import loop as train

    real = train.Trainer._train_batch

    def flaky(self: train.Trainer) -> bool:
        if self.world.rank == 1 and self.step == 1:
            raise RuntimeError("injected failure on rank 1")
        return real(self)

    train.Trainer._train_batch = flaky  # type: ignore[method-assign]
    sys.argv = ["lstmcast", "train", *argv]
    cli.main()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mode, *rest = sys.argv[1:]
    one_step(rest[0]) if mode == "step" else fail_on_rank_1(rest)
