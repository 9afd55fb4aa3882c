"""Write files so that readers only ever see the old complete file or the new complete one.

Only regular files are ever replaced or appended to: a device, FIFO, socket or folder at an output
path is refused before anything is written, and a symbolic link is followed to the file it names
(which is then replaced, keeping the link).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from lstmcast.errors import OutputError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()

_NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, words in _NOT_REGULAR:
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def write_target(path: Path) -> tuple[Path, os.stat_result | None]:
    """Where a write to `path` lands, and what is there now (None: nothing yet).

    A symbolic link (or a chain of them) is followed to its final target; a dangling one names the
    file to create, whose folder must exist. Anything but a regular file there is an `OutputError`,
    and so is a regular file without any write permission (someone protected it).
    """
    path = Path(path)
    link = os.path.islink(path)
    via = f" (the target of the symbolic link {path})" if link else ""
    try:
        found: os.stat_result | None = os.stat(path)  # follows links, /dev/stderr's included
    except FileNotFoundError:
        found = None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"{path} is a symbolic link that loops — remove it or choose another path") from None
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} — {advice(exc)}") from None
    target = Path(os.path.realpath(path)) if link else path
    if found is None:
        if link and not target.parent.is_dir():
            raise OutputError(
                f"{path} is a symbolic link to {target}, whose folder does not exist — create it or remove the link"
            )
        return target, None
    kind = kind_of(found.st_mode)
    if kind is not None:
        shown = f"{target}{via}" if link and os.path.lexists(target) else str(path)
        raise OutputError(f"{shown} is {kind}, not a regular file — {_instead(kind)}")
    if not found.st_mode & 0o222:
        raise OutputError(
            f"{target}{via} is read-only (mode {stat.S_IMODE(found.st_mode):04o}) — "
            "make it writable (chmod u+w) or choose another path"
        )
    return target, found


def _instead(kind: str) -> str:
    if kind == "a folder":
        return "move it away or choose another path"
    return "lstmcast writes only regular files; choose another path"


def check_targets(*paths: Path | str | None) -> None:
    """Refuse, before any work, output paths that `atomic_write` would refuse (templates are checked later).

    A destination that is not a path (a database table) is checked by its own writer.
    """
    for path in paths:
        if isinstance(path, OutputFolder) and "{" not in str(path.path):
            _check_folder(path.path)
        elif isinstance(path, str | Path) and "{" not in str(path):
            write_target(Path(path))


def atomic_write(path: Path, write: Callable[[IO[Any]], object], *, text: bool = False) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it, then `os.replace` it into place.

    A crash or a full disk at any moment leaves the previous `path` untouched and at most
    a stray hidden temporary file, never a half-written `path`. A symbolic link at `path` is
    kept: the file it points to is the one replaced. The replaced file's permissions (and owner,
    where allowed) carry over to the new one.
    """
    with atomic_file(path, text=text) as f:
        write(f)


@contextlib.contextmanager
def atomic_file(path: Path, *, text: bool = False) -> Iterator[IO[Any]]:
    """`atomic_write` as a context: the temporary file to write (several times, e.g. batch by batch), put in
    place when the block ends without an error, discarded otherwise."""
    path = Path(path)
    ensure_dir(path.parent)
    target, previous = write_target(path)
    fd, tmp = _mkstemp(target)
    try:
        _carry_mode(fd, previous)
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": ""} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if write_target(path)[0] != target:  # checked again: something may have moved in while we wrote
            raise OutputError(f"{path} changed while lstmcast wrote it — run again")
        os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} — {advice(exc, kept=True)}") from None
    except BaseException:
        _discard(tmp)
        raise
    _fsync_dir(target.parent)


@dataclass(frozen=True)
class OutputFolder:
    """An output that is a folder of files (a forecast data set), written whole by `atomic_folder`."""

    path: Path

    def __str__(self) -> str:
        return f"{self.path}{os.sep}"


