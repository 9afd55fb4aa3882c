"""Tiny generated data and helpers to run the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from lstmcast.cli import app

ROOT = Path(__file__).resolve().parents[1]
# No deadlines or speed health checks: the suite must pass on any CPU, however slow or loaded.
_ANY_SPEED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", max_examples=40, **_ANY_SPEED)
settings.register_profile("deep", max_examples=600, **_ANY_SPEED)
settings.load_profile("default")


def sine_csv(path: Path, rows: int = 480, *, start: str = "2024-01-01", freq_hours: int = 1, seed: int = 0) -> Path:
    """An hourly sine (period 24) with noise and a temperature-like feature."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    stamps = pd.date_range(start, periods=rows, freq=f"{freq_hours}h")
    load = 10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, rows)
    temp = 5 + np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.1, rows)
    frame = pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "load": load.round(4), "temp": temp.round(4)}
    )
    frame.to_csv(path, index=False)
    return path


TINY = {
    "data": {"path": "series.csv", "timestamp": "timestamp", "target": "load", "features": ["temp"]},
    "window": {"lookback": 48, "horizon": 12},
    "model": {"hidden_size": 8, "num_layers": 2, "dropout": 0.0, "patch": 12},
    # select: model keeps the model serving the series (tests of selection set best explicitly)
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0, "threads": 1, "select": "model"},
    "output": {"dir": "run"},
}


def write_config(folder: Path, overrides: dict | None = None, name: str = "config.yaml") -> Path:
    cfg = {k: dict(v) for k, v in TINY.items()}
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding series.csv and config.yaml that trains in about a second."""
    sine_csv(tmp_path / "series.csv")
    write_config(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run/ folder `lstmcast train config.yaml --quiet` writes in `project`, trained once per session."""
    folder = tmp_path_factory.mktemp("tiny")
    sine_csv(folder / "series.csv")
    write_config(folder)
    result = cli("train", folder / "config.yaml", "--quiet")
    assert result.code == 0, result.stderr
    return folder / "run"


@pytest.fixture
def trained_project(project: Path, tiny_run: Path) -> Path:
    """`project` after `lstmcast train config.yaml --quiet`: its own copy of `tiny_run` (same data and config)."""
    shutil.copytree(tiny_run, project / "run")
    return project


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


def cli(*args: str | Path) -> Result:
    """Run the real Typer app in-process (fast: torch is imported once per test session)."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def cli_process(
    *args: str | Path, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 120
) -> Result:
    """Run `python -m lstmcast` in a subprocess without a TTY, as cron would."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")} if env is None else env
    proc = subprocess.run(
        [sys.executable, "-m", "lstmcast", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit 2, exactly one `error: …` line on stderr naming what went wrong, no traceback."""
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.fixture(scope="session")
def forker(tmp_path_factory: pytest.TempPathFactory):
    """Forks `lstmcast` processes from an interpreter that has imported it already (see forked.py)."""
    from .forked import Forker

    forker = Forker(tmp_path_factory.mktemp("forked"))
    yield forker
    forker.close()
