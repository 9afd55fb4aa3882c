"""lstmcast's AdamW against torch.optim.AdamW: the same weights step for step (to rounding), and resumable."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from lstmcast.learn.optim import AdamW


def _model() -> list[torch.Tensor]:
    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(3, 16, 2, batch_first=True), torch.nn.Linear(16, 4)
    return [*lstm.parameters(), *head.parameters()], lambda x: head(lstm(x)[0][:, -1])


def _train(steps: int, optimizer_for, lr_at, *, start=None, skip: int = 0) -> tuple[list[torch.Tensor], object]:
    params, forward = _model()
    optimizer = optimizer_for(params)
    if start is not None:
        for p, saved in zip(params, start[0], strict=True):
            p.data.copy_(saved)
        optimizer.load_state_dict(start[1])
    data = torch.Generator().manual_seed(1)
    for k in range(skip + steps):
        x = torch.randn(8, 10, 3, generator=data)
        if k < skip:  # batches the resumed run already trained on
            continue
        loss = forward(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step(lr_at(k)) if isinstance(optimizer, AdamW) else optimizer.step()
        if not isinstance(optimizer, AdamW):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(k + 1)
    return params, optimizer


def cosine(k: int) -> float:
    return 0.01 * 0.5 * (1 + math.cos(math.pi * min(k, 30) / 30))


@pytest.mark.slow
def test_same_weights_as_torch_adamw_with_weight_decay_and_a_schedule():
    theirs, _ = _train(30, lambda p: torch.optim.AdamW(p, lr=cosine(0), weight_decay=0.05), cosine)
    ours, _ = _train(30, lambda p: AdamW(p, weight_decay=0.05), cosine)
    before, _ = _model()
    # To rounding, not bit for bit: torch may reorder its fused arithmetic between releases. Every weight
    # moved by far more than the tolerance, so a wrong update (say, decay applied twice) cannot pass.
    assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(theirs, ours, strict=True))
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(theirs, before, strict=True))


def test_resumes_from_its_own_state():
    straight, _ = _train(20, lambda p: AdamW(p, weight_decay=0.05), cosine)
    params, opt = _train(10, lambda p: AdamW(p, weight_decay=0.05), cosine)
    resumed, _ = _train(10, lambda p: AdamW(p, weight_decay=0.05), cosine, start=(params, opt.state_dict()), skip=10)
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed, strict=True))


@pytest.mark.slow
def test_training_does_not_import_torch_compiler_stack():
    """torch.optim would import torch._dynamo (~70 MB, ~1.3 s) in every nightly training process."""
    code = (
        "import sys, tempfile; from typer.testing import CliRunner; from lstmcast.cli import app; "
        "r = CliRunner().invoke(app, ['train', 'configs/demo.yaml', '--out', tempfile.mkdtemp(), "
        "'--set', 'train.epochs=1', '--set', 'data.end=\"2024-03-01\"', '--quiet']); "
        "assert r.exit_code == 0, r.output; print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
