"""Adversarial environments for unattended runs: what is at an output path, the folder lock, full and
read-only disks, closed or broken standard streams, bad command lines and library warnings.

Every case runs the real CLI in a subprocess without a terminal, as cron does (as root in CI), and
checks the promise: the exit code, exactly one short `error:` line and no traceback on failure,
and nothing on disk changed except the intended outputs (a checksum of every file before and after,
and what /dev/null, FIFOs, sockets and links are afterwards).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from .conftest import Result, assert_user_error, cli, sine_csv, write_config
from .forked import Forker

MAX_ERROR_CHARS = 300
RUN_TIMEOUT = 120  # a hang (a FIFO opened for writing, a lock never given up) fails the case instead of blocking
SYSTEM_DEVICES = {Path("/dev/null"): (1, 3), Path("/dev/full"): (1, 7)}


@pytest.fixture(autouse=True)
def system_devices_survive() -> Iterator[None]:
    """A regression run as root would replace /dev/null with a file: fail loudly, and put the device back."""
    yield
    broken = [path for path in SYSTEM_DEVICES if not stat.S_ISCHR(os.lstat(path).st_mode)]
    for path in broken:
        with contextlib.suppress(OSError):
            path.unlink()
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*SYSTEM_DEVICES[path]))
            path.chmod(0o666)
    assert not broken, f"{broken} were replaced by regular files (now restored)"


# ---------------------------------------------------------------------------- the world each case starts from


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with series.csv, config.yaml and a trained run/model.pt, shared (read only) by every case."""
    base = tmp_path_factory.mktemp("trained")
    sine_csv(base / "series.csv")
    write_config(base)
    result = cli("train", base / "config.yaml", "--quiet")
    assert result.code == 0, result.stderr
    return base


@dataclass
class World:
    """One case's folder (a copy of the trained project) and what to undo afterwards."""

    root: Path
    stack: contextlib.ExitStack

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def data(self) -> Path:
        return self.root / "series.csv"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def predict(self, *more: str | Path) -> list[str | Path]:
        return ["predict", self.model, "--data", self.data, "--quiet", *more]

    def forecast(self, name: str, content: str = "timestamp,load\nold,1\n") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path

    def mount_tmpfs(self, name: str, options: str = "size=64k") -> Path:
        """A tiny tmpfs (root only): a real full or read-only disk. Skips, saying why, where none can be mounted."""
        folder = self.root / name
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs (a real full or read-only disk) needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the case needs a real one")
        self.stack.callback(subprocess.run, ["umount", "-l", str(folder)], capture_output=True)
        return folder


