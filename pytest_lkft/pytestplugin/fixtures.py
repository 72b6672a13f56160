"""The fixtures a suite uses: `device` (booted once per suite run), `lkft_suite_run`.

Thin: each one delegates to the library (provision, devices, the suite run). Devices are
parametrized per `--lkft-device` at module scope, so a suite module boots each device
once and all its cases share that boot. The device's kind (QEMU, a labgrid board, ...)
makes it: see `pytest_lkft.pytestplugin.devicekinds`.

A device that cannot be made (nothing to boot, no place) or does not boot is one error,
reported by the first test that meets it, with the whole reason; every later test of that
device in this process is skipped as its consequence, naming that first test, and the
device is not booted again (the same artifacts would fail the same way).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import pytest

from pytest_lkft.devices.base import Device, UnavailableDevice
from pytest_lkft.pytestplugin.devicekinds import kind_of
from pytest_lkft.pytestplugin.naming import case_name, fill_command, suite_name, suite_run
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.pytestplugin.terminal import terminal
from pytest_lkft.run.suite import SuiteRun, run_suite
from pytest_lkft.settings.device import Settings

USED_KEY = pytest.StashKey[set[tuple[str, str, str]]]()  # suite runs a case used
FAILED_KEY = pytest.StashKey[dict[str, str]]()  # device -> the test that reported its failure
NO_DEVICE = "no device given: pass --lkft-device NAME (e.g. --lkft-device=qemu-arm64)"
CONSEQUENCE = "not run: {device} failed earlier in this run (see {first})"


@pytest.fixture(scope="session")
def lkft_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved device options."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def lkft_device_name() -> str:
    """Replaced by the `--lkft-device` parametrization; reached only with no device given."""
    pytest.skip(NO_DEVICE)


@pytest.fixture(scope="module")
def device(request: pytest.FixtureRequest, lkft_device_name: str) -> Iterator[Device]:
    """The device of this suite run: booted by its first test, stopped at the suite's end."""
    yield from device_for(request, lkft_device_name, suite_name(request.node))


def device_for(request: pytest.FixtureRequest, lkft_device_name: str,
               suite: str) -> Iterator[Device]:
    """A device for `suite`'s run (results in `<results>/<device>/<suite>`), closed after."""
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    run_dir = settings.results_dir / lkft_device_name / suite
    stream = terminal(config) if settings.console else None
    try:
        made = kind_of(config, lkft_device_name).make(request, lkft_device_name, suite, run_dir,
                                                      stream)
    except pytest.fail.Exception as error:  # nothing to boot, no place: `_lkft_case` says so
        made = UnavailableDevice(lkft_device_name, run_dir, str(error.msg))
    try:
        yield made
    finally:
        made.close()


_RUNS: weakref.WeakKeyDictionary[Device, dict[str, SuiteRun]] = weakref.WeakKeyDictionary()


@pytest.fixture
def lkft_suite_run(request: pytest.FixtureRequest, device: Device) -> SuiteRun:
    """This suite's run on the device, parsed once (see `pytest_lkft.run.suite`).

    Keyed by suite name, so one module can hold several suites (`kselftest-{collection}`).
    The marker's `setup(config)`, when it gives a command, runs on the device first; its
    `skips(config)` -> {suite: {case: reason}} are skips the device never runs.
    """
    marker = request.node.get_closest_marker("lkft_parsed")
    if marker is None:
        pytest.fail(f"{request.node.nodeid}: lkft_suite_run needs the lkft_parsed marker",
                    pytrace=False)
    suite, runs = suite_name(request.node), _RUNS.setdefault(device, {})
    if suite not in runs:
        device.boot()
        settings = request.config.stash[SETTINGS_KEY]
        command, setup = marker.kwargs.get("command"), marker.kwargs.get("setup")
        resume, skips = marker.kwargs.get("resume"), marker.kwargs.get("skips")
        runs[suite] = run_suite(device, suite,
                                fill_command(command, request.node) if command else None,
                                marker.kwargs.get("format", "auto"),
                                settings.timeouts.for_suite(marker.kwargs.get("timeout")),
                                setup(request.config) if callable(setup) else None,
                                fill_command(resume, request.node) if resume else None,
                                skips(request.config).get(suite) if callable(skips) else None)
    return runs[suite]


@pytest.fixture(autouse=True)
def _lkft_case(request: pytest.FixtureRequest) -> None:
    """Label a device test for reporting; refuse to run it on a dead device."""
    if "device" not in request.fixturenames:
        return
    item = request.node
    used = request.config.stash.setdefault(USED_KEY, set())
    if item.get_closest_marker("lkft_crash_check") is not None and suite_run(item) not in used:
        pytest.skip("no case of this suite ran on the device")  # and do not boot it for this
    used.add(suite_run(item))
    dev: Device = request.getfixturevalue("device")
    failed = request.config.stash.setdefault(FAILED_KEY, {})
    parsed = item.get_closest_marker("lkft_parsed")
    # A suite parsed from the boot's console (KUnit) reads its cases from a boot that
    # crashed too: the case running when the kernel died is the one that crashed it.
    from_console = (parsed is not None and parsed.kwargs.get("command") is None
                    and item.get_closest_marker("lkft_crash_check") is None)
    if dev.name in failed and not from_console:  # not booted again: it would fail the same way
        pytest.skip(CONSEQUENCE.format(device=dev.name, first=failed[dev.name]))
    suite, case = suite_name(item), case_name(item)
    item.user_properties += [("lkft.console_log", str(dev.console_log))]
    dev.boot()
    item.user_properties += [(f"lkft.meta.{k}", v) for k, v in sorted(dev.metadata.items()) if v]
    if dev.boot_error is not None:  # the first test to meet it says why
        failed.setdefault(dev.name, item.nodeid)
        if not (from_console and _console_seen(dev)):
            _report_failed_device(item, dev)
    if item.get_closest_marker("lkft_crash_check") is not None and not _console_seen(dev):
        pytest.fail(f"no console to check for crashes: {dev.console_log} is empty",
                    pytrace=False)  # an error, never a pass
    dev.set_context(f"{suite}/{case}")
    # A parsed suite's case replays what its run saw (the console, or the command's
    # output up to where the device broke): it runs nothing, so a broken device is fine.
    replays = parsed is not None and (parsed.kwargs.get("command") is None
                                      or "lkft_case_name" in item.fixturenames)
    if dev.broken and item.get_closest_marker("lkft_device_check") is None and not replays:
        first = dev.broken.splitlines()[0]
        pytest.fail(f"not run: the device is broken ({first})", pytrace=False)


def _console_seen(dev: Device) -> bool:
    try:
        return dev.console_log.stat().st_size > 0
    except OSError:
        return False


def _report_failed_device(item: pytest.Item, dev: Device) -> None:
    """An error with the whole reason; the boot test says it in its own words."""
    if isinstance(dev, UnavailableDevice):
        pytest.fail(str(dev.boot_error), pytrace=False)
    if item.get_closest_marker("lkft_device_check") is None:
        pytest.fail(f"{dev.name} did not boot: {dev.boot_error}", pytrace=False)
