"""The serial console of a device, driven with pexpect.

Every byte read is written to the console log, fed to the crash detector and, when asked,
streamed to the terminal. Commands are framed with markers that the shell prints, never
with the prompt, so echo, line editing and `ESC[6n` cursor queries do not matter:

    echo LKFT""-START; <command>; echo "LKFT""-RC=$?"

The echoed command line shows `LKFT""-START`, only the shell's output shows `LKFT-START`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pexpect

from pytest_lkft.devices.crash import CrashDetector
from pytest_lkft.errors import BootError, DeviceBroken

# The whole banner line (issue 16): matched only once its end arrived, so the version is
# never cut short while the line is still coming (`6`, `6.1.0-57-c`).
KERNEL_START = r"Linux version (\S+) ([^\r\n]*)\r*\n"
LOGIN_PROMPT = r"(?m)login:\s*$"
PASSWORD_PROMPT = r"(?i)password:\s*$"
SHELL_PROMPT = r"[#$] (?:\x1b\[6n)?$"
NEWLINE = re.compile(r"\r+\n")
RC_MARKER = re.compile(r"LKFT-RC=(\d+)")
START_MARKER = r"LKFT-START\r*\n"
TAIL_LINES = 30
SYNC_RETRY = 3.0  # seconds before the shell is asked again whether it reads our input
PANIC_SETTLE = 3.0  # seconds to keep reading after a panic, for the rest of the trace
# Characters of console output each expect searches when more arrives (pexpect's
# searchwindowsize). Without it pexpect copies and searches everything since the last
# match on every read: O(n^2) in a boot log or a suite's output (issue 6). Every pattern
# matches within a line; the window holds a whole read (maxread, 2000) and more.
SEARCH_WINDOW = 4096


@dataclass
class CommandResult:
    """What a command printed on the console and its exit status."""

    command: str
    output: str
    exit_status: int
    duration: float


def shown(command: str) -> str:
    """A command as messages quote it: its first line, `...` for the rest (a here-document)."""
    first, _, rest = command.partition("\n")
    return repr(f"{first} ..." if rest else first)


def _strip_rc_echo(output: str) -> str:
    """Drop the prompt line that echoed the exit-status command (it follows the output)."""
    echo = output.rfind('echo "LKFT""-RC=$?"')
    return output if echo < 0 else output[: output.rfind("\n", 0, echo) + 1]


class TextSink(Protocol):
    """Where a live console goes (the terminal, past pytest's capture)."""

    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class ConsoleLog:
    """pexpect's `logfile_read`: tee to the log file, the crash detector and a stream."""

    def __init__(self, path: Path, detector: CrashDetector, stream: TextSink | None,
                 append: bool = False) -> None:
        self.file = path.open("a" if append else "w", encoding="utf-8", errors="replace")
        self.detector = detector
        self.stream = stream
        self.tail: list[str] = []
        self.held_cr = ""  # a chunk's trailing \r, until the next shows whether \n follows

    def write(self, text: str) -> None:
        self.file.write(self._lines(text))
        self.detector.feed(text)
        self.tail = (self.tail + text.splitlines(keepends=True))[-TAIL_LINES:]
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def _lines(self, text: str) -> str:
        """`text` with the pty's `\r\r\n` and `\r\n` line ends as `\n` (issue 14)."""
        text = self.held_cr + text
        stripped = text.rstrip("\r")
        self.held_cr = text[len(stripped):]
        return NEWLINE.sub("\n", stripped)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.write(self.held_cr)
        self.held_cr = ""
        self.file.close()

    def tail_text(self) -> str:
        """The last lines seen, for failure messages."""
        return "".join(self.tail).replace("\r", "")


class Console:
    """A running device's console: boot to a shell, run commands, stop the device."""

    def __init__(self, command: list[str], log: ConsoleLog) -> None:
        self.command = command
        self.log = log
        self.child: pexpect.spawn[str] | None = None
        self.kernel_version = ""
        self.kernel_banner = ""  # the banner after "Linux version ", e.g. for the distro build

    def start(self) -> None:
        """Start the device's process (QEMU) with its console on our pty."""
        try:
            self.child = pexpect.spawn(
                self.command[0], self.command[1:], encoding="utf-8", codec_errors="replace",
                timeout=None, dimensions=(50, 1000), echo=False, searchwindowsize=SEARCH_WINDOW,
            )
        except pexpect.ExceptionPexpect as error:
            raise BootError(f"cannot start {self.command[0]}: {error}") from None
        self.child.logfile_read = self.log
        self.child.delaybeforesend = None

    @property
    def spawned(self) -> pexpect.spawn[str]:
        if self.child is None:
            raise DeviceBroken("the console is not started")
        return self.child

    def _deadline_expect(self, patterns: list[Any], deadline: float) -> int:
        return int(self.spawned.expect(patterns, timeout=max(0.1, deadline - time.monotonic())))

    def boot(self, timeout: float, username: str = "root", password: str = "") -> float:
        """Wait for kernel start, log in if asked, reach a shell; return seconds taken."""
        start = time.monotonic()
        deadline = start + timeout
        self._expect_boot(KERNEL_START, "the kernel never started", deadline)
        self.kernel_version = self._group(1)
        self.kernel_banner = f"{self.kernel_version} {self._group(2)}".strip()
        fatal = self.log.detector.any.pattern
        while True:
            index = self._expect_boot([LOGIN_PROMPT, SHELL_PROMPT, fatal], "no shell prompt",
                                      deadline)
            if index == 0:
                self.spawned.sendline(username)
                if password:
                    self._expect_boot(PASSWORD_PROMPT, "no password prompt", deadline)
                    self.spawned.sendline(password)
                continue
            if index == 2 and self._fatal_seen():
                raise BootError(self._why("the kernel crashed while booting"))
            if index == 1:
                break
        elapsed = time.monotonic() - start
        self._sync(deadline)
        return elapsed

    def _group(self, index: int) -> str:
        match = self.spawned.match
        return str(match.group(index)) if isinstance(match, re.Match) else ""

    def _fatal_seen(self) -> bool:
        if self.log.detector.fatal is None:
            return False
        self._settle()
        return True

    def _expect_boot(self, patterns: str | list[str], why: str, deadline: float) -> int:
        wanted = [patterns] if isinstance(patterns, str) else patterns
        try:
            index = self._deadline_expect([*wanted, pexpect.EOF, pexpect.TIMEOUT], deadline)
        except pexpect.ExceptionPexpect as error:
            index, why = len(wanted), f"{why} ({error})"
        if index < len(wanted):
            return index
        if index == len(wanted):
            self._settle()
        self.stop()
        reason = "timed out" if index == len(wanted) + 1 else "the device exited"
        raise BootError(self._why(f"{why}: {reason}"))

    def _sync(self, deadline: float) -> None:
        """Make sure a shell reads our input (a prompt-like kernel line can fool a regex).

        Asked again every SYNC_RETRY seconds: a line sent while busybox's shell still waits
        for the answer to its `ESC[6n` cursor query can be lost, and the boot then timed
        out with the prompt on the console.
        """
        ready = r"LKFT-READY\r*\n"
        while time.monotonic() < deadline:
            self.spawned.sendline('echo "LKFT""-READY"')
            wait = max(0.1, min(SYNC_RETRY, deadline - time.monotonic()))
            try:
                index = self.spawned.expect([ready, pexpect.EOF, pexpect.TIMEOUT], timeout=wait)
            except pexpect.ExceptionPexpect:
                break
            if index == 0:
                return
            if index == 1:
                break
        self._expect_boot(ready, "the shell did not answer", deadline)  # says why, raises

    def run(self, command: str, timeout: float) -> CommandResult:
        """Run `command` in the device's shell; DeviceBroken on timeout, crash or exit."""
        start = time.monotonic()
        self.spawned.sendline(f'echo "LKFT""-START"; {command}\necho "LKFT""-RC=$?"')
        try:
            self.spawned.expect([START_MARKER], timeout=timeout)
            index = self.spawned.expect([RC_MARKER, pexpect.EOF, pexpect.TIMEOUT],
                                        timeout=max(0.1, start + timeout - time.monotonic()))
        except pexpect.EOF:
            index = 1
        except pexpect.TIMEOUT:
            index = 2
        if index == 0:
            output = _strip_rc_echo(NEWLINE.sub("\n", str(self.spawned.before)))
            return CommandResult(command, output, int(self._group(1)),
                                 time.monotonic() - start)
        if index == 1 or self.log.detector.fatal is not None:
            self._settle()
            self.stop()
            raise DeviceBroken(self._why(f"the device died while running {shown(command)}"))
        self.stop()
        raise DeviceBroken(self._why(f"{shown(command)} timed out after {timeout:g} s"))

    def _settle(self) -> None:
        """Read on for a moment so a panic's whole trace reaches the log."""
        try:
            self.spawned.expect([pexpect.EOF], timeout=PANIC_SETTLE)
        except (pexpect.TIMEOUT, pexpect.ExceptionPexpect):
            pass

    def _why(self, reason: str) -> str:
        fatal = self.log.detector.fatal
        if fatal is not None:
            reason += f"; {fatal.describe()}"
        return f"{reason}\n--- console tail ---\n{self.log.tail_text()}"

    def stop(self) -> None:
        """Kill the device's process and reap it; nothing is left behind."""
        if self.child is not None and self.child.isalive():
            self.child.terminate(force=True)
        if self.child is not None:
            self.child.close(force=True)
        self.log.flush()