def fill(folder: Path) -> None:
    """Write zeros into `folder` until its filesystem is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@dataclass
class Run:
    """What a case runs and expects."""

    args: list[str | Path]
    code: int
    fragments: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()  # paths (relative to the world) the run may create or change
    check: Callable[[Result], None] = lambda result: None
    stdout: str = "pipe"  # "broken": a pipe whose reader is gone; "closed": no descriptor 1, as `>&-`; "full"
    stderr: str = "pipe"  # "closed": no descriptor 2 at all, as `2>&-`
    cwd: Path | None = None
    others: list[Path] = field(default_factory=list)  # files outside the world that must not change


# ---------------------------------------------------------------------------- running and checking


def needs_a_process(run: Run) -> bool:
    """Broken or closed streams, and anything that could block (a FIFO, a socket, a device), need a real
    process with a timeout; every other case runs the same CLI in-process, which is ten times faster."""
    if run.stdout != "pipe" or run.stderr != "pipe":
        return True
    for arg in map(str, run.args):
        if arg.startswith("/dev/") or arg.startswith("/proc/"):  # the test process's own streams differ
            return True
        with contextlib.suppress(OSError, ValueError):
            if not stat.S_ISREG(os.stat(arg).st_mode) and not stat.S_ISDIR(os.stat(arg).st_mode):
                return True
    return False


def run_cli(run: Run, cwd: Path, home: Path, forker: Forker) -> Result:
    """The CLI without a terminal: in-process, or in a process with cron's environment (PATH and HOME only).

    With stdout and stderr on pipes the process is forked from one that has imported lstmcast already
    (tests/forked.py); closed, broken or full streams need `python -m lstmcast` started that way.
    """
    if not needs_a_process(run):
        previous = os.getcwd()
        os.chdir(run.cwd or cwd)
        try:
            return cli(*run.args)
        finally:
            os.chdir(previous)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    if run.stdout == "pipe" and run.stderr == "pipe":
        return forker.run(*run.args, cwd=run.cwd or cwd, env=env, timeout=RUN_TIMEOUT)
    stdout: int = subprocess.PIPE
    if run.stdout == "broken":
        reader, stdout = os.pipe()
        os.close(reader)
    elif run.stdout == "full":  # every write fails with ENOSPC, as on a full disk
        stdout = os.open("/dev/full", os.O_WRONLY)
    closed = [fd for fd, how in ((1, run.stdout), (2, run.stderr)) if how == "closed"]

    def preexec() -> None:
        for fd in closed:
            os.close(fd)

    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lstmcast", *map(str, run.args)],
            cwd=run.cwd or cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=None if run.stdout == "closed" else stdout,
            stderr=None if run.stderr == "closed" else subprocess.PIPE,
            preexec_fn=preexec if closed else None,
            timeout=RUN_TIMEOUT,
        )
    finally:
        if run.stdout in ("broken", "full"):
            os.close(stdout)
    text = (proc.stdout or b"").decode(errors="replace"), (proc.stderr or b"").decode(errors="replace")
    return Result(proc.returncode, *text)


def assert_contract(result: Result, run: Run) -> None:
    code, fragments = run.code, run.fragments
    if run.stderr == "closed":  # nowhere to say anything: the exit code alone tells
        assert result.code == code, (result.code, result.stdout)
        return
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if code == 2:
        assert_user_error(result, *fragments)
    else:
        assert result.code == code, (result.code, result.stdout, result.stderr)
        assert len(errors) == (0 if code == 0 else 1), result.stderr
        assert all(fragment in errors[0] for fragment in fragments), (fragments, result.stderr)
    assert all(len(line) <= MAX_ERROR_CHARS for line in errors), errors


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


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_forecast(path: Path) -> bool:
    frame = pd.read_csv(path)
    return list(frame.columns) == ["timestamp", "load", "forecaster"] and len(frame) == 12


def stays(path: Path, test: Callable[[int], bool]) -> Callable[[Result], None]:
    def check(_: Result) -> None:
        assert test(os.lstat(path).st_mode), f"{path} changed kind"

    return check


def both(*checks: Callable[[Result], None]) -> Callable[[Result], None]:
    def check(result: Result) -> None:
        for one in checks:
            one(result)

    return check


# ---------------------------------------------------------------------------- family 1: files that are not ours


def out_is_dev_null(w: World) -> Run:
    return Run(
        w.predict("--out", "/dev/null"),
        2,
        ("/dev/null", "character device"),
        check=stays(Path("/dev/null"), stat.S_ISCHR),
    )


def out_is_dev_full(w: World) -> Run:
    """/dev/full would fail every write with ENOSPC; it is refused as a device before any write."""
    return Run(
        w.predict("--out", "/dev/full"),
        2,
        ("/dev/full", "character device"),
        check=stays(Path("/dev/full"), stat.S_ISCHR),
    )


def device_node(w: World, name: str, kind: int, numbers: tuple[int, int]) -> Path:
    """A device node of our own (root only), so that a regression harms a copy, not the system's."""
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    path = w.root / name
    os.mknod(path, kind | 0o666, os.makedev(*numbers))
    return path


