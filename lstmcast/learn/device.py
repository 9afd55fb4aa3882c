"""Where and with how many threads a run computes: the device a config asks for, and torch's thread count."""

from __future__ import annotations

import torch

from lstmcast.config import TrainConfig
from lstmcast.cores import FairShare
from lstmcast.errors import ConfigError
from lstmcast.learn.loop import precision_problem


def use_threads(train: TrainConfig, processes_here: int = 1) -> FairShare:
    """train.threads, or by default this process's fair share of the cores (`cores.py`); the share to recount."""
    share = FairShare(train.threads, processes_here)
    torch.set_num_threads(share.threads())
    return share


def device_for(train: TrainConfig) -> torch.device:
    if train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA GPU is visible — set train.device to auto or cpu")
    name = train.device if train.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    problem = precision_problem(train.precision, device)
    if problem:
        raise ConfigError(problem)
    return device
