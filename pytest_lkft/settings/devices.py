"""The QEMU device table (`qemu-devices.yaml`, see `pytest_lkft.settings.tables`).

Data, not code (tuxrun's device list): adding a device is a YAML edit.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pytest_lkft.errors import UserError
from pytest_lkft.settings.device import BootMessages, regex
from pytest_lkft.settings.tables import (
    data_path,
    depends_on_lab_dir,
    expect,
    make_entry,
    read_table,
)

DEVICES_FILE = "qemu-devices.yaml"


@dataclass(frozen=True)
class DebianSource:
    """Where a device's default kernel comes from: `linux-image-<flavour>` for `arch`.

    `full_flavour` is the flavour with every driver, taken when a suite needs one the
    default flavour lacks; `drive` attaches a disk for Debian's kernels when the device's
    own `drive` needs a driver they lack; `dtb` is the device tree in the kernel package
    (a glob, `usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb`) that the default kernel
    boots with.
    """

    arch: str
    flavour: str
    image: str
    full_flavour: str | None = None
    drive: str | None = None
    dtb: str | None = None


@dataclass(frozen=True)
class QemuSpec:
    """One QEMU device as the table describes it."""

    name: str
    arch: str
    qemu: str
    apt: str
    machine: str
    cpu: str
    memory: int
    smp: int
    console: str
    kernel_image: str
    drive: str
    extra_args: tuple[str, ...] = ()
    needs_dtb: bool = False
    debian: DebianSource | None = None
    cmdline_size: int | None = None  # the kernel's COMMAND_LINE_SIZE; None: not checked
    kernel_start_message: str = ""  # "" and (): the harness's (`BootMessages`)
    prompts: tuple[str, ...] = ()

    @property
    def boot_messages(self) -> BootMessages:
        """What this device's console shows as its kernel starts and when a shell waits."""
        return BootMessages().given(self.kernel_start_message, self.prompts)

    def drive_args(self, rootfs: Path) -> list[str]:
        """The QEMU arguments that attach an ext4 `rootfs`."""
        return [arg.replace("{rootfs}", str(rootfs)) for arg in shlex.split(self.drive)]


@dataclass(frozen=True)
class DeviceTable:
    """All QEMU devices of a lab file, by name."""

    devices: dict[str, QemuSpec] = field(default_factory=dict)

    def get(self, name: str) -> QemuSpec:
        """The device called `name`, or a one-line error listing the valid names."""
        try:
            return self.devices[name]
        except KeyError:
            valid = ", ".join(sorted(self.devices))
            raise UserError(f"unknown device {name!r}; valid devices: {valid}") from None


def _debian(value: Any) -> DebianSource:
    if not isinstance(value, dict):
        raise TypeError("expected a mapping of arch, flavour and image")
    return DebianSource(**value)


def _regexes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("expected a list of regular expressions")
    return tuple(regex(str(text)) for text in value)


CONVERT = {"debian": _debian, "extra_args": lambda args: tuple(str(a) for a in args),
           "kernel_start_message": lambda text: regex(str(text)), "prompts": _regexes}


@depends_on_lab_dir
@cache
def load_devices(path: Path | None = None) -> DeviceTable:
    """Read a QEMU device table (the packaged or --lkft-lab-dir `qemu-devices.yaml`)."""
    path = path or data_path(DEVICES_FILE)
    data = expect(path, read_table(path), dict, "the file")
    defaults = expect(path, data.get("defaults") or {}, dict, "`defaults`")
    entries = expect(path, data.get("devices"), dict, "`devices`")
    return DeviceTable({name: make_entry(QemuSpec, path, name,
                                         {**defaults, **expect(path, entry, dict, name)},
                                         CONVERT)
                        for name, entry in entries.items()})
