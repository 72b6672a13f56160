"""modules: load and unload each module of the --lkft-modules tarball (LKFT's modules test)."""

from __future__ import annotations

import shlex

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.suites import modules_under_test, run_case

pytestmark = pytest.mark.lkft_suite("modules")
NO_MODULES = "no modules tarball: pass --lkft-modules"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        names = modules_under_test(metafunc.config)
        skipped = pytest.param("none", marks=pytest.mark.skip(reason=NO_MODULES))
        metafunc.parametrize("case", names or [skipped])


def command(module: str) -> str:
    """Load the module, then unload it (a name from the tarball is one word, never a command)."""
    quoted = shlex.quote(module)
    return f"modprobe {quoted} && modprobe -r {quoted}"


@pytest.mark.lkft_commands(lambda params: [command(params["case"])])
def test_module(device: Device, case: str, request: pytest.FixtureRequest) -> None:
    run_case(device, command(case), request.node)


from pytest_lkft.suites import test_crash  # noqa: E402, F401  (every suite ends with it)
