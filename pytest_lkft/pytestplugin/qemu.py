"""The QEMU device kind: the devices of the device table (`qemu-devices.yaml`).

Checked before anything boots: QEMU installed (naming its apt package), a given kernel
built for the device's architecture. Without xdist the first device starts booting while
pytest collects (`preboot`), and its first suite run takes that device.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.devices.console import TextSink
from pytest_lkft.devices.qemu import (
    QemuDevice,
    check_cmdline,
    kernel_cmdline,
    qemu_package_hint,
)
from pytest_lkft.errors import UserError
from pytest_lkft.provision.device import check_kernel
from pytest_lkft.pytestplugin.build import BUILD_SETTINGS_KEY
from pytest_lkft.pytestplugin.cache import CACHE_KEY
from pytest_lkft.pytestplugin.devicekinds import kind_of
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.pytestplugin.preboot import Preboot, wanted
from pytest_lkft.pytestplugin.provisioning import (
    STAGES_KEY,
    device_artifacts,
    known_artifacts,
)
from pytest_lkft.pytestplugin.terminal import terminal
from pytest_lkft.settings.device import Settings, is_url
from pytest_lkft.settings.devices import load_devices

PREBOOT_KEY = pytest.StashKey[Preboot]()


class QemuKind:
    """QEMU guests, one per suite run; see `pytest_lkft.pytestplugin.devicekinds`."""

    name = "qemu"

    def configure(self, config: pytest.Config) -> None:
        load_devices()  # a bad table stops the run here, in one line

    def names(self) -> list[str]:
        return sorted(load_devices().devices)

    def claims(self, device: str) -> bool:
        return device in load_devices().devices

    def arch(self, device: str) -> str:
        return load_devices().get(device).arch

    def check(self, config: pytest.Config, devices: Sequence[str]) -> None:
        check_qemu_devices(config.stash[SETTINGS_KEY], devices)

    def make(self, request: pytest.FixtureRequest, device: str, suite: str, run_dir: Path,
             stream: TextSink | None) -> Device:
        config = request.config
        preboot = config.stash.get(PREBOOT_KEY, None)
        claimed = preboot.claim(device, run_dir) if preboot else None
        artifacts = device_artifacts(config, device)
        settings = config.stash[SETTINGS_KEY]
        return claimed or QemuDevice(load_devices().get(device), artifacts, run_dir,
                                     settings.timeouts, stream)


def check_qemu_devices(settings: Settings, devices: Sequence[str]) -> None:
    """Refuse a missing QEMU binary, a kernel command line too long for the device, and a
    given kernel that is no kernel image or one built for another architecture."""
    for name in devices:
        spec = load_devices().get(name)
        binary = settings.qemu_binary or spec.qemu
        if shutil.which(binary) is None:
            raise UserError(qemu_package_hint(spec, binary))
        check_cmdline(spec, kernel_cmdline(spec, [], settings.boot_args),
                      settings.source("lkft_boot_args"))
        if settings.kernel and not is_url(settings.kernel):
            check_kernel(spec, Path(settings.kernel),
                         f"{settings.source('lkft_kernel')} {settings.kernel}")


def start_preboot(config: pytest.Config) -> None:
    """Boot the first device in the background while pytest collects (see `preboot`)."""
    settings = config.stash[SETTINGS_KEY]
    xdist = bool(getattr(config.option, "numprocesses", None)) or hasattr(config, "workerinput")
    # a kernel or LTP build outlasts startup
    builds = config.stash.get(BUILD_SETTINGS_KEY, None) is not None or bool(settings.ltp_src)
    if builds or not wanted(settings, bool(config.option.collectonly), xdist):
        return
    if not isinstance(kind_of(config, settings.devices[0]), QemuKind):
        return  # a board or a device of another kind: nothing to start early
    cache = config.stash[CACHE_KEY]
    stream = terminal(config) if settings.console else None
    stages = config.stash[STAGES_KEY]
    preboot = Preboot(settings, settings.devices[0], cache.fetch, cache.root, stream,
                      known_artifacts(config), stages)
    config.stash[PREBOOT_KEY] = preboot
    config.add_cleanup(preboot.close)


@pytest.hookimpl(trylast=True)
def pytest_lkft_device_kinds(config: pytest.Config) -> list[QemuKind]:
    """QEMU comes last: a plugin's kind or a lab file's board may use a table name."""
    return [QemuKind()]
