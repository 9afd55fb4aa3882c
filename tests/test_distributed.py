"""Data-parallel training under torchrun: 2 CPU processes with gloo on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from lstmcast import lock
from tests.conftest import ROOT, cli
from tests.ddp_worker import BATCH, toy_problem

WORKER = ROOT / "tests" / "ddp_worker.py"

pytestmark = pytest.mark.slow  # every test starts several processes (torchrun's launcher)


def torchrun(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node=2` as a user would type it (rendezvous on loopback)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_two_processes_write_one_checkpoint_that_predict_loads(project, forker):
    # The launcher is forked from an interpreter that has imported lstmcast (tests/forked.py); it starts the
    # two workers as `python -m lstmcast` processes through torch's elastic launcher, as always.
    result = forker.run("train", project / "config.yaml", "--nproc", "2", "--out", project / "run", timeout=180)
    assert result.code == 0, result.stderr
    assert "in each of 2 processes (DDP)" in result.stderr
    assert "rank 1" not in result.stderr
    assert result.stdout.count("checkpoint written to") == 1  # rank 0 alone reports and writes
    log = (project / "run" / "train.log").read_text()
    assert log.count("trained 2 epochs") == 1
    assert sorted(p.name for p in (project / "run").iterdir()) == [
        ".lstmcast.lock",
        "config.yaml",
        "history.csv",
        "metrics.json",
        "model.pt",
        "train.log",
    ]
    predicted = cli("predict", project / "run" / "model.pt", "--data", project / "series.csv", "--quiet")
    assert predicted.code == 0, predicted.stderr
    forecast = pd.read_csv(project / "run" / "forecast.csv")
    assert len(forecast) == 12 and forecast["load"].notna().all()


def test_one_step_on_two_ranks_equals_one_process_with_twice_the_batch(tmp_path):
    from lstmcast.learn.loop import Trainer

    done = torchrun(WORKER, "step", tmp_path / "ddp.pt")
    assert done.returncode == 0, done.stderr
    distributed = torch.load(tmp_path / "ddp.pt")

    torch.set_num_threads(1)
    model, data, starts, cfg = toy_problem(2 * BATCH)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, data, starts, starts[:0], cfg=cfg)
    trainer.run()
    assert trainer.step == 1
    for name, weight in model.state_dict().items():
        assert not torch.equal(weight, before[name]), name  # the step moved every weight
        torch.testing.assert_close(distributed[name], weight, rtol=0, atol=1e-5, msg=name)


def test_a_failing_rank_ends_the_whole_job_with_its_error(project):
    done = torchrun(
        WORKER, "fail", project / "config.yaml", "--out", project / "run", "--set", "train.epochs=50", timeout=120
    )
    assert done.returncode != 0
    assert "rank 1: error: internal error: RuntimeError: injected failure on rank 1" in done.stderr
    assert not (project / "run" / "model.pt").exists()


def test_nproc_keeps_the_exit_codes_of_a_single_process_run(project, forker):
    (project / "series.csv").write_text("timestamp,load,temp\n2024-01-01 00:00:00,1,2\n")
    bad = forker.run("train", project / "config.yaml", "--nproc", "2", timeout=180)  # launcher forked, as above
    assert bad.code == 2, bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "series.csv" in errors[0], bad.stderr

    with lock.hold(project / "run"):
        locked = forker.run("train", project / "config.yaml", "--nproc", "2", timeout=180)
    assert locked.code == 75, locked.stderr


def test_effective_batch_is_per_rank_unless_configured_otherwise():
    from lstmcast.learn.distributed import World, rank_batch

    two = World(rank=1, size=2)
    assert rank_batch(256, True, two) == 256  # effective batch 512
    assert rank_batch(256, False, two) == 128  # effective batch 256, as in one process
    assert rank_batch(255, False, two) == 128
    assert rank_batch(256, False, World()) == 256


def test_shards_are_disjoint_cover_the_epoch_and_have_equal_length():
    from lstmcast.learn.distributed import World, shard

    order = torch.randperm(11)
    shards = [order[shard(11, 0, 4, World(rank=r, size=3))] for r in range(3)]  # 4 = ceil(11 / 3) each
    assert [len(s) for s in shards] == [4, 4, 4]
    seen = torch.cat(shards)
    assert set(seen.tolist()) == set(range(11))
    assert len(seen) - len(set(seen.tolist())) == 1  # padding repeats one window, as DistributedSampler does
