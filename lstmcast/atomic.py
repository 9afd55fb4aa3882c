"""Write files so that readers only ever see the old complete file or the new complete one."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from lstmcast.errors import OutputError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: Path, write: Callable[[IO[Any]], object], *, text: bool = False) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it, then `os.replace` it into place.

    A crash or a full disk at any moment leaves the previous `path` untouched and at most
    a stray hidden temporary file, never a half-written `path`.
    """
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = _mkstemp(path)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should read like any other file
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": ""} if text else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} — {_advice(exc)}") from None
    except BaseException:
        _discard(tmp)
        raise
    _fsync_dir(path.parent)


def render_path(template: str | Path, **fields: Any) -> Path:
    """Fill `{run_date:%Y-%m-%d}`-style placeholders in an output path.

    `run_date` (now, local time) is always available; callers add others (predict adds `origin`,
    the first forecast timestamp).
    """
    text = str(template)
    if "{" not in text:
        return Path(text)
    fields.setdefault("run_date", datetime.now().astimezone())
    try:
        return Path(text.format(**fields))
    except KeyError as exc:
        names = ", ".join("{" + k + ":…}" for k in fields)
        raise OutputError(f"unknown placeholder {{{exc.args[0]}}} in output path {text!r} — use {names}") from None
    except (ValueError, IndexError, TypeError) as exc:
        raise OutputError(
            f"cannot fill output path {text!r}: {exc} — write placeholders like {{run_date:%Y-%m-%d}}"
        ) from None


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), text=True)


def ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create folder {folder}: a file is in the way — choose another output path") from None
    except OSError as exc:
        raise OutputError(f"cannot create folder {folder}: {exc.strerror or exc} — {_advice(exc)}") from None


def _mkstemp(path: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror or exc} — {_advice(exc)}") from None


def _advice(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable folder or fix its permissions"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space; the previous file was left intact"
    return "check the output path"


def _discard(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse to open a folder, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
