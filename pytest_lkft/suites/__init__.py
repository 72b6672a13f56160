"""The kit every suite in `testsuites/` uses: a command as a case, the run of a parsed
suite and its cases, the crash check that ends every suite.

A suite is `testsuites/test_<name>.py` importing what it needs from here; a suite that
needs something laid over the rootfs or learned before collection has one module beside
this one (`ltp`, `kselftest`, `modules`). Recipe: docs/architecture.md.
"""

from __future__ import annotations

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.devices.console import CommandResult
from pytest_lkft.errors import DeviceBroken
from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.pytestplugin.fixtures import device_for
from pytest_lkft.pytestplugin.items import CaseFailed, metric_properties, replay
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.pytestplugin.parsed import check_run
from pytest_lkft.run.suite import SuiteRun
from pytest_lkft.suites.kselftest import collections as kselftest_collections
from pytest_lkft.suites.kselftest import install as kselftest_install
from pytest_lkft.suites.ltp import cases as ltp_cases
from pytest_lkft.suites.ltp import setup as ltp_setup
from pytest_lkft.suites.ltp import skipped as ltp_skipped
from pytest_lkft.suites.modules import modules_under_test
from pytest_lkft.suites.scripted import (
    lkft_needs,
    script_command,
    script_setup,
    scripted_suite,
)

__all__ = ["OUTPUT_TAIL", "SETTINGS_KEY", "device_for", "kselftest_collections",
           "kselftest_install", "lkft_case", "lkft_needs", "ltp_cases", "ltp_setup",
           "ltp_skipped", "modules_under_test", "run_case", "script_command", "script_setup",
           "scripted_suite", "test_case", "test_crash", "test_run"]

OUTPUT_TAIL = 20


def run_case(device: Device, command: str, item: pytest.Item) -> None:
    """Run `command` on `device` as this case: pass on exit 0, fail with its output else."""
    try:
        result: CommandResult | DeviceBroken = device.run(command)
    except DeviceBroken as error:
        result = error
    if isinstance(result, DeviceBroken):  # out of the handler: the message once, not chained
        pytest.fail(str(result), pytrace=False)
    item.add_report_section("call", "console", f"$ {command}\n{result.output}")
    if result.exit_status != 0:
        tail = "\n".join(result.output.splitlines()[-OUTPUT_TAIL:])
        pytest.fail(f"$ {command}\nexit status {result.exit_status}\n{tail}", pytrace=False)


@pytest.mark.lkft_run_check
def test_run(request: pytest.FixtureRequest, lkft_suite_run: SuiteRun, device: Device) -> None:
    """`<suite>/run`: the suite ran on the device and its output parsed."""
    check_run(request, lkft_suite_run, device)


@pytest.fixture
def lkft_case(lkft_suite_run: SuiteRun, lkft_case_name: str, device: Device) -> Case:
    """The case as the suite run reported it; a missing or crashed case errors in setup."""
    crash = device.crashes()[0].describe().splitlines()[0] if device.crashes() else ""
    case = lkft_suite_run.case(lkft_case_name, crash)
    if case.result is Result.ERROR:
        pytest.fail(CaseFailed(case).describe(), pytrace=False)
    return case


def test_case(lkft_case: Case, request: pytest.FixtureRequest) -> None:
    """One case of a parsed suite, as its run reported it (its metrics too)."""
    request.node.user_properties += metric_properties(lkft_case)
    try:
        replay(lkft_case)
        return
    except CaseFailed as failed:
        message = failed.describe()
    pytest.fail(message, pytrace=False)  # the case's log, not a Python traceback


@pytest.mark.lkft_device_check
@pytest.mark.lkft_crash_check
def test_crash(device: Device) -> None:
    """No kernel crash or warning on the console during this suite's run (boot included)."""
    crashes = device.crashes()
    if crashes:
        pytest.fail("\n\n".join(c.describe() for c in crashes), pytrace=False)