def out_is_a_private_null_device(w: World) -> Run:
    path = device_node(w, "null.csv", stat.S_IFCHR, (1, 3))
    return Run(w.predict("--out", path), 2, ("null.csv", "character device"), check=stays(path, stat.S_ISCHR))


def log_file_is_a_block_device(w: World) -> Run:
    path = device_node(w, "disk.log", stat.S_IFBLK, (7, 255))  # a loop device number nothing is attached to
    args = w.predict("--out", w.root / "f.csv", "--log-file", path)
    return Run(args, 2, ("disk.log", "block device"), check=stays(path, stat.S_ISBLK))


def out_is_a_folder(w: World) -> Run:
    w.forecast("forecasts/keep.csv")
    return Run(w.predict("--out", w.root / "forecasts"), 2, ("forecasts is a folder",))


def out_is_a_fifo(w: World) -> Run:
    os.mkfifo(w.root / "f.csv")
    return Run(
        w.predict("--out", w.root / "f.csv"), 2, ("f.csv is a FIFO",), check=stays(w.root / "f.csv", stat.S_ISFIFO)
    )


def report_is_a_fifo(w: World) -> Run:
    os.mkfifo(w.root / "report.json")
    args = ["evaluate", w.model, "--data", w.data, "--quiet", "--report", w.root / "report.json"]
    return Run(args, 2, ("report.json is a FIFO",), check=stays(w.root / "report.json", stat.S_ISFIFO))


def plot_is_a_socket(w: World) -> Run:
    path = w.root / "p.png"
    if len(str(path)) > 100:
        pytest.skip("the temporary folder's path is too long for a Unix socket")
    sock = w.stack.enter_context(socket.socket(socket.AF_UNIX))
    sock.bind(str(path))
    # Refused before the forecast is written: a predict that fails leaves no half of its outputs.
    args = w.predict("--out", w.root / "f.csv", "--plot", path)
    return Run(args, 2, ("p.png is a socket",), check=stays(path, stat.S_ISSOCK))


def symlink_is_kept_and_its_target_updated(w: World) -> Run:
    target = w.forecast("forecast-2026-11-30.csv")
    target.chmod(0o640)
    (w.root / "latest.csv").symlink_to("forecast-2026-11-30.csv")

    def check(_: Result) -> None:
        assert os.readlink(w.root / "latest.csv") == "forecast-2026-11-30.csv"
        assert is_forecast(target) and stat.S_IMODE(target.stat().st_mode) == 0o640  # updated, mode kept

    return Run(w.predict("--out", w.root / "latest.csv"), 0, changes=("forecast-2026-11-30.csv",), check=check)


def symlink_chain(w: World) -> Run:
    target = w.forecast("real.csv")
    (w.root / "b.csv").symlink_to("real.csv")
    (w.root / "a.csv").symlink_to(w.root / "b.csv")

    def check(_: Result) -> None:
        assert (w.root / "a.csv").is_symlink() and (w.root / "b.csv").is_symlink() and is_forecast(target)

    return Run(w.predict("--out", w.root / "a.csv"), 0, changes=("real.csv",), check=check)


def symlink_into_another_folder(w: World) -> Run:
    target = w.forecast("archive/f.csv")
    (w.root / "out").mkdir()
    (w.root / "out" / "latest.csv").symlink_to("../archive/f.csv")

    def check(_: Result) -> None:
        assert os.readlink(w.root / "out" / "latest.csv") == "../archive/f.csv" and is_forecast(target)

    return Run(w.predict("--out", w.root / "out" / "latest.csv"), 0, changes=("archive/f.csv",), check=check)


def dangling_symlink_creates_its_target(w: World) -> Run:
    (w.root / "latest.csv").symlink_to("new.csv")

    def check(_: Result) -> None:
        assert (w.root / "latest.csv").is_symlink() and is_forecast(w.root / "new.csv")

    return Run(w.predict("--out", w.root / "latest.csv"), 0, changes=("new.csv",), check=check)


