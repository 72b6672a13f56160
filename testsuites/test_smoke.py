"""smoke: a list of shell commands (smoke.yaml), each its own case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_lkft.devices.base import Device
from pytest_lkft.suites import run_case

pytestmark = pytest.mark.lkft_suite("smoke")
COMMANDS: dict[str, str] = yaml.safe_load((Path(__file__).parent / "smoke.yaml").read_text())


@pytest.mark.parametrize("case", list(COMMANDS))
@pytest.mark.lkft_commands(lambda params: [COMMANDS[params["case"]]])
def test_smoke(device: Device, case: str, request: pytest.FixtureRequest) -> None:
    run_case(device, COMMANDS[case], request.node)


from pytest_lkft.suites import test_crash  # noqa: E402, F401  (every suite ends with it)
