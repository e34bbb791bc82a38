"""Child processes of the development tools (demo, benchmarks, tests).

A :class:`Child` is started with its output appended to a log file, stdin closed, in a new
session (a Ctrl-C in the terminal reaches the tool, which then stops its children in order),
and stopped by its PID only: SIGTERM, then SIGKILL after a grace period. ``free_port`` and
``pid_alive`` build on the local control plane's (one definition each).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubatch.local import plane
from kubatch.local.plane import free_port

__all__ = ["Child", "ChildExited", "free_port", "pid_alive", "stop_pid"]


def pid_alive(pid: int, exe: str | None = None) -> bool:
    """True when ``pid`` runs (not a zombie waiting to be reaped) and, if ``exe`` is given,
    runs that executable (a PID reused by another program is not ours)."""
    if not plane.pid_alive(pid, exe):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return not Path("/proc").is_dir()  # no procfs: trust kill(0)
    return state != "Z"


class ChildExited(RuntimeError):
    """A child that should be running has exited; the message carries its log's tail."""


@dataclass
class Child:
    """One child process: ``argv`` run with ``env`` in ``cwd``, output appended to ``log``."""

    name: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        """Start it (again, after a stop); returns the PID."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if self.env is None else dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
            )
        return self.popen.pid

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``sig`` (default SIGTERM), wait ``timeout`` seconds, then SIGKILL; reap it.
        Returns the exit code (None if it was never started)."""
        p = self.popen
        if p is None:
            return None
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        return p.returncode

    def kill(self) -> None:
        """SIGKILL now (a crash, as the resilience tests want it)."""
        self.stop(signal.SIGKILL, timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its log ('' when there is none)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> None:
        """Raise :class:`ChildExited` (with the log's tail) unless it is running."""
        if not self.alive():
            raise ChildExited(
                f"the {self.name} exited (code {self.returncode}); last lines of {self.log}:\n"
                + self.tail(25)
            )


def stop_pid(pid: int, exe: str | None = None, timeout: float = 15.0) -> bool:
    """Stop a process known only by its recorded PID (and executable name, so that a reused
    PID is never hit): SIGTERM, wait, SIGKILL. True when it was running."""
    if not pid_alive(pid, exe):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid, exe) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid, exe):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
