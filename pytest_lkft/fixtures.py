"""The fixtures a suite uses: `device` (booted once per suite run), `lkft_artifact`.

Thin: each one delegates to the library (provision, devices, artifacts). Devices are
parametrized per `--lkft-device` at module scope, so a suite module boots each device
once and all its cases share that boot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import weakref
from collections.abc import Iterator

import pytest

from pytest_lkft.build_fixtures import (
    BUILD_SETTINGS_KEY,
    build_properties,
    device_overlays,
    failure_reason,
    kernel_build_for,
)
from pytest_lkft.cache_fixtures import CACHE_KEY
from pytest_lkft.config import Settings
from pytest_lkft.devices.base import Device
from pytest_lkft.devices.lava.specs import is_lava, lava_spec
from pytest_lkft.devices.qemu import DeviceArtifacts, QemuDevice
from pytest_lkft.errors import LkftError
from pytest_lkft.lab import load_devices
from pytest_lkft.lab_fixtures import lab_device, make_lab_device
from pytest_lkft.lava_fixtures import make_lava_device
from pytest_lkft.preboot import Preboot, wanted
from pytest_lkft.provision import provision
from pytest_lkft.suiterun import (
    EXTRA_CASES,
    SuiteRun,
    encode_extras,
    extra_cases,
    known_cases,
    remember_cases,
    run_suite,
)
from pytest_lkft.terminal import terminal

SETTINGS_KEY = pytest.StashKey[Settings]()
ARTIFACTS_KEY = pytest.StashKey[dict[str, DeviceArtifacts | str]]()
PREBOOT_KEY = pytest.StashKey[Preboot]()
BUILD_FAILED = "build failed: "  # marks a remembered provisioning failure that skips
USED_KEY = pytest.StashKey[set[tuple[str, str, str]]]()  # suite runs a case used
PLACEHOLDER = re.compile(r"(-?)\{(\w+)\}")
NO_DEVICE = "no device given: pass --lkft-device NAME (e.g. --lkft-device=qemu-arm64)"


def fill(template: str, node: pytest.Item | pytest.Collector) -> str:
    """`kselftest-{collection}` with the test's parameters; unknown or empty ones dropped
    with their leading dash (the module-level name of a per-collection suite, and its
    placeholder when there are no collections, is `kselftest`)."""
    params = getattr(getattr(node, "callspec", None), "params", {})
    return PLACEHOLDER.sub(lambda m: f"{m.group(1)}{params[m.group(2)]}"
                           if params.get(m.group(2)) not in (None, "") else "", template)


def suite_name(node: pytest.Item | pytest.Collector) -> str:
    """The SQUAD suite of a test: its `lkft_suite` marker, else the module name.

    A `/` from a parameter becomes `-` (collection `net/forwarding`: suite
    `kselftest-net-forwarding`), as a suite name cannot hold the `suite/test` separator.
    """
    marker = node.get_closest_marker("lkft_suite")
    if marker is not None:
        return fill(str(marker.args[0]), node).replace("/", "-")
    module = getattr(node, "module", None)
    name = module.__name__.rsplit(".", 1)[-1] if module else node.name
    return name.removeprefix("test_")


def case_name(item: pytest.Item) -> str:
    """The test's name in its suite: the case parameter, else the function name."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    for argname in ("lkft_case_name", "case"):
        if argname in params:
            return str(params[argname])
    return getattr(item, "originalname", item.name).removeprefix("test_")


def _suite_run(item: pytest.Item) -> tuple[str, str, str]:
    """(file, device, suite): one boot; a module may hold several suites (kselftest-*)."""
    callspec = getattr(item, "callspec", None)
    device_name = callspec.params.get("lkft_device_name", "") if callspec else ""
    return str(item.path), str(device_name), suite_name(item)


def _rank(item: pytest.Item) -> int:
    if item.get_closest_marker("lkft_run_check"):
        return 0  # the suite run comes first: its cases replay what it saw
    return 2 if item.get_closest_marker("lkft_crash_check") else 1


def crash_checks_last(items: list[pytest.Item]) -> list[pytest.Item]:
    """Order each suite run: its run item, its cases, then its crash check.

    Runs on the items as pytest's reordering by fixture parameters left them, keeping the
    position of each suite run's first item.
    """
    runs: dict[tuple[str, str, str], list[pytest.Item]] = {}
    for item in items:
        runs.setdefault(_suite_run(item), []).append(item)
    return [item for group in runs.values() for item in sorted(group, key=_rank)]


@pytest.fixture(scope="session")
def lkft_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved device options."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def lkft_device_name() -> str:
    """Replaced by the `--lkft-device` parametrization; reached only with no device given."""
    pytest.skip(NO_DEVICE)


