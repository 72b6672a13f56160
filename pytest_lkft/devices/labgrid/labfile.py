"""Lab files (`lab/*.yaml`): device names mapped to the labgrid places that run them.

Each device gives the tags of the places that can run it, the labgrid drivers bound to a
place's resources, how it boots (`firmware`: power-on boots what the tftp directory
holds; `uboot`: stop autoboot, load over tftp) and the kernel's console. Plain data:
loading a lab file needs neither labgrid nor pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_lkft.errors import UserError

BOOT_METHODS = ("firmware", "uboot")
DEFAULT_DRIVERS: dict[str, dict[str, Any]] = {"NetworkPowerDriver": {}, "SerialDriver": {}}


@dataclass(frozen=True)
class BootSpec:
    """How a board gets from power-on to the kernel."""

    method: str = "firmware"
    interrupt: str = "Hit any key to stop autoboot"
    prompt: str = "=> "
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabDevice:
    """One device of a lab file: which places run it and how it boots."""

    name: str
    arch: str
    provision_as: str
    tags: dict[str, str]
    console: str
    boot: BootSpec = BootSpec()
    drivers: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_DRIVERS))

    def tag_filter(self) -> list[str]:
        """The tags as labgrid-client's KEY=VALUE filters."""
        return [f"{key}={value}" for key, value in sorted(self.tags.items())]


def _device(path: Path, name: str, entry: dict[str, Any], defaults: dict[str, Any]) -> LabDevice:
    merged = {**defaults, **(entry or {})}
    boot_entry = dict(merged.pop("boot", None) or {})
    boot_entry["commands"] = tuple(str(c) for c in boot_entry.get("commands", ()))
    boot = BootSpec(**boot_entry)
    if boot.method not in BOOT_METHODS:
        raise UserError(f"{path}: {name}: unknown boot method {boot.method!r}; "
                        f"use one of {', '.join(BOOT_METHODS)}")
    tags = {str(k): str(v) for k, v in (merged.pop("tags", None) or {}).items()}
    if not tags:
        raise UserError(f"{path}: {name} has no tags; give the tags of its places, "
                        "e.g. tags: {board: rpi4}")
    return LabDevice(name=name, boot=boot, tags=tags, **merged)


def load_lab(path: Path) -> dict[str, LabDevice]:
    """Read a lab file: its devices by name; one-line UserError when it is bad."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserError(f"--lkft-lab {path}: {error.strerror}; check the path") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
        raise UserError(f"{path} has no `devices:` mapping; see lab/labgrid-standin.yaml")
    defaults = data.get("defaults") or {}
    try:
        return {str(name): _device(path, str(name), entry, defaults)
                for name, entry in data["devices"].items()}
    except TypeError as error:
        raise UserError(f"{path}: bad device entry ({error}); see docs/lab.md") from None
