"""Random CSV text and random configs through the real CLI: exit 0 or 2, never a bug, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import cli, sine_csv

SMALL = {
    "data": {"path": "d.csv", "timestamp": "t", "target": "y"},
    "window": {"lookback": 4, "horizon": 2},
    "model": {"hidden_size": 4, "num_layers": 1},
    "train": {"epochs": 1, "batch_size": 8, "threads": 1},
    "data_split": None,
}
# 40 examples each (conftest's profile) keeps the suite fast; `--hypothesis-profile=deep` digs further.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _config(folder: Path, data: dict) -> Path:
    cfg = {k: v for k, v in SMALL.items() if v is not None}
    cfg = {**cfg, **data}
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_clean(result) -> None:
    assert result.code in (0, 2), (result.code, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if result.code == 2:
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


cells = st.one_of(
    st.sampled_from(["", "1", "-2.5", "1e3", "nan", "inf", "x", '"1,5"', "2024-01-01 00:00", "2024-01-01 01:00"]),
    st.text(alphabet='0123456789-:. ,;abcT\t"', max_size=12),
)
rows = st.lists(st.tuples(cells, cells), min_size=0, max_size=30)


@pytest.mark.slow
@FUZZ
@given(header=st.sampled_from(["t,y", "y,t", "t;y", "t,y,y", "", "t"]), body=rows, regular=st.booleans())
def test_random_csv_text_is_a_user_error_or_works(header, body, regular):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = [header]
        for i, (a, b) in enumerate(body):
            stamp = f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00" if regular else a
            lines.append(f"{stamp},{b}")
        (folder / "d.csv").write_text("\n".join(lines) + "\n")
        assert_clean(cli("train", _config(folder, {}), "--quiet"))


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
keys = st.sampled_from(
    ["lookback", "horizon", "stride", "norm", "hidden_size", "num_layers", "dropout", "patch", "epochs", "batch_size", "lr",
     "loss", "patience", "grad_clip", "seed", "device", "path", "target", "features", "freq", "missing", "split", "val",
     "timestamp", "dir", "lrate", "end", "start", "threads", "val_every"]
)  # fmt: skip
sections = st.sampled_from(["data", "window", "model", "train", "output", "bogus"])


@pytest.mark.slow
@FUZZ
@given(config=st.dictionaries(sections, st.one_of(st.dictionaries(keys, values, max_size=3), values), max_size=4))
def test_random_configs_are_a_user_error_or_work(config):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sine_csv(folder / "d.csv", rows=60)
        (folder / "d.csv").write_text((folder / "d.csv").read_text().replace("timestamp,load", "t,y"))
        merged = {k: dict(v) for k, v in SMALL.items() if v is not None}
        for section, content in config.items():
            merged[section] = {**merged.get(section, {}), **content} if isinstance(content, dict) else content
        merged.setdefault("output", {})
        if isinstance(merged["output"], dict):
            merged["output"]["dir"] = str(folder / "out")
        path = folder / "c.yaml"
        path.write_text(yaml.safe_dump(merged))
        assert_clean(cli("train", path, "--quiet"))


@pytest.mark.slow
@FUZZ
@given(text=st.text(max_size=200))
def test_random_yaml_text_is_a_user_error_or_works(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text)
        assert_clean(cli("validate", path))