def dangling_symlink_into_a_missing_folder(w: World) -> Run:
    (w.root / "latest.csv").symlink_to("nowhere/new.csv")
    return Run(w.predict("--out", w.root / "latest.csv"), 2, ("whose folder does not exist",))


def symlink_to_dev_null(w: World) -> Run:
    (w.root / "latest.csv").symlink_to("/dev/null")
    check = stays(Path("/dev/null"), stat.S_ISCHR)
    return Run(w.predict("--out", w.root / "latest.csv"), 2, ("/dev/null", "character device"), check=check)


def symlink_loop(w: World) -> Run:
    (w.root / "a.csv").symlink_to("b.csv")
    (w.root / "b.csv").symlink_to("a.csv")
    return Run(w.predict("--out", w.root / "a.csv"), 2, ("loops",))


def read_only_forecast_is_kept(w: World) -> Run:
    """chmod a-w protects a file even from root: the mode is read, not access(2)."""
    w.forecast("f.csv").chmod(0o444)
    return Run(w.predict("--out", w.root / "f.csv"), 2, ("f.csv", "read-only"))


def train_output_is_a_folder(w: World) -> Run:
    (w.root / "run" / "metrics.json").mkdir(parents=True)
    # Refused before training: no model.pt, history.csv or config.yaml appears beside it.
    return Run(["train", w.config, "--quiet"], 2, ("metrics.json is a folder",), changes=("run/.lstmcast.lock",))


def log_file_is_a_fifo(w: World) -> Run:
    os.mkfifo(w.root / "job.log")
    args = w.predict("--out", w.root / "f.csv", "--log-file", w.root / "job.log")
    return Run(args, 2, ("job.log is a FIFO",), check=stays(w.root / "job.log", stat.S_ISFIFO))


def log_file_is_dev_null(w: World) -> Run:
    return Run(
        w.predict("--log-file", "/dev/null"),
        2,
        ("/dev/null", "character device"),
        check=stays(Path("/dev/null"), stat.S_ISCHR),
    )


def log_file_is_stderr_on_a_pipe(w: World) -> Run:
    """/dev/stderr leads to the pipe the scheduler reads: not a regular file, so refused (stderr gets the lines anyway)."""
    return Run(w.predict("--log-file", "/dev/stderr"), 2, ("/dev/stderr", "FIFO"))


def log_file_through_a_symlink(w: World) -> Run:
    log = w.forecast("logs/real.log", "earlier line\n")
    (w.root / "job.log").symlink_to("logs/real.log")

    def check(_: Result) -> None:
        lines = log.read_text().splitlines()
        assert (w.root / "job.log").is_symlink() and lines[0] == "earlier line" and "written to" in lines[-1]

    args = w.predict("--out", w.root / "f.csv", "--log-file", w.root / "job.log")
    return Run(args, 0, changes=("logs/real.log", "f.csv"), check=check)


# ---------------------------------------------------------------------------- family 2: the folder lock

HOLDER = "import sys, time; from lstmcast.lock import hold\nwith hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(90)"


def lock_file_deleted_while_held(w: World) -> Run:
    (w.root / "run").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(w.root / "run")], stdout=subprocess.PIPE, text=True)
    w.stack.callback(holder.wait)
    w.stack.callback(holder.kill)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    (w.root / "run" / ".lstmcast.lock").unlink()  # a cleanup script, or a person
    return Run(["train", w.config, "--quiet"], 75, ("another lstmcast run holds",), changes=("run/.lstmcast.lock",))


