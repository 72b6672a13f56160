"""LAVA device names: `lava:<name>` -> the device type, job template and QEMU twin.

The names are data (pytest_lkft/data/lava/devices.yaml), and every device of the QEMU
table is one too, on LAVA's `qemu` device type (`lava:qemu-x86_64`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from pytest_lkft.errors import UserError
from pytest_lkft.settings.devices import QemuSpec, load_devices

PREFIX = "lava:"
DEVICES_FILE = Path(__file__).resolve().parents[2] / "data" / "lava" / "devices.yaml"


@dataclass(frozen=True)
class LavaSpec:
    """One LAVA device as pytest-lkft runs it."""

    name: str  # lava:<name>
    device_type: str
    template: str
    provision_as: str
    console: str
    prompts: tuple[str, ...] = ()
    qemu: QemuSpec | None = field(default=None, compare=False)

    @property
    def arch(self) -> str:
        """The kernel's architecture: its QEMU twin's."""
        return load_devices().get(self.provision_as).arch


def is_lava(name: str) -> bool:
    """True for a `lava:` device name."""
    return name.startswith(PREFIX)


@cache
def _table(path: Path = DEVICES_FILE) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    data = yaml.safe_load(path.read_text()) or {}
    return dict(data.get("defaults") or {}), dict(data.get("devices") or {})


def known_names() -> list[str]:
    """Every `lava:` name: the data file's and one per QEMU device."""
    _, named = _table()
    return sorted({*(PREFIX + n for n in named), *(PREFIX + n for n in load_devices().devices)})


def lava_spec(name: str) -> LavaSpec:
    """The spec of `lava:<name>`; a one-line UserError naming the known ones."""
    short = name.removeprefix(PREFIX)
    defaults, named = _table()
    qemu_table = load_devices().devices
    if short in named:
        entry = {**defaults, **named[short]}
    elif short in qemu_table:
        entry = {**defaults, "device_type": "qemu", "template": "qemu", "provision_as": short}
    else:
        raise UserError(f"unknown LAVA device {name!r}; known: {', '.join(known_names())} "
                        f"(add one to {DEVICES_FILE})")
    twin = load_devices().get(str(entry["provision_as"]))
    qemu = twin if entry["template"] == "qemu" else None
    return LavaSpec(name=name, device_type=str(entry["device_type"]),
                    template=str(entry["template"]), provision_as=twin.name,
                    console=str(entry.get("console") or twin.console),
                    prompts=tuple(str(p) for p in entry.get("prompts", [])), qemu=qemu)
