"""The lab's data files: QEMU device table and crash patterns, both under `lab/`.

They are data, not code (tuxrun's device list, LAVA's kernel-message list): adding a
device or a crash pattern is a YAML edit.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from pytest_lkft.errors import UserError

LAB_DIR = Path(__file__).resolve().parent.parent / "lab"
DEVICES_FILE = LAB_DIR / "qemu-devices.yaml"
CRASH_FILE = LAB_DIR / "crash-patterns.yaml"


@dataclass(frozen=True)
class DebianSource:
    """Where a device's default kernel comes from: `linux-image-<flavour>` for `arch`."""

    arch: str
    flavour: str
    image: str


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

    def drive_args(self, rootfs: Path) -> list[str]:
        """The QEMU arguments that attach an ext4 `rootfs`."""
        return [arg.replace("{rootfs}", str(rootfs)) for arg in shlex.split(self.drive)]


@dataclass(frozen=True)
class CrashPattern:
    """A console line pattern that means the kernel crashed or warned."""

    kind: str
    regex: re.Pattern[str]
    fatal: bool = False


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


# libyaml's loader when PyYAML has it: the device table is read before the first boot starts.
YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=YAML_LOADER)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}".splitlines()[0]) from None


def _spec(name: str, entry: dict[str, Any], defaults: dict[str, Any]) -> QemuSpec:
    merged = {**defaults, **entry}
    debian = merged.pop("debian", None)
    merged["extra_args"] = tuple(str(a) for a in merged.get("extra_args", []))
    return QemuSpec(
        name=name,
        debian=DebianSource(**debian) if debian else None,
        **merged,
    )


@cache
def load_devices(path: Path = DEVICES_FILE) -> DeviceTable:
    """Read a QEMU device table (`lab/qemu-devices.yaml` by default)."""
    data = _read_yaml(path)
    defaults = data.get("defaults", {})
    try:
        devices = {name: _spec(name, entry, defaults) for name, entry in data["devices"].items()}
    except (KeyError, TypeError) as error:
        raise UserError(f"{path}: bad device entry ({error}); see lab/qemu-devices.yaml") from None
    return DeviceTable(devices)


@cache
def load_crash_patterns(path: Path = CRASH_FILE) -> tuple[CrashPattern, ...]:
    """Read the crash patterns (`lab/crash-patterns.yaml` by default), in match order."""
    return tuple(
        CrashPattern(kind=e["kind"], regex=re.compile(e["pattern"]), fatal=bool(e.get("fatal")))
        for e in _read_yaml(path)
    )