def output_folder_is_a_symlink(w: World) -> Run:
    """`current -> load-2026`, a common deployment: the lock and the outputs go into the linked folder."""
    (w.root / "load-2026").mkdir()
    (w.root / "current").symlink_to("load-2026")

    def check(_: Result) -> None:
        assert (w.root / "current").is_symlink() and (w.root / "load-2026" / "model.pt").exists()

    names = ("model.pt", "config.yaml", "metrics.json", "history.csv", "train.log", ".lstmcast.lock")
    args = ["train", w.config, "--quiet", "--out", w.root / "current", "--wait", "5"]
    return Run(args, 0, changes=tuple(f"load-2026/{name}" for name in names), check=check)


def lock_file_is_a_symlink_to_data(w: World) -> Run:
    (w.root / "run").mkdir()
    (w.root / "run" / ".lstmcast.lock").symlink_to(w.data)
    return Run(["train", w.config, "--quiet"], 2, ("lock file", "symbolic link"))


def lock_file_is_a_fifo(w: World) -> Run:
    (w.root / "run").mkdir()
    os.mkfifo(w.root / "run" / ".lstmcast.lock")
    check = stays(w.root / "run" / ".lstmcast.lock", stat.S_ISFIFO)
    return Run(["train", w.config, "--quiet"], 2, ("lock file", "FIFO"), check=check)


# ---------------------------------------------------------------------------- family 3: full and unwritable disks


def disk_full_writing_the_lock(w: World) -> Run:
    disk = w.mount_tmpfs("disk")
    fill(disk)
    args = ["train", w.config, "--quiet", "--out", disk / "run"]
    return Run(args, 2, ("lock file", "No space left on device"), changes=("disk/run", "disk/run/.lstmcast.lock"))


def disk_full_writing_the_log(w: World) -> Run:
    disk = w.mount_tmpfs("disk")
    fill(disk)
    args = ["train", w.config, "--quiet", "--log-file", disk / "job.log"]
    changes = ("run", "run/.lstmcast.lock", "run/train.log", "disk/job.log")
    return Run(args, 2, ("log file", "job.log", "No space left on device"), changes=changes)


def disk_full_keeps_the_previous_forecast(w: World) -> Run:
    disk = w.mount_tmpfs("disk")
    (disk / "f.csv").write_text("timestamp,load\nold,1\n")
    fill(disk)
    return Run(w.predict("--out", disk / "f.csv"), 2, ("No space left on device", "intact"))


def log_file_on_a_read_only_disk(w: World) -> Run:
    if os.geteuid() == 0:
        folder = w.mount_tmpfs("ro", "ro,size=64k")  # root ignores permissions, not a read-only filesystem
    else:
        folder = w.root / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        w.stack.callback(folder.chmod, 0o755)
    return Run(w.predict("--log-file", folder / "job.log"), 2, ("job.log",))


def log_file_is_a_folder(w: World) -> Run:
    (w.root / "logs").mkdir()
    return Run(w.predict("--log-file", w.root / "logs"), 2, ("logs is a folder",))


def train_log_is_a_folder(w: World) -> Run:
    (w.root / "run" / "train.log").mkdir(parents=True)
    return Run(["train", w.config, "--quiet"], 2, ("train.log is a folder",), changes=("run/.lstmcast.lock",))


def log_file_under_a_file(w: World) -> Run:
    return Run(w.predict("--log-file", w.data / "job.log"), 2, ("a file is in the way",))


# ---------------------------------------------------------------------------- family 4: broken environments


def stderr_closed_train_runs(w: World) -> Run:
    def check(result: Result) -> None:
        assert "checkpoint written to" in result.stdout and (w.root / "run" / "model.pt").exists()
        assert "trained 2 epochs" in (w.root / "run" / "train.log").read_text()

    names = ("model.pt", "config.yaml", "metrics.json", "history.csv", "train.log", ".lstmcast.lock")
    changes = ("run", *(f"run/{name}" for name in names))
    return Run(["train", w.config], 0, changes=changes, check=check, stderr="closed")


def stderr_closed_error_keeps_its_exit_code(w: World) -> Run:
    check = stays(Path("/dev/null"), stat.S_ISCHR)
    return Run(w.predict("--out", "/dev/null"), 2, check=check, stderr="closed")


