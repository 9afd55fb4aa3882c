"""Family 4 of the trust tables: an empty value is not "nothing", and a link that loops is not a bug.

A crontab whose variable is unset passes `''`: `--archive "$ARCHIVE"` must not quietly run without an
archive, `--table ''` must not write somewhere, `--out ''` must not mean the working directory. Every
empty (or blank) value of every option and argument is one error line naming it, exit 2, nothing
written; only the documented "none" flag (`--no-archive`) says none. The config's path keys, data.query
and LSTMCAST_ARCHIVE keep the same rule. A path that is a symbolic link looping on itself is one line too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import TINY, assert_user_error, cli
from .trust import snapshot


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    folder = tmp_path_factory.mktemp("empty")
    shutil.copy(tiny_run.parent / "series.csv", folder / "series.csv")
    shutil.copytree(tiny_run, folder / "run")
    cfg = {k: dict(v) for k, v in TINY.items()}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    done = cli("predict", folder / "run/model.pt", "--data", folder / "series.csv", "--archive", folder / "a.db", "-q")
    assert done.code == 0, done.stderr
    (folder / "loop.csv").symlink_to("loop2.csv")
    (folder / "loop2.csv").symlink_to("loop.csv")
    return folder


def _predict(f: Path, *more: str | Path) -> list:
    return ["predict", f / "run/model.pt", "--data", f / "series.csv", "--out", f / "f.csv", *more]


def _score(f: Path, *more: str | Path) -> list:
    return ["score", "--archive", f / "none.db", "--actuals", f / "series.csv", *more]


def _tune(f: Path, *more: str | Path) -> list:
    return ["tune", f / "config.yaml", "--budget", "1m", *more]


def _init(f: Path, *more: str | Path) -> list:
    return ["init", f / "series.csv", "--target", "load", "--horizon", "12", "--out", f / "i.yaml", *more]


# name → (the command over the world folder, what the one error line names)
EMPTY = {
    "predict CHECKPOINT": (lambda f: ["predict", "", "--data", f / "series.csv"], "CHECKPOINT is empty"),
    "predict --data": (lambda f: ["predict", f / "run/model.pt", "--data", ""], "--data is empty"),
    "predict --query": (lambda f: _predict(f, "--query", ""), "--query is empty"),
    "predict --out": (lambda f: ["predict", f / "run/model.pt", "--data", f / "series.csv", "--out", ""], "--out is"),
    "predict --table": (lambda f: [*_predict(f)[:4], "--out", f"sqlite:///{f / 't.db'}", "--table", ""], "--table is"),
    "predict --archive": (lambda f: _predict(f, "--archive", ""), "--no-archive to record nothing"),
    "predict --archive of spaces": (lambda f: _predict(f, "--archive", "  "), "--archive is empty"),
    "predict --log-file": (lambda f: _predict(f, "--log-file", ""), "--log-file is empty"),
    "predict --plot": (lambda f: _predict(f, "--plot", ""), "--plot is empty"),
    "predict --series": (lambda f: _predict(f, "--series", ""), "--series is empty"),
    "train CONFIG": (lambda f: ["train", ""], "CONFIG is empty"),
    "train --data": (lambda f: ["train", f / "config.yaml", "--data", ""], "--data is empty"),
    "train --out": (lambda f: ["train", f / "config.yaml", "--out", ""], "--out is empty"),
    "train --set": (lambda f: ["train", f / "config.yaml", "--set", ""], "--set is empty"),
    "validate --data": (lambda f: ["validate", f / "config.yaml", "--data", ""], "--data is empty"),
    "evaluate --report": (
        lambda f: ["evaluate", f / "run/model.pt", "--data", f / "series.csv", "--report", ""],
        "--report is empty",
    ),
    "inspect --data": (lambda f: ["inspect", f / "run/model.pt", "--data", ""], "--data is empty"),
    "score --archive": (lambda f: ["score", "--archive", "", "--actuals", f / "series.csv"], "--no-archive"),
    "score --actuals": (lambda f: ["score", "--archive", f / "none.db", "--actuals", ""], "--actuals is empty"),
    "score --since": (lambda f: _score(f, "--since", ""), "--since is empty"),
    "score --until": (lambda f: _score(f, "--until", " "), "--until is empty"),
    "score --fail-if": (lambda f: _score(f, "--fail-if", "mase>1", "--fail-if", ""), "--fail-if is empty"),
    "promote CANDIDATE": (lambda f: ["promote", "", "--to", f / "serving"], "CANDIDATE is empty"),
    "promote --to": (lambda f: ["promote", f / "run/model.pt", "--to", ""], "--to is empty"),
    "promote --data": (lambda f: ["promote", f / "run/model.pt", "--to", f / "s", "--data", ""], "--data is empty"),
    "tune --budget": (lambda f: ["tune", f / "config.yaml", "--budget", ""], "--budget is empty"),
    "tune --out": (lambda f: _tune(f, "--out", ""), "--out is empty"),
    "tune --space": (lambda f: _tune(f, "--space", ""), "--space is empty"),
    "tune --storage": (lambda f: _tune(f, "--storage", ""), "--storage is empty"),
    "tune --trial-limit": (lambda f: _tune(f, "--trial-limit", ""), "--trial-limit is empty"),
    "init DATA": (lambda f: ["init", "", "--target", "load", "--horizon", "12"], "DATA is empty"),
    "init --out": (lambda f: ["init", f / "series.csv", "--target", "load", "--horizon", "12", "--out", ""], "--out"),
    "init --target": (lambda f: ["init", f / "series.csv", "--target", "", "--horizon", "12"], "--target is empty"),
    "init --timestamp": (lambda f: _init(f, "--timestamp", ""), "--timestamp is empty"),
    "init --series-id": (lambda f: _init(f, "--series-id", ""), "--series-id is empty"),
}


def _config(f: Path, **sections: dict) -> Path:
    cfg = {k: dict(v) for k, v in TINY.items()}
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    (f / "bad.yaml").write_text(yaml.safe_dump(cfg))
    return f / "bad.yaml"


CONFIGS = {
    "data.path": (lambda f: _config(f, data={"path": ""}), "data.path is empty"),
    "data.path of spaces": (lambda f: _config(f, data={"path": "  "}), "data.path is empty"),
    "output.dir": (lambda f: _config(f, output={"dir": ""}), "output.dir is empty"),
    "archive.url": (lambda f: _config(f, archive={"url": ""}), "archive.url is empty"),
    "data.query": (lambda f: _config(f, data={"path": f"sqlite:///{f / 'x.db'}", "query": ""}), "data.query is empty"),
}

LOOPS = {
    "predict --data": (lambda f: ["predict", f / "run/model.pt", "--data", f / "loop.csv"], "loops"),
    "validate --data": (lambda f: ["validate", f / "config.yaml", "--data", f / "loop.csv"], "loops"),
    "a config's data.path": (lambda f: ["validate", _config(f, data={"path": "loop.csv"})], "loops"),
    "score --actuals": (lambda f: ["score", "--archive", f / "a.db", "--actuals", f / "loop.csv"], "loops"),
    "init DATA": (
        lambda f: ["init", f / "loop.csv", "--target", "load", "--horizon", "12", "--out", f / "i.yaml"],
        "loops",
    ),
    "the config file": (lambda f: ["validate", f / "loop.csv"], "loops"),
    "the checkpoint": (lambda f: ["predict", f / "loop.csv", "--data", f / "series.csv"], "loops"),
    "--archive": (lambda f: _predict(f, "--archive", f / "loop.csv"), "loops"),
    "--log-file": (lambda f: _predict(f, "--log-file", f / "loop.csv"), "loops"),
    "tune --space": (lambda f: _tune(f, "--space", f / "loop.csv"), "loops"),
    "tune --storage": (lambda f: _tune(f, "--storage", f / "loop.csv"), "loops"),
}


def _run(world: Path, make, fragment: str, monkeypatch) -> None:
    monkeypatch.chdir(world)
    args = make(world)
    before = snapshot(world)
    result = cli(*args, "--json") if args[0] not in ("--help",) else cli(*args)
    assert_user_error(result, fragment)
    after = snapshot(world)
    for made in ("bad.yaml",):
        before.pop(made, None), after.pop(made, None)
    assert after == before, sorted(set(after) ^ set(before))


@pytest.mark.parametrize("case", list(EMPTY))
def test_an_empty_option_or_argument_is_one_line_naming_it(case: str, world: Path, monkeypatch) -> None:
    _run(world, *EMPTY[case], monkeypatch)


@pytest.mark.parametrize("case", list(CONFIGS))
def test_an_empty_config_value_is_one_line_naming_the_key(case: str, world: Path, monkeypatch) -> None:
    make, fragment = CONFIGS[case]
    _run(world, lambda f: ["train", make(f)], fragment, monkeypatch)


@pytest.mark.parametrize("case", list(LOOPS))
def test_a_symbolic_link_that_loops_is_one_line(case: str, world: Path, monkeypatch) -> None:
    _run(world, *LOOPS[case], monkeypatch)


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_lstmcast_archive_is_refused_and_no_archive_still_says_none(value, world: Path, monkeypatch) -> None:
    monkeypatch.setenv("LSTMCAST_ARCHIVE", value)
    _run(world, lambda f: _predict(f), "LSTMCAST_ARCHIVE is empty", monkeypatch)
    done = cli(*_predict(world, "--no-archive", "--quiet"))
    assert done.code == 0, done.stderr
    (world / "f.csv").unlink()
