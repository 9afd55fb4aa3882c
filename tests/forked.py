"""The real CLI in processes forked from one interpreter that has already imported lstmcast, torch and pandas.

Starting `python -m lstmcast` costs seconds, almost all of it importing torch; forking a process that has
imported it costs milliseconds. Each child is a real process, as `python -m lstmcast` would be: its own pid,
exit code and signal handling, stdin /dev/null and stdout/stderr pipes (no terminal), the working directory
and environment asked for, and `lstmcast/__main__.py` run as `-m` runs it. So tests whose point is a separate
process (a hang that must fail instead of blocking the suite, SIGKILL/SIGINT/SIGTERM at some moment, another
process changing a file while lstmcast reads it) use these.

What a fork cannot reproduce stays with `python -m lstmcast` subprocesses (`conftest.cli_process`): an
interpreter that starts with descriptors 0-2 closed or broken, the start-up of a fresh interpreter in cron's
environment, and which modules a command imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

# The zygote: import what the commands import, then fork one child per request and report its pid and exit code.
ZYGOTE = r"""
import gc, json, os, runpy, select, sys
import lstmcast.cli, lstmcast.flows.predict, lstmcast.flows.evaluate, lstmcast.flows.training  # the slow imports (torch, pandas, numpy), once
gc.freeze()  # a child's exit then leaves these objects' pages shared, instead of copying most of the heap
replies = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the command's process
        os.close(out_r)
        os.close(err_r)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_w, err_w):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["lstmcast", *request["args"]]
        runpy.run_module("lstmcast", run_name="__main__", alter_sys=True)  # as `python -m lstmcast` (it exits)
        raise SystemExit(0)
    os.close(out_w)
    os.close(err_w)
    files = {out_r: open(request["stdout"], "wb"), err_r: open(request["stderr"], "wb")}
    replies.write(json.dumps({"pid": pid}) + "\n")
    replies.flush()
    while files:  # copy what the child writes as it comes (a test may wait for a line), until both are closed
        for fd in select.select(list(files), [], [])[0]:
            chunk = os.read(fd, 65536)
            if chunk:
                files[fd].write(chunk)
                files[fd].flush()
            else:
                files.pop(fd).close()
                os.close(fd)
    status = os.waitpid(pid, 0)[1]
    replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
    replies.flush()
"""


def cron_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class Child:
    """One forked `lstmcast …`: its pid while it runs, its output in files, its exit code once it ends."""

    def __init__(self, forker: Forker, pid: int, stdout: Path, stderr: Path) -> None:
        self.forker, self.pid, self.stdout_path, self.stderr_path = forker, pid, stdout, stderr
        self.code: int | None = None
        self.seen = 0  # how much of stderr `wait_for` has read

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, fragment: str, timeout: float = 60) -> None:
        """Until a stderr line after those already waited for holds `fragment`; fails if the child ends first
        or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.code is not None
            text = self.stderr
            found = text.find(fragment, self.seen)
            if found >= 0 and "\n" in text[found:]:  # the whole line is written
                self.seen = text.index("\n", found) + 1
                return
            if ended:
                raise AssertionError(f"process ended (code {self.code}) before printing {fragment!r}: {text}")
            reply = self.forker.reply(0)
            if reply is not None:
                self.code = reply["code"]
                continue  # read its stderr once more: it is complete now
            if time.monotonic() > deadline:
                raise AssertionError(f"no {fragment!r} within {timeout}s: {text}")
            time.sleep(0.005)

    def send(self, signum: int) -> None:
        if self.code is None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float = 120) -> int:
        """The exit code (the negative signal number when a signal ended it); SIGKILLs and fails on a hang."""
        if self.code is None:
            reply = self.forker.reply(timeout)
            if reply is None:
                os.kill(self.pid, signal.SIGKILL)
                reply = self.forker.reply(60)
                if reply is None:  # something it started still holds its stdout or stderr: start afresh
                    self.forker.proc.kill()
                    self.forker.proc.wait()
                self.code = -signal.SIGKILL
                raise AssertionError(f"`lstmcast` still running after {timeout}s (killed): {self.stderr}")
            self.code = reply["code"]
        return self.code


class Forker:
    """Starts forked `lstmcast` processes, one at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count = folder, 0
        self.log = folder / "zygote.log"
        self.child: Child | None = None
        self._spawn()

    def _spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ZYGOTE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=cron_env(),
                cwd=Path(__file__).resolve().parents[1],  # the repository, where `python -m lstmcast` finds lstmcast
            )
        self.buffer = b""

    def start(self, *args: str | Path, cwd: Path | str | None = None, env: dict | None = None) -> Child:
        if self.child is not None and self.child.code is None:  # a test that failed while its child ran
            self.child.send(signal.SIGKILL)
            with contextlib.suppress(AssertionError):
                self.child.wait(60)
        if self.proc.poll() is not None:  # killed after a hang that it could not end
            self._spawn()
        self.count += 1
        out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        request = {
            "args": [str(a) for a in args],
            "cwd": str(cwd or os.getcwd()),
            "env": cron_env() if env is None else env,
            "stdout": str(out),
            "stderr": str(err),
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        reply = self.reply(120)
        assert reply is not None, "the zygote did not fork"
        self.child = Child(self, reply["pid"], out, err)
        return self.child

    def run(self, *args: str | Path, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 120):
        """Like `conftest.cli_process`: the finished command's exit code, stdout and stderr."""
        from .conftest import Result

        child = self.start(*args, cwd=cwd, env=env)
        code = child.wait(timeout)
        return Result(code, child.stdout, child.stderr)

    def reply(self, timeout: float) -> dict | None:
        """The zygote's next reply, or None after `timeout` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the zygote ended: {self.log.read_text(errors='replace')}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.child is not None and self.child.code is None:
            self.child.send(signal.SIGKILL)
            with contextlib.suppress(AssertionError):
                self.child.wait(60)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()  # the zygote's loop ends
        try:
            self.proc.wait(60)
        finally:
            self.proc.kill()
            self.proc.stdout.close()
