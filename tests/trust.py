"""Helpers shared by the trust tables (tests/test_adversarial_{secrets,databases,score,promote,tune}.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

from lstmcast.config import config_from_dict
from lstmcast.model import checkpoint

from .conftest import Result


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root`: its kind, a regular file's checksum and mode, a link's target."""
    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISREG(info.st_mode):
                seen[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(info.st_mode))
            elif stat.S_ISLNK(info.st_mode):
                seen[key] = ("link", os.readlink(path))
            else:
                seen[key] = (stat.S_IFMT(info.st_mode),)
    return seen


def with_config(source: Path, target: Path, **sections: dict) -> Path:
    """A copy of the checkpoint at `source` whose stored config has `sections` merged in (e.g. timeouts)."""
    ckpt = checkpoint.load(source)
    raw = ckpt.config.to_dict()
    for section, values in sections.items():
        raw[section].update(values)
    checkpoint.save(target, dataclasses.replace(ckpt, config=config_from_dict(raw)))
    return target


def tables(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def strict_json(text: str) -> dict:
    """The one JSON line of a --json run, refusing NaN and Infinity (which JSON does not have)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in --json output: not JSON")

    (line,) = [line for line in text.splitlines() if line.strip()]
    return json.loads(line, parse_constant=refuse)


def nowhere(result: Result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr, (secret, result.stdout, result.stderr)
