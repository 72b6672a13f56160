"""What each device boots, provisioned once per process: the user's artifacts, the defaults,
or the session's kernel build.

A failure is kept as a value (`ProvisionFailure`) and given again to every suite run of
that device: an error in one line, or a skip when the kernel build failed (the build's own
`build/<target>` results say why).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NoReturn

import pytest

from pytest_lkft.errors import LkftError
from pytest_lkft.provision.device import DeviceArtifacts, provision
from pytest_lkft.provision.disk import KernelFiles
from pytest_lkft.provision.stages import Stage
from pytest_lkft.pytestplugin.build import (
    build_properties,
    device_overlays,
    failure_reason,
    kernel_build_for,
)
from pytest_lkft.pytestplugin.cache import CACHE_KEY
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.settings.devices import QemuSpec, load_devices


@dataclass(frozen=True)
class ProvisionFailure:
    """Why a device has nothing to boot; `skip` when its kernel build failed."""

    reason: str
    skip: bool = False

    def report(self) -> NoReturn:
        """Fail (or skip) the running test with the reason."""
        if self.skip:
            pytest.skip(self.reason)
        pytest.fail(self.reason, pytrace=False)


Provisioned = DeviceArtifacts | ProvisionFailure
ARTIFACTS_KEY = pytest.StashKey[dict[str, Provisioned]]()
STAGES_KEY = pytest.StashKey[list[Stage]]()  # the built-in stages and plugins'


def known_artifacts(config: pytest.Config) -> dict[str, Provisioned]:
    """Device name -> what was provisioned for it in this process (the pre-boot adds to it)."""
    return config.stash.setdefault(ARTIFACTS_KEY, {})


def device_artifacts(config: pytest.Config, name: str,
                     spec: QemuSpec | None = None) -> DeviceArtifacts:
    """Provision QEMU device `name` (as `spec`, default the table's) once per process; a
    failure fails or skips the test.

    With --lkft-tree the device boots what was built (kernel, modules, kselftests).
    """
    known = known_artifacts(config)
    if name not in known:
        try:
            known[name] = _provision(config, name, spec or load_devices().get(name))
        except LkftError as error:
            known[name] = ProvisionFailure(f"{name}: {error}")
    found = known[name]
    if isinstance(found, ProvisionFailure):
        found.report()
    return found


def _provision(config: pytest.Config, name: str, spec: QemuSpec) -> Provisioned:
    settings, cache = config.stash[SETTINGS_KEY], config.stash[CACHE_KEY]
    built = kernel_build_for(config, spec.arch)
    stages = config.stash[STAGES_KEY]
    if built is None:
        return provision(settings, spec, cache.fetch, cache.root, stages)
    if not built.passed or built.kernel is None:
        return ProvisionFailure(f"{name}: {failure_reason(built)}", skip=True)
    modules = str(built.modules) if built.modules else settings.modules
    artifacts = provision(dataclasses.replace(settings, kernel=str(built.kernel), modules=modules),
                          spec, cache.fetch, cache.root, stages,
                          KernelFiles(built.modules, built.config),
                          device_overlays(built, cache.root, settings.rootfs is None))
    artifacts.metadata.update({k.removeprefix("lkft.meta."): v
                               for k, v in build_properties(built)})
    return artifacts
