"""What every device offers the suites, whatever runs it (QEMU, a labgrid board)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pytest_lkft.devices.console import CommandResult, Console, TextSink
from pytest_lkft.devices.crash import Crash, CrashDetector, load_crash_patterns
from pytest_lkft.errors import DeviceBroken

if TYPE_CHECKING:
    from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.settings.device import Timeouts


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


class ConsoleDevice:
    """What QEMU guests and labgrid boards share once booted: a console to run commands on,
    the crash detector reading it, and the broken state.

    Subclasses set `console` when they boot, and implement boot().
    """

    console: Console | None

    def __init__(self, name: str, arch: str, artifacts: DeviceArtifacts, run_dir: Path,
                 timeouts: Timeouts, stream: TextSink | None) -> None:
        self.name, self.arch, self.artifacts = name, arch, artifacts
        self.run_dir, self.timeouts, self.stream = run_dir, timeouts, stream
        self.console_log = run_dir / "console.log"
        self.detector = CrashDetector(load_crash_patterns())
        self.boot_time: float | None = None
        self.boot_error: str | None = None
        self.broken: str | None = None

    def set_context(self, context: str) -> None:
        """Name what runs now (a test case), so crashes say where they happened."""
        self.detector.context = context

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a shell command on the device; DeviceBroken once it or its console is gone."""
        if self.broken is not None or self.console is None:
            raise DeviceBroken(self.broken or "the device was never booted")
        try:
            return self.console.run(command, timeout or self.timeouts.test)
        except DeviceBroken as error:
            self.broken = str(error)
            raise

    def crashes(self) -> list[Crash]:
        """Every crash or warning seen on the console so far."""
        return list(self.detector.crashes)


class UnavailableDevice:
    """A device that cannot be made for this run (nothing to boot, no place to boot it on):
    it never boots, `boot_error` says why, and it refuses every command."""

    def __init__(self, name: str, run_dir: Path, reason: str) -> None:
        self.name, self.arch = name, ""
        self.boot_time: float | None = None
        self.boot_error: str | None = reason
        self.broken: str | None = reason
        self.console_log = run_dir / "console.log"
        self.metadata = {"device": name}

    @property
    def booted(self) -> bool:
        """Never: there is nothing to boot."""
        return False

    def boot(self) -> None:
        """Nothing to boot."""

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Refused: the device is unavailable."""
        raise DeviceBroken(self.broken or "unavailable")

    def crashes(self) -> list[Crash]:
        """None: no console."""
        return []

    def set_context(self, context: str) -> None:
        """Nothing runs."""

    def close(self) -> None:
        """Nothing to stop."""