def start_preboot(config: pytest.Config) -> None:
    """Boot the first device in the background while pytest collects (see `preboot`)."""
    settings = config.stash[SETTINGS_KEY]
    xdist = bool(getattr(config.option, "numprocesses", None)) or hasattr(config, "workerinput")
    builds = config.stash.get(BUILD_SETTINGS_KEY, None) is not None  # a build outlasts startup
    board = bool(settings.devices) and (lab_device(config, settings.devices[0]) is not None
                                        or is_lava(settings.devices[0]))
    if builds or board or not wanted(settings, bool(config.option.collectonly), xdist):
        return
    cache = config.stash[CACHE_KEY]
    stream = terminal(config) if settings.console else None
    preboot = Preboot(settings, settings.devices[0], cache.fetch, cache.root, stream,
                      config.stash.setdefault(ARTIFACTS_KEY, {}))
    config.stash[PREBOOT_KEY] = preboot
    config.add_cleanup(preboot.close)


def device_artifacts(config: pytest.Config, name: str) -> DeviceArtifacts:
    """Provision `name` once per process; a failure is remembered and re-raised as one line.

    With --lkft-tree the device boots what was built (kernel, modules, kselftests); a
    failed kernel build skips the device's suites with the build's first error.
    """
    known = config.stash.setdefault(ARTIFACTS_KEY, {})
    if name not in known:
        try:
            known[name] = _provision(config, name)
        except LkftError as error:
            known[name] = f"{name}: {error}"
    found = known[name]
    if isinstance(found, str):
        if found.startswith(BUILD_FAILED):
            pytest.skip(found.removeprefix(BUILD_FAILED))
        pytest.fail(found, pytrace=False)
    return found


def device_arch(config: pytest.Config, name: str) -> str:
    """The kernel architecture a device (QEMU, or a board of the lab file) boots."""
    board = lab_device(config, name)
    if is_lava(name):
        return lava_spec(name).arch
    return board.arch if board is not None else load_devices().get(name).arch


def _provision(config: pytest.Config, name: str) -> DeviceArtifacts | str:
    spec, settings, cache = load_devices().get(name), config.stash[SETTINGS_KEY], \
        config.stash[CACHE_KEY]
    built = kernel_build_for(config, spec.arch)
    if built is None:
        return provision(settings, spec, cache.fetch, cache.root)
    if not built.passed or built.kernel is None:
        return f"{BUILD_FAILED}{name}: {failure_reason(built)}"
    modules = str(built.modules) if built.modules else settings.modules
    artifacts = provision(dataclasses.replace(settings, kernel=str(built.kernel), modules=modules),
                          spec, cache.fetch, cache.root)
    artifacts.overlays += device_overlays(built, cache.root)
    artifacts.metadata.update({k.removeprefix("lkft.meta."): v
                               for k, v in build_properties(built)})
    return artifacts


@pytest.fixture(scope="module")
def device(request: pytest.FixtureRequest, lkft_device_name: str) -> Iterator[Device]:
    """The device of this suite run: booted by its first test, stopped at the suite's end."""
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    run_dir = settings.results_dir / lkft_device_name / suite_name(request.node)
    stream = terminal(config) if settings.console else None
    booted: Device
    if lab_device(config, lkft_device_name) is not None:  # a labgrid board of the lab file
        booted = make_lab_device(config, lkft_device_name, suite_name(request.node), run_dir,
                                 settings.timeouts, stream)
    elif is_lava(lkft_device_name):  # a LAVA device: the suite run is one job
        booted = make_lava_device(request, lkft_device_name, run_dir, settings.timeouts, stream)
    else:
        preboot = config.stash.get(PREBOOT_KEY, None)
        claimed = preboot.claim(lkft_device_name, run_dir) if preboot else None
        artifacts = device_artifacts(config, lkft_device_name)
        booted = claimed or QemuDevice(load_devices().get(lkft_device_name), artifacts,
                                       run_dir, settings.timeouts, stream)
    try:
        yield booted
    finally:
        booted.close()


def case_list_key(settings: Settings, device_name: str, marker: pytest.Mark) -> str:
    """What the list of a parsed suite's cases depends on: device, artifacts, command."""
    parts = [device_name, settings.kernel or "default", settings.rootfs or "default",
             settings.modules or "", settings.boot_args, str(marker.kwargs.get("command")),
             settings.ltp or "", str(settings.ltp_shard or "")]
    if settings.kselftest:  # only then, so the lists of runs without one keep their keys
        parts.append(settings.kselftest)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def cases_for(config: pytest.Config, node: pytest.Item, device_name: str) -> list[str]:
    """The case names the last run of `node`'s parsed suite saw on `device_name`."""
    marker = node.get_closest_marker("lkft_parsed")
    if marker is None:
        return []
    key = case_list_key(config.stash[SETTINGS_KEY], device_name, marker)
    suite = suite_name(node)
    known = known_cases(config.stash[CACHE_KEY].root, suite, key)
    return sorted({*known, *promised_cases(config, marker).get(suite, [])})


