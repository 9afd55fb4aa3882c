"""The manual's generated pages match the code, and the front door stays a front door."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_and_config_references_are_generated_from_the_code():
    gen = generator()
    for page in gen.PAGES:
        assert gen.rendered(page) == (ROOT / "docs" / page).read_text(), (
            f"docs/{page} is stale: python docs/generate.py"
        )
    text = (ROOT / "docs" / "cli.md").read_text()
    for command in ("train", "predict", "evaluate", "tune", "init", "promote", "score", "inspect", "validate"):
        assert f"### `lstmcast {command}`" in text
    assert "`--fallback <auto\\|seasonal_naive\\|naive\\|error>`" in text  # choices come from vocabulary


def test_a_drifted_page_is_caught(tmp_path):
    gen = generator()
    page = (ROOT / "docs" / "cli.md").read_text().replace("Forecast (and plot) only this series", "Plot every series")
    (tmp_path / "cli.md").write_text(page)
    (tmp_path / "config.md").write_text((ROOT / "docs" / "config.md").read_text())
    gen.DOCS = tmp_path
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0  # regenerated


def test_the_check_runs_as_a_script():
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_readme_is_a_front_door_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 350
    for folder, text in [(ROOT, readme), *((p.parent, p.read_text()) for p in (ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (folder / target).exists(), f"a link to {target} in {folder} leads nowhere"