def stdout_closed_predict_runs(w: World) -> Run:
    def check(result: Result) -> None:
        assert is_forecast(w.root / "f.csv") and "written to" in (w.root / "job.log").read_text()

    args = w.predict("--out", w.root / "f.csv", "--log-file", w.root / "job.log")
    return Run(args, 0, changes=("f.csv", "job.log"), check=check, stdout="closed")


def stdout_on_a_full_disk(w: World) -> Run:
    """`lstmcast predict … >> /full/disk/cron.out`: the forecast is written, the lost stdout is exit 2."""

    def check(_: Result) -> None:
        assert is_forecast(w.root / "f.csv")

    args = w.predict("--out", w.root / "f.csv")
    return Run(args, 2, ("cannot write to stdout", "No space left"), changes=("f.csv",), check=check, stdout="full")


def stdout_reader_gone_after_predict(w: World) -> Run:
    def check(_: Result) -> None:
        assert is_forecast(w.root / "f.csv")

    return Run(w.predict("--out", w.root / "f.csv"), 0, changes=("f.csv",), check=check, stdout="broken")


def stdout_reader_gone_during_evaluate_table(w: World) -> Run:
    def check(_: Result) -> None:
        assert json.loads((w.root / "r.json").read_text())["horizon"] == 12

    args = ["evaluate", w.model, "--data", w.data, "--report", w.root / "r.json"]
    return Run(args, 0, changes=("r.json",), check=check, stdout="broken")


def help_into_a_closed_pipe(w: World) -> Run:
    def check(result: Result) -> None:
        assert result.stderr == ""

    return Run(["train", "--help"], 0, check=check, stdout="broken")


def unknown_option_with_json(w: World) -> Run:
    def check(result: Result) -> None:
        line = json.loads(result.stdout)
        assert line["status"] == "error" and line["command"] == "predict" and line["exit_code"] == 2
        assert "--bogus" in line["error"] and result.stderr.startswith("Usage: ")  # click's usage text stays

    return Run([*w.predict("--json"), "--bogus"], 2, ("No such option: --bogus",), check=check)


def missing_argument_with_json(w: World) -> Run:
    def check(result: Result) -> None:
        assert json.loads(result.stdout)["command"] == "evaluate"

    return Run(["evaluate", "--json"], 2, ("Missing argument",), check=check)


def values_beyond_float32_are_refused_not_warned_about(w: World) -> Run:
    """Values near the float limit made numpy warn (overflow) and forecast from infinities; now one error line."""
    frame = pd.read_csv(w.data)
    frame["load"] = frame["load"] * 1e306
    frame.to_csv(w.root / "huge.csv", index=False)
    args = ["predict", w.model, "--data", w.root / "huge.csv", "--out", w.root / "f.csv"]
    return Run(args, 2, ("too large for 32-bit floats",), changes=("huge.csv",))


# ---------------------------------------------------------------------------- family 5: numeric options


def wait_seconds(value: str) -> Callable[[World], Run]:
    def case(w: World) -> Run:
        def check(result: Result) -> None:
            assert json.loads(result.stdout)["exit_code"] == 2 and not (w.root / "run").exists()

        return Run(["train", w.config, "--json", f"--wait={value}"], 2, ("--wait",), check=check)

    case.__name__ = f"wait_{value}"
    return case


