"""build: each target of the --lkft-tree kernel build is a result (tuxmake's view).

`build/<target>` passes or fails with the build's first error lines; the compiler warnings
are the metric `warnings`. Without --lkft-tree there is nothing to report.
"""

from __future__ import annotations

import pytest

from pytest_lkft.pytestplugin.build import BUILD_SETTINGS_KEY, kernel_build_for, target_properties
from pytest_lkft.pytestplugin.devicekinds import device_arch
from pytest_lkft.suites import SETTINGS_KEY

pytestmark = pytest.mark.lkft_suite("build")
NO_TREE = "nothing built: pass --lkft-tree DIR (and --lkft-kconfig) to build a kernel"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = metafunc.config.stash.get(BUILD_SETTINGS_KEY, None)
    devices = metafunc.config.stash[SETTINGS_KEY].devices
    if settings is None or not devices:
        metafunc.parametrize("case", [pytest.param("none", marks=pytest.mark.skip(NO_TREE))])
        return
    metafunc.parametrize("case", list(settings.targets))  # `case`: the test's name, build/<case>


def test_target(request: pytest.FixtureRequest, lkft_device_name: str, case: str) -> None:
    """`case` is the build target."""
    result = kernel_build_for(request.config, device_arch(request.config, lkft_device_name))
    assert result is not None
    request.node.user_properties += target_properties(result, case)
    status = result.status.get(case, "SKIP")
    if status == "SKIP":
        pytest.skip(f"{case} was not built (not needed or an earlier target failed)")
    if status != "PASS":
        first = result.first_errors or "no error line in the log"
        pytest.fail(f"{case} failed:\n{first}\nsee {result.log}", pytrace=False)
