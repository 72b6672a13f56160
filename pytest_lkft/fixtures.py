"""The fixtures a suite uses: `device` (booted once per suite run), `lkft_artifact`.

Thin: each one delegates to the library (provision, devices, artifacts). Devices are
parametrized per `--lkft-device` at module scope, so a suite module boots each device
once and all its cases share that boot.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from collections.abc import Iterator

import pytest

from pytest_lkft.cache_fixtures import CACHE_KEY
from pytest_lkft.config import Settings
from pytest_lkft.devices.base import Device
from pytest_lkft.devices.qemu import DeviceArtifacts, QemuDevice
from pytest_lkft.errors import LkftError
from pytest_lkft.lab import load_devices
from pytest_lkft.provision import provision

SETTINGS_KEY = pytest.StashKey[Settings]()
ARTIFACTS_KEY = pytest.StashKey[dict[str, DeviceArtifacts | str]]()
NO_DEVICE = "no device given: pass --lkft-device NAME (e.g. --lkft-device=qemu-arm64)"


def suite_name(node: pytest.Item | pytest.Collector) -> str:
    """The SQUAD suite of a test: its `lkft_suite` marker, else the module name."""
    marker = node.get_closest_marker("lkft_suite")
    if marker is not None:
        return str(marker.args[0])
    module = getattr(node, "module", None)
    name = module.__name__.rsplit(".", 1)[-1] if module else node.name
    return name.removeprefix("test_")


def case_name(item: pytest.Item) -> str:
    """The test's name inside its suite: the `case` parameter, else the function name."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "case" in callspec.params:
        return str(callspec.id_of("case") if hasattr(callspec, "id_of") else
                   callspec.params["case"])
    return getattr(item, "originalname", item.name).removeprefix("test_")


def _suite_run(item: pytest.Item) -> tuple[str, str]:
    callspec = getattr(item, "callspec", None)
    device_name = callspec.params.get("lkft_device_name", "") if callspec else ""
    return str(item.path), str(device_name)


def crash_checks_last(items: list[pytest.Item]) -> list[pytest.Item]:
    """Put each suite run's crash check right after that run's last case."""
    checks = {_suite_run(i): i for i in items if i.get_closest_marker("lkft_crash_check")}
    cases = [i for i in items if i.get_closest_marker("lkft_crash_check") is None]
    last = {_suite_run(item): index for index, item in enumerate(cases)}
    ordered: list[pytest.Item] = []
    for index, item in enumerate(cases):
        ordered.append(item)
        run = _suite_run(item)
        if last[run] == index and run in checks:
            ordered.append(checks.pop(run))
    return ordered + list(checks.values())  # suite runs whose cases were all deselected


class TerminalStream:
    """Console text to the terminal, past pytest's output capture (`--lkft-console`, `-s`)."""

    def __init__(self, config: pytest.Config) -> None:
        self.capture = config.pluginmanager.get_plugin("capturemanager")

    def write(self, text: str) -> int:
        with self.capture.global_and_fixture_disabled() if self.capture else nullcontext():
            sys.stdout.write(text)
            sys.stdout.flush()
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(scope="session")
def lkft_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved device options."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def lkft_device_name() -> str:
    """Replaced by the `--lkft-device` parametrization; reached only with no device given."""
    pytest.skip(NO_DEVICE)


def device_artifacts(config: pytest.Config, name: str) -> DeviceArtifacts:
    """Provision `name` once per process; a failure is remembered and re-raised as one line."""
    known = config.stash.setdefault(ARTIFACTS_KEY, {})
    if name not in known:
        cache = config.stash[CACHE_KEY]
        try:
            known[name] = provision(config.stash[SETTINGS_KEY], load_devices().get(name),
                                    cache.fetch, cache.root)
        except LkftError as error:
            known[name] = f"{name}: {error}"
    found = known[name]
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return found


@pytest.fixture(scope="module")
def device(request: pytest.FixtureRequest, lkft_device_name: str) -> Iterator[Device]:
    """The device of this suite run: booted by its first test, stopped at the suite's end."""
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    artifacts = device_artifacts(config, lkft_device_name)
    run_dir = settings.results_dir / lkft_device_name / suite_name(request.node)
    stream = TerminalStream(config) if settings.console else None
    booted = QemuDevice(load_devices().get(lkft_device_name), artifacts, run_dir,
                        settings.timeouts, stream)
    try:
        yield booted
    finally:
        booted.close()


@pytest.fixture(autouse=True)
def _lkft_case(request: pytest.FixtureRequest) -> None:
    """Label a device test for reporting; refuse to run it on a dead device."""
    if "device" not in request.fixturenames:
        return
    dev: Device = request.getfixturevalue("device")
    item = request.node
    suite, case = suite_name(item), case_name(item)
    item.user_properties += [("lkft.suite", suite), ("lkft.test", case),
                             ("lkft.device", dev.name), ("lkft.console_log", str(dev.console_log))]
    if item.get_closest_marker("lkft_crash_check") is not None and not dev.booted:
        pytest.skip("no case of this suite ran on the device")
    dev.boot()
    item.user_properties += [(f"lkft.meta.{k}", v) for k, v in sorted(dev.metadata.items()) if v]
    dev.set_context(f"{suite}/{case}")
    if dev.broken and item.get_closest_marker("lkft_device_check") is None:
        first = dev.broken.splitlines()[0]
        pytest.fail(f"not run: the device is broken ({first})", pytrace=False)
