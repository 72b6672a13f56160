"""LAVA device names: `lava:<name>` -> the device type, job template and QEMU twin.

The names are data (the table `lava/devices.yaml`, packaged or in --lkft-lab-dir, read
like the other tables), and every device of the QEMU table is one too, on LAVA's `qemu`
device type (`lava:qemu-x86_64`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from pytest_lkft.devices.lava.jobs import template_values
from pytest_lkft.errors import UserError
from pytest_lkft.settings.device import regex
from pytest_lkft.settings.devices import QemuSpec, load_devices
from pytest_lkft.settings.tables import (
    data_path,
    depends_on_lab_dir,
    expect,
    make_entry,
    read_table,
)

PREFIX = "lava:"
DEVICES_FILE = "lava/devices.yaml"
# Where Debian's kernel packages hold a device tree: `make dtbs_install`'s layout, the same
# path under arch/<arch>/boot/dts in a kernel build (a board's `dtb` value).
DEBIAN_DTBS = "usr/lib/linux-image-*/{dtb}"


@dataclass(frozen=True)
class LavaEntry:
    """One entry of the LAVA device table (see its header)."""

    device_type: str
    template: str
    provision_as: str
    console: str | None = None
    prompts: tuple[str, ...] = ()
    kernel_start_message: str | None = None
    kernel_args: str = ""
    debian_flavour: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LavaSpec:
    """One LAVA device as pytest-lkft runs it."""

    name: str  # lava:<name>
    device_type: str
    template: str
    provision_as: str
    console: str
    prompts: tuple[str, ...] = ()
    kernel_start_message: str | None = None  # None: the LAVA device type's own
    kernel_args: str = ""  # the device type's own extra kernel arguments
    qemu: QemuSpec | None = field(default=None, compare=False)
    values: dict[str, Any] = field(default_factory=dict, compare=False)  # the template's own
    boots: QemuSpec | None = field(default=None, compare=False)  # what it is provisioned as

    @property
    def arch(self) -> str:
        """The kernel's architecture: its QEMU twin's."""
        return load_devices().get(self.provision_as).arch


def is_lava(name: str) -> bool:
    """True for a `lava:` device name."""
    return name.startswith(PREFIX)


def _prompts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("expected a list of regular expressions")
    return tuple(str(p) for p in value)


def _values(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected a mapping of the template's values")
    return dict(value)


def _message(value: Any) -> str | None:
    return None if value is None else regex(str(value))


CONVERT = {"prompts": _prompts, "values": _values, "kernel_start_message": _message}


@dataclass(frozen=True)
class LavaTable:
    """The LAVA device table: its file, defaults and entries by name."""

    path: Path
    defaults: dict[str, Any]
    devices: dict[str, LavaEntry]


@depends_on_lab_dir
@cache
def load_lava_devices(path: Path | None = None) -> LavaTable:
    """Read the LAVA device table (the packaged or --lkft-lab-dir `lava/devices.yaml`);
    an entry whose template values the template does not take is an error naming it."""
    path = path or data_path(DEVICES_FILE)
    data = expect(path, read_table(path) or {}, dict, "the file")
    defaults = expect(path, data.get("defaults") or {}, dict, "`defaults`")
    entries = expect(path, data.get("devices") or {}, dict, "`devices`")
    devices = {name: make_entry(LavaEntry, path, name,
                                {**defaults, **expect(path, entry, dict, name)}, CONVERT)
               for name, entry in entries.items()}
    for name, entry in devices.items():
        _check_values(path, name, entry)
    return LavaTable(path, dict(defaults), devices)


def _check_values(path: Path, name: str, entry: LavaEntry) -> None:
    try:
        template_values(entry.template, entry.values)
    except UserError as error:
        raise UserError(f"{path}: entry {name!r}: {error}") from None


def known_names() -> list[str]:
    """Every `lava:` name: the data file's and one per QEMU device."""
    named = load_lava_devices().devices
    return sorted({*(PREFIX + n for n in named), *(PREFIX + n for n in load_devices().devices)})


def _entry(name: str) -> LavaEntry:
    """The table's entry for `lava:<name>`, or the generic one of a QEMU table device."""
    short = name.removeprefix(PREFIX)
    table = load_lava_devices()
    if short in table.devices:
        return table.devices[short]
    if short in load_devices().devices:
        return make_entry(LavaEntry, table.path, short,
                          {**table.defaults, "device_type": "qemu", "template": "qemu",
                           "provision_as": short}, CONVERT)
    raise UserError(f"unknown LAVA device {name!r}; known: {', '.join(known_names())} "
                    f"(add one to {table.path})")


def lava_spec(name: str) -> LavaSpec:
    """The spec of `lava:<name>`; a one-line UserError naming the known ones."""
    entry = _entry(name)
    twin = load_devices().get(entry.provision_as)
    qemu = twin if entry.template == "qemu" else None
    values = template_values(entry.template, entry.values)
    start, prompts = _messages(entry, qemu)
    return LavaSpec(name=name, device_type=entry.device_type, template=entry.template,
                    provision_as=twin.name, console=entry.console or twin.console,
                    prompts=prompts, kernel_start_message=start,
                    kernel_args=entry.kernel_args, qemu=qemu, values=values,
                    boots=_boots(twin, entry.debian_flavour, values.get("dtb")))


def _messages(entry: LavaEntry, qemu: QemuSpec | None) -> tuple[str | None, tuple[str, ...]]:
    """The kernel-start message and prompts: the entry's own, else (on LAVA's qemu device
    type, which boots the twin's machine) the QEMU twin's, else the table's defaults."""
    start, prompts = entry.kernel_start_message, entry.prompts
    if qemu is None:
        return start, prompts
    if start is None and qemu.kernel_start_message:
        start = qemu.kernel_start_message
    defaults = _prompts(load_lava_devices().defaults.get("prompts") or [])
    if qemu.prompts and prompts == defaults:
        prompts = qemu.prompts
    return start, prompts


def _boots(twin: QemuSpec, flavour: str | None, dtb: str | None) -> QemuSpec:
    """The QEMU twin as the board's defaults come from it: Debian's kernel of the board's
    flavour, and the board's device tree from that kernel's package."""
    if twin.debian is None or flavour is None:
        return twin
    found = DEBIAN_DTBS.format(dtb=dtb) if dtb else None
    return replace(twin, debian=replace(twin.debian, flavour=flavour, dtb=found))
