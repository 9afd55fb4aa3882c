"""Hostile configs and checkpoints: each case through the real CLI ends in exit 2 with one bounded
`error:` line, promptly, and leaves the previous outputs exactly as they were."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import TINY, assert_user_error, cli, write_config

MAX_LINE = 300


def _digest(folder: Path) -> dict[str, str]:
    """Every output's bytes; train.log is appended by design, so only its earlier content must stay."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lstmcast.lock"}
    log = files.pop("train.log", b"")
    return {**{k: hashlib.sha256(v).hexdigest() for k, v in files.items()}, "train.log": log}


def _unharmed(before: dict[str, str], after: dict[str, str]) -> bool:
    old_log, new_log = before["train.log"], after["train.log"]
    same = {k: v for k, v in before.items() if k != "train.log"} == {k: v for k, v in after.items() if k != "train.log"}
    return same and new_log.startswith(old_log)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One trained project shared by the table: config.yaml, series.csv, run/model.pt, run/forecast.csv."""
    from .conftest import sine_csv

    folder = tmp_path_factory.mktemp("trained")
    sine_csv(folder / "series.csv")
    write_config(folder)
    assert cli("train", folder / "config.yaml", "--quiet").code == 0
    assert cli("predict", folder / "run" / "model.pt", "--data", folder / "series.csv", "--quiet").code == 0
    return folder


def _yaml(folder: Path, text: str) -> Path:
    path = folder / "bad.yaml"
    path.write_text(text)
    return path


def _config_with(folder: Path, **sections: dict) -> Path:
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["data"]["path"] = str(folder / "series.csv")
    cfg["output"]["dir"] = str(folder / "run")
    for section, values in sections.items():
        cfg[section].update(values)
    return _yaml(folder, yaml.safe_dump(cfg))


def _damaged_checkpoint(folder: Path, damage: Callable[[dict], None]) -> Path:
    payload = torch.load(folder / "run" / "model.pt", weights_only=True)
    damage(payload)
    path = folder / "damaged.pt"
    torch.save(payload, path)
    return path


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)

# (name, command builder over the trained folder, fragments the one error line must hold)
CASES: list[tuple[str, Callable[[Path], list], tuple[str, ...]]] = [
    (
        "duplicate top-level key",
        lambda f: ["validate", _yaml(f, "train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n")],
        ("duplicate key 'train'", "line 3"),
    ),
    (
        "duplicate nested key",
        lambda f: ["train", _yaml(f, "window:\n  lookback: 48\n  lookback: 24\n")],
        ("duplicate key 'lookback'",),
    ),
    ("billion laughs", lambda f: ["train", _yaml(f, BOMB)], ("YAML aliases",)),
    (
        "nested 5,000 deep",
        lambda f: ["validate", _yaml(f, "a: " + "[" * 5000 + "]" * 5000 + "\n")],
        ("nested more than",),
    ),
    (
        "5,000-digit integer",
        lambda f: ["validate", _yaml(f, "train:\n  epochs: " + "9" * 5000 + "\n")],
        ("cannot read YAML",),
    ),
    (
        "5,000-digit --set",
        lambda f: ["validate", f / "config.yaml", "--set", "train.epochs=" + "9" * 5000],
        ("train.epochs", "…"),
    ),
    ("config over a megabyte", lambda f: ["validate", _yaml(f, "# " + "x" * (2 << 20) + "\n")], ("over 1 MiB",)),
    ("zero frequency", lambda f: ["train", _config_with(f, data={"freq": "0h"})], ("data.freq = '0h'", "positive")),
    ("negative frequency", lambda f: ["validate", _config_with(f, data={"freq": "-2h"})], ("data.freq",)),
    (
        "validation of 1e9 rows",
        lambda f: ["validate", _config_with(f, data={"split": {"val": 1e9, "test": 0.15}})],
        ("needs at least 11764",),
    ),
    (
        "test part shorter than the horizon",
        lambda f: ["train", _config_with(f, data={"split": {"val": 0.15, "test": 5}})],
        ("data.split.test = 5 rows", "horizon"),
    ),
    (
        "a 34 TB model",
        lambda f: ["train", _config_with(f, model={"hidden_size": 8192, "num_layers": 32}, train={"ensemble": 100})],
        ("TB of memory", "model.hidden_size"),
    ),
    (
        "activations of a huge batch",
        lambda f: [
            "validate",
            _config_with(
                f,
                window={"lookback": 240, "horizon": 12},
                model={"hidden_size": 8192, "patch": 1},
                train={"batch_size": 10_000_000},
            ),
        ],
        ("activations", "train.batch_size"),
    ),
    (
        "warm start from other columns",
        lambda f: ["train", f / "config.yaml", "--set", "data.features=[]", "--init-from", f / "run" / "model.pt"],
        ("--init-from", "columns"),
    ),
    (
        "checkpoint with NaN weights",
        lambda f: [
            "predict",
            _damaged_checkpoint(f, lambda p: p["members"][0]["head.bias"].fill_(float("nan"))),
            "--data",
            f / "series.csv",
        ],
        ("NaN or infinite", "head.bias"),
    ),
    (
        "checkpoint with negative sizes",
        lambda f: [
            "predict",
            _damaged_checkpoint(f, lambda p: p["dims"].update(n_inputs=-3)),
            "--data",
            f / "series.csv",
        ],
        ("it is damaged",),
    ),
    (
        "checkpoint config gone bad",
        lambda f: [
            "evaluate",
            _damaged_checkpoint(f, lambda p: p["config"]["train"].update(lr="fast")),
            "--data",
            f / "series.csv",
        ],
        ("stored config is not valid",),
    ),
    (
        "values that overflow float32",
        lambda f: ["predict", f / "run" / "model.pt", "--data", _extreme_csv(f)],
        ("values too large for 32-bit floats",),
    ),
    (
        "weights whose forecast overflows",
        lambda f: [
            "predict",
            _damaged_checkpoint(
                f, lambda p: (p["members"][0]["head.weight"].fill_(3e38), p["members"][0]["head.bias"].fill_(3e38))
            ),
            "--data",
            f / "series.csv",
            "--out",
            f / "run" / "forecast.csv",
            "--fallback",
            "error",
        ],
        ("not finite", "nothing was written"),
    ),
]


def _extreme_csv(folder: Path) -> Path:
    text = (folder / "series.csv").read_text().splitlines()
    stamp, _, temp = text[-1].split(",")
    text[-1] = f"{stamp},1e300,{temp}"
    path = folder / "extreme.csv"
    path.write_text("\n".join(text) + "\n")
    return path


@pytest.mark.parametrize(("name", "command", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_input_is_one_bounded_line_and_harms_nothing(trained, name, command, fragments):
    before = _digest(trained / "run")
    started = time.monotonic()
    result = cli(*command(trained))
    assert_user_error(result, *fragments)
    assert max(len(line) for line in result.stderr.splitlines()) <= MAX_LINE, result.stderr
    assert time.monotonic() - started < 60, "a hostile input must be refused promptly, not worked through"
    assert _unharmed(before, _digest(trained / "run"))  # model.pt, forecast.csv, metrics … untouched


@pytest.mark.slow
def test_a_fifo_or_device_as_config_or_checkpoint_is_refused_without_waiting(trained, tmp_path, forker):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = trained / "series.csv"
    for args in (["validate", fifo], ["predict", fifo, "--data", data], ["inspect", "/dev/zero"]):
        result = forker.run(*args, timeout=60)  # a forked process: a hang fails here instead of blocking the suite
        assert_user_error(result, "not a regular file")
    result = forker.run("train", trained / "config.yaml", "--init-from", fifo, "--out", tmp_path / "x", timeout=60)
    assert_user_error(result, "not a regular file")


def test_legitimate_yaml_features_still_work(trained, tmp_path):
    """Anchors for a few repeated values and ordinary nesting are fine: the limits are far above real configs."""
    text = (trained / "config.yaml").read_text()
    config = tmp_path / "anchors.yaml"
    config.write_text(text.replace("lr: 0.01", "lr: &rate 0.01\n  weight_decay: *rate"))
    result = cli("validate", config, "--set", f"data.path={trained / 'series.csv'}")
    assert result.code == 0, result.stderr
