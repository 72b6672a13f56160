"""The serial console of a device, driven with pexpect.

Every byte read is written to the console log, fed to the crash detector and, when asked,
streamed to the terminal. Commands are framed with markers that the shell prints, never
with the prompt, so echo, line editing and `ESC[6n` cursor queries do not matter:

    echo LKFT""-START; <command>; echo "LKFT""-RC=$?"

The echoed command line shows `LKFT""-START`, only the shell's output shows `LKFT-START`.
The console tail that failures show leaves these markers out (`harness_free`).
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pexpect

from pytest_lkft.devices.crash import CrashDetector
from pytest_lkft.errors import BootError, DeviceBroken
from pytest_lkft.settings.device import BootMessages

LOGIN_PROMPT = r"(?m)login:\s*$"
PASSWORD_PROMPT = r"(?i)password:\s*$"
NEWLINE = re.compile(r"\r+\n")
RC_MARKER = re.compile(r"LKFT-RC=(\d+)")
START_MARKER = r"LKFT-START\r*\n"
TAIL_LINES = 30
TAIL_LINE_CHARS = 4096  # of a line that never ends, its last characters
SYNC_RETRY = 3.0  # seconds before the shell is asked again whether it reads our input
PANIC_SETTLE = 3.0  # seconds to keep reading after a panic, for the rest of the trace
LINE_WAIT = 5.0  # seconds for the rest of the kernel-start message's line
STOP_WAIT = 2.0  # seconds the device's process gets to exit on SIGTERM before SIGKILL
STOP_POLL = 0.005  # seconds between looks at whether it has (pexpect's own steps: 0.1 s)
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


HARNESS_ECHO = re.compile(r'echo "LKFT""-(?:START|READY|RC=\$\?)";? ?')
HARNESS_LINE = re.compile(r"^LKFT-(?:START|READY|RC=\d+)$")
TERMINAL_CODES = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|c)")
PROMPT_ONLY = re.compile(r"^\S*\s?[#$]\s*$")


def harness_free(text: str) -> str:
    """Console text without the harness's markers, its echoed marker commands and
    terminal control sequences (`ESC[6n`): what the device itself printed."""
    lines = []
    for line in text.split("\n"):
        clean = TERMINAL_CODES.sub("", line)
        bare = HARNESS_ECHO.sub("", clean)
        if HARNESS_LINE.match(bare.strip()) or (bare != clean and PROMPT_ONLY.match(bare)):
            continue
        lines.append(bare)
    return "\n".join(lines)


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
        self.last_output = time.monotonic()

    def write(self, text: str) -> None:
        self.last_output = time.monotonic()
        self.file.write(self._lines(text))
        self.detector.feed(text)
        self._add_to_tail(text)
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def _lines(self, text: str) -> str:
        """`text` with the pty's `\r\r\n` and `\r\n` line ends as `\n` (issue 14)."""
        text = self.held_cr + text
        stripped = text.rstrip("\r")
        self.held_cr = text[len(stripped):]
        return NEWLINE.sub("\n", stripped)

    def _add_to_tail(self, text: str) -> None:
        """Keep the last TAIL_LINES lines whole: a shell under load echoes a command a
        character a read, and counting reads as lines cut the prompt off its command."""
        parts = text.splitlines(keepends=True)
        if parts and self.tail and not self.tail[-1].endswith(("\n", "\r")):
            self.tail[-1] = (self.tail[-1] + parts.pop(0))[-TAIL_LINE_CHARS:]
        self.tail = (self.tail + [part[-TAIL_LINE_CHARS:] for part in parts])[-TAIL_LINES:]

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.write(self.held_cr)
        self.held_cr = ""
        self.file.close()

    def tail_text(self) -> str:
        """The last lines seen, for failure messages, without the harness's markers."""
        return harness_free("".join(self.tail).replace("\r", ""))


@dataclass
class BootClock:
    """When a boot gives up: at its deadline, or once the console printed nothing for
    `silence` seconds (a kernel that never starts is stopped that early)."""

    deadline: float
    silence: float | None
    log: ConsoleLog

    def wait(self) -> float:
        """Seconds to wait for the next pattern before asking `expired` again."""
        now = time.monotonic()
        left = self.deadline - now
        if self.silence is not None:
            left = min(left, self.log.last_output + self.silence - now)
        return max(0.1, left)

    def expired(self) -> str:
        """Why the boot gives up now ("" while it may wait on)."""
        now = time.monotonic()
        if now >= self.deadline:
            return "timed out"
        if self.silence is not None and now - self.log.last_output >= self.silence:
            return (f"the console printed nothing for {self.silence:g} s "
                    "(--lkft-timeouts silence=S)")
        return ""


