"""boot: the kernel reaches a shell on the console; boot time is a metric."""

from __future__ import annotations

import pytest

from pytest_lkft.devices.base import Device

pytestmark = pytest.mark.lkft_suite("boot")


@pytest.mark.lkft_device_check
def test_boot(device: Device, request: pytest.FixtureRequest) -> None:
    if device.boot_error is not None:
        pytest.fail(f"boot failed: {device.boot_error}", pytrace=False)
    request.node.user_properties.append(("lkft.metric.boot-time", f"{device.boot_time:.2f} s"))


from pytest_lkft.suites import test_crash  # noqa: E402, F401  (every suite ends with it)