DONE = "_SUCCESS"  # the last file written into a finished output folder (as Spark and Hadoop jobs leave it)


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A folder of outputs that appears whole or not at all: the block fills a hidden temporary folder beside
    `path`; on success it gets `_SUCCESS`, is fsynced and takes the place of `path` (a previous folder there
    is replaced); on failure it is removed and `path` is left as it was."""
    path = Path(path)
    ensure_dir(path.parent)
    if path.exists() and (not path.is_dir() or path.is_symlink()):
        kind = "a symbolic link" if path.is_symlink() else kind_of(os.stat(path).st_mode) or "a file"
        raise OutputError(
            f"{path} is {kind}, not a folder — lstmcast writes a forecast data set into a folder; choose another path"
        )
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror or exc} — {advice(exc)}") from None
    try:
        yield tmp
        _finish_folder(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} — {advice(exc, kept=True)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_folder(path: Path) -> None:
    """A data set goes into a folder of its own: anything else at `path` (a file, a link, a device), or a folder
    holding anything but a finished data set (Parquet files and _SUCCESS), is refused untouched (it would be
    replaced whole)."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        kind = "a symbolic link" if path.is_symlink() else kind_of(os.stat(path).st_mode) or "a regular file"
        raise OutputError(
            f"{path} is {kind}, not a folder — a forecast data set is written into a folder; choose another path"
        )
    names = sorted(p.name for p in path.iterdir())
    foreign = [n for n in names if n != DONE and not n.endswith(".parquet")]
    if foreign or (names and DONE not in names):
        what = f"it holds {foreign[0]}" if foreign else f"it has no {DONE}"
        raise OutputError(
            f"{path} is a folder but not a forecast data set lstmcast finished ({what}), and writing a data set "
            "there would replace it whole — choose a new folder or empty this one"
        )


def _finish_folder(tmp: Path, path: Path) -> None:
    """Mark `tmp` done, make it durable, and swap it in for `path` (the old folder, if any, goes after)."""
    (tmp / DONE).write_bytes(b"")
    for item in tmp.iterdir():
        with open(item, "rb") as f:
            os.fsync(f.fileno())
    os.chmod(tmp, 0o777 & ~_UMASK)
    _fsync_dir(tmp)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _carry_mode(fd: int, previous: os.stat_result | None) -> None:
    if previous is None:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should read like any other file
        return
    os.fchmod(fd, stat.S_IMODE(previous.st_mode) & 0o777)
    if (previous.st_uid, previous.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(OSError):  # only root may give a file away; others keep their own
            os.fchown(fd, previous.st_uid, previous.st_gid)


def render_path(template: str | Path, **fields: Any) -> Path:
    """Fill `{run_date:%Y-%m-%d}`-style placeholders in an output path.

    `run_date` (now, local time) is always available; callers add others (predict adds `origin`,
    the first forecast timestamp). A destination that is not a path (a database table) is returned as it is.
    """
    if isinstance(template, OutputFolder):
        return OutputFolder(render_path(template.path, **fields))
    if not isinstance(template, str | Path):
        return template
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


def open_append(path: Path, what: str = "the log file") -> int:
    """A descriptor appending to the regular file at `path` (created if missing; a symbolic link is followed).

    Opened without blocking, so a FIFO swapped in after the check cannot hang the run, and checked
    again once open: nothing but a regular file is ever written to.
    """
    path = Path(path)
    ensure_dir(path.parent)
    target, _ = write_target(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot open {what} {path}: {exc.strerror or exc} — {advice(exc)}") from None
    kind = kind_of(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise OutputError(
            f"{path} is {kind}, not a regular file — lstmcast writes only regular files; choose another path"
        )
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create folder {folder}: a file is in the way — choose another output path") from None
    except OSError as exc:
        raise OutputError(f"cannot create folder {folder}: {exc.strerror or exc} — {advice(exc)}") from None


def _mkstemp(path: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror or exc} — {advice(exc)}") from None


def advice(exc: OSError, *, kept: bool = False) -> str:
    """What to do about a failed write; `kept`: the previous file is untouched (an atomic write)."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable folder or fix its permissions"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space; the previous file was left intact" if kept else "free disk space"
    if exc.errno == errno.EISDIR:
        return "a folder is in the way; choose another path"
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
