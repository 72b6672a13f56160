"""The registry of device kinds that the `device` fixture consults.

A device kind (QEMU from the device table, labgrid boards of a lab file, ...) says which
`--lkft-device` names it owns, checks them before anything boots, and makes a `Device`
for each suite run. Kinds come from the `pytest_lkft_device_kinds` hook: pytest-lkft's
own (`qemu`, `labgrid`) are implemented `trylast`, so a plugin's or conftest's kind is
asked first. Recipe: docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.devices.console import TextSink
from pytest_lkft.errors import UserError

KINDS_KEY = pytest.StashKey[list["DeviceKind"]]()


class DeviceKind(Protocol):
    """A kind of device.

    Lifecycle: `configure(config)` once per process (read its options, a lab file; a
    `UserError` stops the run with one line); `claims(name)` for each device name;
    `check(names)` with the names it claimed, before anything boots; `make(request, ...)`
    for each suite run of one of them (the `device` fixture's request: its module, the
    session's items), whose `Device` the fixture boots, uses and closes.
    """

    name: str

    def configure(self, config: pytest.Config) -> None: ...
    def names(self) -> list[str]: ...
    def claims(self, device: str) -> bool: ...
    def arch(self, device: str) -> str: ...
    def check(self, config: pytest.Config, devices: Sequence[str]) -> None: ...
    def make(self, request: pytest.FixtureRequest, device: str, suite: str, run_dir: Path,
             stream: TextSink | None) -> Device: ...


def configure_kinds(config: pytest.Config) -> list[DeviceKind]:
    """Ask the hook for the kinds, configure each, keep them for this run."""
    kinds = [kind for found in config.hook.pytest_lkft_device_kinds(config=config)
             for kind in found]
    for kind in kinds:
        kind.configure(config)
    config.stash[KINDS_KEY] = kinds
    return kinds


def kind_of(config: pytest.Config, device: str) -> DeviceKind:
    """The kind that owns `device`; UserError listing the valid names when none does."""
    kinds = config.stash[KINDS_KEY]
    for kind in kinds:
        if kind.claims(device):
            return kind
    valid = sorted({name for kind in kinds for name in kind.names()})
    raise UserError(f"unknown device {device!r}; valid devices: {', '.join(valid)}")


def check_devices(config: pytest.Config, devices: Sequence[str]) -> None:
    """Check every device with the kind that owns it (unknown names refused first)."""
    owned: dict[int, tuple[DeviceKind, list[str]]] = {}
    for device in devices:
        kind = kind_of(config, device)
        owned.setdefault(id(kind), (kind, []))[1].append(device)
    for kind, names in owned.values():
        kind.check(config, names)


def device_arch(config: pytest.Config, device: str) -> str:
    """The kernel architecture `device` boots."""
    return kind_of(config, device).arch(device)