class Console:
    """A running device's console: boot to a shell, run commands, stop the device."""

    def __init__(self, command: list[str], log: ConsoleLog,
                 messages: BootMessages | None = None) -> None:
        self.command = command
        self.log = log
        self.messages = messages or BootMessages()
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

    def boot(self, timeout: float, silence: float | None = None, username: str = "root",
             password: str = "") -> float:
        """Reach a shell, logging in if asked; return the seconds taken.

        The kernel-start message gives the kernel version and banner; a shell prompt
        without it (`quiet`) is proof enough that the kernel started, and /proc/version then
        says which.
        """
        start = time.monotonic()
        clock = BootClock(start + timeout, silence, self.log)
        self.log.last_output = start
        patterns = [self.messages.kernel_start, LOGIN_PROMPT, self.log.detector.any.pattern,
                    *self.messages.prompts]
        started = False
        while True:
            why = "no shell prompt" if started else "the kernel never started"
            index = self._expect_boot(patterns, why, clock)
            if index == 0:
                started = True
                version, banner = self._start_groups(clock)
                self.kernel_version = version
                self.kernel_banner = f"{version} {banner}".strip()
            elif index == 1:
                self._log_in(username, password, clock)
            elif index == 2 and self._fatal_seen():
                raise BootError(self._why("the kernel crashed while booting"))
            elif index > 2:
                break
        elapsed = time.monotonic() - start
        self._sync(clock)
        if not self.kernel_version:
            self.kernel_banner = self._proc_version(clock)
            self.kernel_version = next(iter(self.kernel_banner.split()), "")
        return elapsed

    def _log_in(self, username: str, password: str, clock: BootClock) -> None:
        self.spawned.sendline(username)
        if password:
            self._expect_boot(PASSWORD_PROMPT, "no password prompt", clock)
            self.spawned.sendline(password)

    def _proc_version(self, clock: BootClock) -> str:
        """The running kernel's banner (after "Linux version "), asked of the shell ("" if
        it cannot say)."""
        result = self.run("cat /proc/version", max(1.0, clock.deadline - time.monotonic()))
        found = re.search(r"Linux version (\S+ [^\r\n]*)", result.output)
        return found.group(1).strip() if result.exit_status == 0 and found else ""

    def _start_groups(self, clock: BootClock) -> tuple[str, str]:
        """The kernel-start message's first two groups, read from its whole line: a message
        that does not end with the line (`Machine model: (\\S+)`) can match a line the
        console has read only half of, and its group would be cut short."""
        match = self.spawned.match
        if not isinstance(match, re.Match):
            return "", ""
        text = str(self.spawned.after)
        if not text.endswith("\n"):
            try:
                self.spawned.expect("\n", timeout=max(0.1, min(LINE_WAIT, clock.wait())))
                text += str(self.spawned.before) + "\n"
            except pexpect.ExceptionPexpect:  # the line never ended: keep what matched
                pass
        found = match.re.search(text) or match
        groups = [str(group or "") for group in found.groups()] + ["", ""]
        return groups[0], groups[1]

    def _group(self, index: int) -> str:
        match = self.spawned.match
        if not isinstance(match, re.Match) or match.re.groups < index:
            return ""
        return str(match.group(index) or "")

    def _fatal_seen(self) -> bool:
        if self.log.detector.fatal is None:
            return False
        self._settle()
        return True

    def _expect_boot(self, patterns: str | list[str], why: str, clock: BootClock) -> int:
        """The index of the first of `patterns` seen; BootError once `clock` expires or
        the device exits."""
        wanted = [patterns] if isinstance(patterns, str) else patterns
        while True:
            try:
                index = int(self.spawned.expect([*wanted, pexpect.EOF, pexpect.TIMEOUT],
                                                timeout=clock.wait()))
            except pexpect.ExceptionPexpect as error:
                index, why = len(wanted), f"{why} ({error})"
            if index < len(wanted):
                return index
            reason = clock.expired() if index > len(wanted) else "the device exited"
            if reason:
                break
        if index == len(wanted):
            self._settle()
        self.stop()
        if index == len(wanted) and self.log.detector.fatal is not None:
            # a panic ended the device: said so whether or not its pattern matched first
            raise BootError(self._why("the kernel crashed while booting"))
        raise BootError(self._why(f"{why}: {reason}"))

    def _sync(self, clock: BootClock) -> None:
        """Make sure a shell reads our input (a prompt-like kernel line can fool a regex).

        Asked again every SYNC_RETRY seconds: a line sent while busybox's shell still waits
        for the answer to its `ESC[6n` cursor query can be lost, and the boot then timed
        out with the prompt on the console.
        """
        ready = r"LKFT-READY\r*\n"
        while time.monotonic() < clock.deadline:
            self.spawned.sendline('echo "LKFT""-READY"')
            wait = max(0.1, min(SYNC_RETRY, clock.deadline - time.monotonic()))
            try:
                index = self.spawned.expect([ready, pexpect.EOF, pexpect.TIMEOUT], timeout=wait)
            except pexpect.ExceptionPexpect:
                break
            if index == 0:
                return
            if index == 1:
                break
        self._expect_boot(ready, "the shell did not answer", clock)  # says why, raises

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
        tail = self.log.tail_text()
        if not tail.strip():
            return reason
        return f"{reason}\n--- console tail ---\n{tail}"

    def stop(self) -> None:
        """Kill the device's process and reap it; nothing is left behind. SIGTERM (QEMU
        exits at once on it), SIGKILL if it is still there after STOP_WAIT; pexpect's own
        terminate() and close() would sleep 0.1 s at each of their steps, 0.2 s a device."""
        child = self.child
        if child is not None:
            end(child)
        self.log.flush()


def end(child: pexpect.spawn[str]) -> None:
    """Stop and reap `child`, then close its pty."""
    if child.isalive():
        child.kill(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while child.isalive() and time.monotonic() < deadline:
            time.sleep(STOP_POLL)
        if child.isalive():
            child.kill(signal.SIGKILL)
            child.wait()
    ptyproc = getattr(child, "ptyproc", None)  # ptyprocess sleeps 0.1 s in its close()
    if ptyproc is not None:
        ptyproc.delayafterclose = 0  # reaped: there is nothing to wait for
    child.close(force=True)
