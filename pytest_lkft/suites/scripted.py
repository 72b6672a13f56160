"""The kit of the suites that run a Debian tool through a script (`pytest_lkft.run.scripts`):
the script's setup command, and the check, before the device boots, of what the suite
needs (`suite-needs.yaml`) against what is known of the rootfs and the kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_lkft.provision.debiandevice import missing_options
from pytest_lkft.pytestplugin.devicekinds import kind_of
from pytest_lkft.pytestplugin.naming import suite_name
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.pytestplugin.provisioning import device_artifacts
from pytest_lkft.pytestplugin.qemu import QemuKind
from pytest_lkft.run.scripts import script_path, setup_command
from pytest_lkft.settings.rootfs import SuiteNeeds, suite_needs


def script_setup(suite: str) -> Callable[[pytest.Config], str]:
    """The `setup` of an `lkft_parsed` marker: write the suite's script to the device."""
    def setup(config: pytest.Config) -> str:
        return setup_command(suite_needs(suite), config.stash[SETTINGS_KEY].parameters)
    return setup


def script_command(suite: str) -> str:
    """The `command` of an `lkft_parsed` marker: run the suite's script."""
    return f"sh {script_path(suite)}"


def scripted_suite(suite: str, fmt: str, timeout: float,
                   *fixtures: str) -> list[pytest.MarkDecorator]:
    """A scripted suite module's `pytestmark`: its name, its script parsed as `fmt` within
    `timeout` seconds, and its needs checked (after `fixtures`) before anything boots."""
    return [
        pytest.mark.lkft_suite(suite),
        pytest.mark.lkft_parsed(format=fmt, command=script_command(suite),
                                setup=script_setup(suite), timeout=timeout),
        pytest.mark.usefixtures(*fixtures, "lkft_needs"),
    ]


@pytest.fixture(scope="module")
def lkft_needs(request: pytest.FixtureRequest, lkft_device_name: str) -> SuiteNeeds:
    """What this suite needs; every case skips, before the device boots, when the rootfs
    or the kernel is known to lack it (the script checks the rest on the device)."""
    needs = suite_needs(suite_name(request.node))
    reason = unmet(request.config, lkft_device_name, needs)
    if reason:
        pytest.skip(reason)
    return needs


def unmet(config: pytest.Config, device: str, needs: SuiteNeeds) -> str:
    """Why the device cannot run the suite, "" when nothing known is missing."""
    settings = config.stash[SETTINGS_KEY]
    if needs.packages and settings.rootfs is None:
        return (f"{needs.name} runs {', '.join(needs.commands)}, which the busybox initramfs "
                f"lacks: pass --lkft-rootfs=debian")
    if not isinstance(kind_of(config, device), QemuKind):
        return ""  # a board: its kernel is known on the device only
    artifacts = device_artifacts(config, device)
    missing = missing_options(artifacts.kernel_config, needs.kconfig)
    if not missing:
        return ""
    reason = f"the kernel lacks {', '.join(missing)} (see {artifacts.kernel_config})"
    if needs.fragment:
        reason += f"; build one that has it: --lkft-tree SRC --lkft-kconfig-add={needs.fragment}"
    return reason
