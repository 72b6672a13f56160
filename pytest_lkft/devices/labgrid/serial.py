"""A board's serial console through a labgrid console driver, for `Console`.

`SerialSpawn` lets pexpect read and write through labgrid's ConsoleProtocol driver (a
closed connection reads as EOF); `SerialConsole` is the same `Console` as on QEMU
(markers, crash detection, console log), plus driving U-Boot's prompt.
"""

from __future__ import annotations

import codecs
import re
import time
from typing import TYPE_CHECKING, Any

import pexpect
from pexpect.spawnbase import SpawnBase

from pytest_lkft.devices.console import (
    SEARCH_WINDOW,
    BootClock,
    CommandResult,
    Console,
    ConsoleLog,
)
from pytest_lkft.devices.labgrid.labfile import BootSpec
from pytest_lkft.errors import BootError, DeviceBroken, UserError
from pytest_lkft.settings.device import BootMessages

EARLY_TIMEOUT = 0.05  # a serial read that "times out" sooner than this: the peer closed
UBOOT_PLAIN = re.compile(r"[\w./:=,+@%-]*")  # words U-Boot's shell takes unquoted
UBOOT_ERROR = re.compile(r"(?i)\b(?:error|not found|unknown command|abort|failed)\b")

if TYPE_CHECKING:
    _SpawnBase = SpawnBase[str]
else:
    _SpawnBase = SpawnBase  # generic only in the type stubs


class SerialSpawn(_SpawnBase):
    """pexpect over a labgrid ConsoleProtocol driver: a closed connection reads as EOF."""

    def __init__(self, driver: Any) -> None:
        super().__init__(timeout=None, searchwindowsize=SEARCH_WINDOW, encoding="utf-8",
                         codec_errors="replace")
        self.driver = driver
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> str:
        """Read what the serial has, up to `size` bytes; pexpect's TIMEOUT and EOF."""
        if timeout == -1:
            timeout = self.timeout
        start = time.monotonic()
        try:
            data = self.driver.read(size=1, timeout=timeout, max_size=size)
        except pexpect.TIMEOUT:
            if timeout is not None and time.monotonic() - start < timeout - EARLY_TIMEOUT:
                self.flag_eof = True  # labgrid says TIMEOUT at once when the peer closed
                raise pexpect.EOF("serial console lost: the connection was closed") from None
            raise
        except Exception as error:  # pyserial and socket errors: the connection is gone
            self.flag_eof = True
            raise pexpect.EOF(f"serial console lost: {error}") from None
        text = self.decoder.decode(data)
        if self.logfile_read is not None:
            self.logfile_read.write(text)
        return text

    def send(self, s: str | bytes) -> int:
        """Write to the serial; EOF when the connection is gone."""
        data = s if isinstance(s, bytes) else s.encode()
        try:
            return int(self.driver.write(data))
        except Exception as error:
            self.flag_eof = True
            raise pexpect.EOF(f"serial console lost: {error}") from None

    def sendline(self, s: str = "") -> int:
        """Write a line, as pexpect.spawn does."""
        return self.send(s + "\n")

    def isalive(self) -> bool:
        """True until the connection was seen closed."""
        return not self.flag_eof


class SerialConsole(Console):
    """`Console` on a board's serial line: same framing, log and crash detection."""

    def __init__(self, log: ConsoleLog, messages: BootMessages | None = None) -> None:
        super().__init__([], log, messages)
        self.driver: Any = None

    def attach(self, driver: Any) -> None:
        """Read and write through the labgrid console driver."""
        self.driver = driver
        self.start()

    def start(self) -> None:
        """Wrap the driver for pexpect; what it reads goes to the console log."""
        spawn = SerialSpawn(self.driver)
        spawn.logfile_read = self.log
        # Console uses only SpawnBase's API (expect, sendline, before, match).
        self.child = spawn  # type: ignore[assignment]

    def uboot(self, spec: BootSpec, values: dict[str, str], timeout: float) -> None:
        """Stop autoboot, run the lab file's commands, leave with the last (the boot)."""
        clock = BootClock(time.monotonic() + timeout, None, self.log)
        self._expect_boot(re.escape(spec.interrupt), "no U-Boot autoboot prompt", clock)
        self.spawned.send("\n")
        self._expect_boot(re.escape(spec.prompt), "no U-Boot prompt", clock)
        commands = [_fill(command, values) for command in spec.commands]
        for index, command in enumerate(commands):
            self.spawned.sendline(command)
            if index == len(commands) - 1:
                return  # the boot command: the kernel's output follows
            self._expect_boot(re.escape(spec.prompt), f"U-Boot did not finish {command!r}",
                              clock)
            if UBOOT_ERROR.search(str(self.spawned.before)):
                raise BootError(self._why(f"U-Boot failed at {command!r}"))

    def run(self, command: str, timeout: float) -> CommandResult:
        """As Console.run; a write to a lost serial is DeviceBroken too."""
        lost = f"the serial console was lost while running {command!r}"
        try:
            return super().run(command, timeout)
        except pexpect.ExceptionPexpect as error:
            raise DeviceBroken(self._why(f"{lost} ({error})")) from None
        except DeviceBroken:
            if self.child is None or not self.child.flag_eof:
                raise
            raise DeviceBroken(self._why(lost)) from None

    def stop(self) -> None:
        """Nothing to kill: the board is powered off by its device; keep the log."""
        self.log.flush()


def _fill(command: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        command = command.replace(f"{{{key}}}", hush_quoted(value))
    return command


def hush_quoted(value: str) -> str:
    """`value` as one word of U-Boot's shell: as it is when plain, else in single quotes
    (no `;`, `$` or space then splits or expands it); a quote or newline is refused."""
    if UBOOT_PLAIN.fullmatch(value):
        return value
    if "'" in value or "\n" in value:
        raise UserError(f"U-Boot cannot take {value!r} (a ' or a newline) in one command; "
                        "leave them out of --lkft-boot-args")
    return f"'{value}'"