CASES: list[tuple[str, Callable[[World], Run]]] = [
    ("files", out_is_dev_null),
    ("files", out_is_dev_full),
    ("files", out_is_a_private_null_device),
    ("files", log_file_is_a_block_device),
    ("files", out_is_a_folder),
    ("files", out_is_a_fifo),
    ("files", report_is_a_fifo),
    ("files", plot_is_a_socket),
    ("files", symlink_is_kept_and_its_target_updated),
    ("files", symlink_chain),
    ("files", symlink_into_another_folder),
    ("files", dangling_symlink_creates_its_target),
    ("files", dangling_symlink_into_a_missing_folder),
    ("files", symlink_to_dev_null),
    ("files", symlink_loop),
    ("files", read_only_forecast_is_kept),
    ("files", train_output_is_a_folder),
    ("files", log_file_is_a_fifo),
    ("files", log_file_is_dev_null),
    ("files", log_file_is_stderr_on_a_pipe),
    ("files", log_file_through_a_symlink),
    ("lock", lock_file_deleted_while_held),
    ("lock", output_folder_is_a_symlink),
    ("lock", lock_file_is_a_symlink_to_data),
    ("lock", lock_file_is_a_fifo),
    ("exit", disk_full_writing_the_lock),
    ("exit", disk_full_writing_the_log),
    ("exit", disk_full_keeps_the_previous_forecast),
    ("exit", log_file_on_a_read_only_disk),
    ("exit", log_file_is_a_folder),
    ("exit", train_log_is_a_folder),
    ("exit", log_file_under_a_file),
    ("env", stderr_closed_train_runs),
    ("env", stderr_closed_error_keeps_its_exit_code),
    ("env", stdout_closed_predict_runs),
    ("env", stdout_on_a_full_disk),
    ("env", stdout_reader_gone_after_predict),
    ("env", stdout_reader_gone_during_evaluate_table),
    ("env", help_into_a_closed_pipe),
    ("env", unknown_option_with_json),
    ("env", missing_argument_with_json),
    ("env", values_beyond_float32_are_refused_not_warned_about),
    *(("numbers", wait_seconds(value)) for value in ("nan", "inf", "-1", "-inf", "1e999")),
]


@pytest.mark.parametrize(
    ("family", "arrange"),
    [pytest.param(f, c, marks=[pytest.mark.slow] if f == "env" else []) for f, c in CASES],  # env: fresh interpreters
    ids=[f"{family}-{case.__name__}" for family, case in CASES],
)
def test_adversarial_case(
    family: str, arrange: Callable[[World], Run], trained: Path, tmp_path: Path, forker: Forker
) -> None:
    root = tmp_path / "w"
    root.mkdir()
    for name in ("series.csv", "config.yaml"):
        shutil.copy(trained / name, root / name)
    shutil.copy(trained / "run" / "model.pt", root / "model.pt")
    with contextlib.ExitStack() as stack:
        world = World(root, stack)
        run = arrange(world)
        before = snapshot(root)
        result = run_cli(run, root, tmp_path, forker)
        assert_contract(result, run)
        after = snapshot(root)
        run.check(result)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    unexpected = changed - set(run.changes) - {"disk/filler"}
    assert not unexpected, {key: (before.get(key), after.get(key)) for key in unexpected}
    assert not [key for key in after if key.endswith(".tmp")], "a temporary file was left behind"


def test_a_library_warning_during_a_command_is_one_capped_warning_line(trained, tmp_path, monkeypatch):
    """Python warnings raised inside a command (numpy, pandas, torch) reach stderr as lstmcast's own line."""
    import warnings

    import lstmcast.data.sinks

    from .conftest import cli

    write = lstmcast.data.sinks.forecast_frame

    def warning_write(*args, **kwargs):
        warnings.warn("overflow encountered in cast\n" + "detail " * 100, RuntimeWarning, stacklevel=1)
        return write(*args, **kwargs)

    monkeypatch.setattr(lstmcast.data.sinks, "forecast_frame", warning_write)
    out = tmp_path / "f.csv"
    result = cli("predict", trained / "run" / "model.pt", "--data", trained / "series.csv", "--out", out, "--quiet")
    assert result.code == 0 and out.exists(), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "warning: " in lines[0] and "RuntimeWarning" in lines[0], lines
    assert len(lines[0]) <= MAX_ERROR_CHARS
