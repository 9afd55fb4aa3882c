"""Promises the repository itself makes: CI runs README's test command, the demo data is reproducible."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```bash\n")[1:3]
    return [block.split("\n```")[0].strip() for block in blocks]


def test_ci_runs_the_readme_test_command_verbatim():
    setup, test = readme_commands()
    assert "lstmcast train configs/demo.yaml" in setup and "lstmcast predict" in setup
    assert "pytest" in test
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines
    assert ci_lines.index("pip install torch==2.13.0") < ci_lines.index(test)


def test_demo_data_is_exactly_what_its_script_makes():
    spec = importlib.util.spec_from_file_location("make_demo", ROOT / "data" / "make_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = ("\n".join(module.make()) + "\n").encode()
    committed = (ROOT / "data" / "demo.csv").read_bytes()
    assert hashlib.sha256(made).hexdigest() == hashlib.sha256(committed).hexdigest()
    assert len(committed) < 2_000_000


def test_ci_starts_postgresql_and_fails_rather_than_skips_without_it():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    test = readme_commands()[1]
    assert ci_lines.index(". .ci/postgres") < ci_lines.index(test)
    assert ci_lines.index("export LSTMCAST_CI=1") < ci_lines.index(test)
    assert "trap lstmcast_postgres_stop EXIT" in ci_lines
