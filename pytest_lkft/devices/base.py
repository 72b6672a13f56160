"""What every device offers the suites, whatever runs it (QEMU, a labgrid board)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pytest_lkft.console import CommandResult
from pytest_lkft.crash import Crash


class Device(Protocol):
    """A device for one suite run.

    Lifecycle: created by the `device` fixture, `boot()`ed once per suite run (by its
    first test), `run()`
    commands until the suite ends or the device breaks, then `close()`d. After a fatal
    crash or a timeout the device is `broken` and refuses commands; the next suite run
    gets a fresh device.
    """

    name: str
    arch: str
    boot_time: float | None
    boot_error: str | None
    broken: str | None
    console_log: Path
    metadata: dict[str, str]

    @property
    def booted(self) -> bool: ...

    def boot(self) -> None: ...
    def run(self, command: str, timeout: float | None = None) -> CommandResult: ...
    def crashes(self) -> list[Crash]: ...
    def set_context(self, context: str) -> None: ...
    def close(self) -> None: ...
