"""A LAVA job log read as it grows: the console, the commands' output, boot facts, errors.

The log is YAML, one entry a line (`GET /jobs/N/logs/?start=L`):

    - {"dt": "2026-12-04T21:44:00.430392", "lvl": "target", "msg": "[    0.000000] Linux ..."}
    - {"dt": "...", "lvl": "results", "msg": {"case": "login-action", "definition": "lava", ...}}
    - {"dt": "...", "lvl": "error", "msg": "..."}

`target` lines are the device's console: they go to the console sink (console.log, the
terminal) and the crash detector, whose context follows the commands (`boot` until the
first one). Between `LKFT-START` and `LKFT-RC=<n>` lines they are that command's output,
as on a local console (pytest_lkft/console.py frames commands the same way).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pytest_lkft.devices.crash import CrashDetector
from pytest_lkft.parsers.lava import load_entry

START = "LKFT-START"
RC = re.compile(r"LKFT-RC=(\d+)")
KERNEL = re.compile(r"Linux version (\S+)")  # a job log's lines come whole
SHELL_REACHED = ("login-action", "auto-login-action")
# LAVA's line starting the job's second action: the boot, in pytest-lkft's templates
BOOT_STARTS = re.compile(r"^start: 2 ")
TAIL_LINES = 30


@dataclass
class Block:
    """One command's output on the console, and its exit status once it ended."""

    lines: list[str] = field(default_factory=list)
    exit_status: int | None = None

    @property
    def output(self) -> str:
        """The output as the console gives it: lines ending in a newline."""
        return "".join(f"{line}\n" for line in self.lines)


class JobLog:
    """Push parser of a job log; `feed()` text as it comes (any chunking).

    `contexts[i]` names command i for crash reports (`smoke/uname`).
    """

    def __init__(self, console: Callable[[str], None], detector: CrashDetector,
                 contexts: Sequence[str]) -> None:
        self.console, self.detector, self.contexts = console, detector, list(contexts)
        self.lines = 0  # complete log lines read
        self.blocks: list[Block] = []
        self.open: Block | None = None
        self.kernel_version = ""
        self.kernel_started: datetime | None = None
        self.boot_started: datetime | None = None  # LAVA's boot action
        self.shell_reached: datetime | None = None
        self.first_command: datetime | None = None
        self._last_dt: datetime | None = None
        self.errors: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.tail: list[str] = []
        self.complete = False  # True once the log's last line (the job's result) was read
        self._partial = ""
        detector.context = "boot"

    def feed(self, text: str) -> None:
        """Consume a chunk of the raw log."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for raw in lines:
            self.lines += 1
            entry = load_entry(raw)
            if entry is not None:
                self._entry(entry)

    def _entry(self, entry: dict[str, Any]) -> None:
        level, msg = entry.get("lvl"), entry.get("msg")
        if level == "target" and isinstance(msg, str):
            self._target(msg.replace("\r", ""), str(entry.get("dt", "")))
        elif level == "results" and isinstance(msg, dict):
            self._result(msg, str(entry.get("dt", "")))
        elif level == "error" and isinstance(msg, str):
            self.errors.append(msg)
        elif self.boot_started is None and isinstance(msg, str) and BOOT_STARTS.match(msg):
            self.boot_started = _time(str(entry.get("dt", "")))

    def _target(self, line: str, dt: str) -> None:
        self._last_dt = _time(dt)
        self.console(line + "\n")
        self.detector.feed(line + "\n")
        self.tail = (self.tail + [line])[-TAIL_LINES:]
        if not self.kernel_version:
            found = KERNEL.search(line)
            if found:
                self.kernel_version, self.kernel_started = found.group(1), _time(dt)
        self._frame(line)

    def _frame(self, line: str) -> None:
        """Follow the command markers: open a block at START, close it at RC."""
        if self.open is None:
            if line.strip() == START:
                self.first_command = self.first_command or self._last_dt
                self.open = Block()
                self.blocks.append(self.open)
                index = len(self.blocks) - 1
                self.detector.context = "command"
                if index < len(self.contexts):
                    self.detector.context = self.contexts[index]
            return
        found = RC.search(line)
        if found is None:
            self.open.lines.append(line)
            return
        if found.start() > 0:  # output without a final newline, then the marker
            self.open.lines.append(line[:found.start()])
        self.open.exit_status = int(found.group(1))
        self.open = None

    def _result(self, msg: dict[str, Any], dt: str) -> None:
        self.results.append(msg)
        if msg.get("definition") == "lava" and msg.get("case") == "job":
            self.complete = True  # LAVA's last line: the log is whole
        reached = msg.get("definition") == "lava" and msg.get("case") in SHELL_REACHED
        if reached and msg.get("result") == "pass" and self.shell_reached is None:
            self.shell_reached = _time(dt)

    @property
    def boot_time(self) -> float | None:
        """Seconds from the kernel's first line to the shell, as LAVA's clock saw them;
        from the start of LAVA's boot action when the kernel's banner was hidden (quiet)."""
        shell = self.shell_reached or self.first_command
        start = self.kernel_started or self.boot_started
        if start is None or shell is None:
            return None
        return max(0.0, (shell - start).total_seconds())

    def job_error(self) -> str:
        """LAVA's own account of a failed job: the `job` result's error type and message."""
        for msg in reversed(self.results):
            if msg.get("definition") == "lava" and msg.get("case") == "job":
                found = _error_of(msg)
                if found.get("error_msg"):
                    kind = found.get("error_type")
                    if kind:
                        return f"{kind} error: {found['error_msg']}"
                    return str(found["error_msg"])
        return self.errors[-1] if self.errors else ""

    def tail_text(self) -> str:
        """The console's last lines, for failure messages."""
        return "".join(f"{line}\n" for line in self.tail)


def _time(dt: str) -> datetime | None:
    try:
        return datetime.fromisoformat(dt)
    except ValueError:
        return None


def _error_of(msg: dict[str, Any]) -> dict[str, Any]:
    """The mapping holding a `job` result's error: the result itself, else its `extra`."""
    if msg.get("error_msg"):
        return msg
    extra = msg.get("extra")
    if isinstance(extra, dict):
        return extra
    return {}