def promised_cases(config: pytest.Config, marker: pytest.Mark) -> dict[str, list[str]]:
    """suite -> the cases its plan promises before the run (the marker's `cases`, e.g. an
    LTP runtest file); each is an item, and an error ("missing") if the run omits it."""
    cases = marker.kwargs.get("cases")
    return cases(config) if callable(cases) else {}


def parsed_cases(metafunc: pytest.Metafunc) -> list[str]:
    """The case names known on any device, for any suite of the module (`{...}` as `*`);
    each item then keeps only its own device's and suite's cases (`foreign_case`)."""
    marker = metafunc.definition.get_closest_marker("lkft_parsed")
    suite = metafunc.definition.get_closest_marker("lkft_suite")
    if marker is None:
        return []
    pattern = PLACEHOLDER.sub(r"\1*", str(suite.args[0])) if suite else \
        suite_name(metafunc.definition)
    config = metafunc.config
    settings, root = config.stash[SETTINGS_KEY], config.stash[CACHE_KEY].root
    promised = [name for names in promised_cases(config, marker).values() for name in names]
    return sorted({*promised, *(name for device_name in settings.devices for name in
                                known_cases(root, pattern,
                                            case_list_key(settings, device_name, marker)))})


def foreign_case(item: pytest.Item) -> bool:
    """A parsed-suite case that only another device's last run saw."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "lkft_case_name" not in params or "lkft_device_name" not in params:
        return False
    return params["lkft_case_name"] not in cases_for(item.config, item,
                                                     params["lkft_device_name"])


def check_run(request: pytest.FixtureRequest, run: SuiteRun, device: Device) -> None:
    """`<suite>/run`: the suite ran and said something; remember its cases, send extras."""
    marker = request.node.get_closest_marker("lkft_parsed")
    settings = request.config.stash[SETTINGS_KEY]
    key = case_list_key(settings, device.name, marker) if marker else ""
    root = request.config.stash[CACHE_KEY].root
    known = cases_for(request.config, request.node, device.name)
    extras = extra_cases(run, known)
    if extras:
        request.node.user_properties.append((EXTRA_CASES, encode_extras(extras, device.name)))
    remember_cases(root, run.suite, key, run)
    if run.silent and marker is not None and marker.kwargs.get("silent_reason"):
        pytest.skip(f"{run.suite}: {run.problem}: {marker.kwargs['silent_reason']}")
    if run.problem:
        pytest.fail(f"{run.suite}: {run.problem}", pytrace=False)


_RUNS: weakref.WeakKeyDictionary[Device, dict[str, SuiteRun]] = weakref.WeakKeyDictionary()


@pytest.fixture
def lkft_suite_run(request: pytest.FixtureRequest, device: Device) -> SuiteRun:
    """This suite's run on the device, parsed once (see `pytest_lkft.suiterun`).

    Keyed by suite name, so one module can hold several suites (`kselftest-{collection}`).
    The marker's `setup(config)`, when it gives a command, runs on the device first.
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
        runs[suite] = run_suite(device, suite, fill(command, request.node) if command else None,
                                marker.kwargs.get("format", "auto"),
                                settings.timeouts.for_suite(marker.kwargs.get("timeout")),
                                setup(request.config) if callable(setup) else None)
    return runs[suite]


@pytest.fixture(autouse=True)
def _lkft_case(request: pytest.FixtureRequest) -> None:
    """Label a device test for reporting; refuse to run it on a dead device."""
    if "device" not in request.fixturenames:
        return
    item = request.node
    used = request.config.stash.setdefault(USED_KEY, set())
    if item.get_closest_marker("lkft_crash_check") is not None and _suite_run(item) not in used:
        pytest.skip("no case of this suite ran on the device")  # and do not boot it for this
    used.add(_suite_run(item))
    dev: Device = request.getfixturevalue("device")
    suite, case = suite_name(item), case_name(item)
    item.user_properties += [("lkft.suite", suite), ("lkft.test", case),
                             ("lkft.device", dev.name), ("lkft.console_log", str(dev.console_log))]
    dev.boot()
    item.user_properties += [(f"lkft.meta.{k}", v) for k, v in sorted(dev.metadata.items()) if v]
    dev.set_context(f"{suite}/{case}")
    parsed = item.get_closest_marker("lkft_parsed")
    # A parsed suite's case replays what its run saw (the console, or the command's
    # output up to where the device broke): it runs nothing, so a broken device is fine.
    replays = parsed is not None and (parsed.kwargs.get("command") is None
                                      or "lkft_case_name" in item.fixturenames)
    if dev.broken and item.get_closest_marker("lkft_device_check") is None and not replays:
        first = dev.broken.splitlines()[0]
        pytest.fail(f"not run: the device is broken ({first})", pytrace=False)
