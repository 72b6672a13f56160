"""The pytest11 entry point: options, settings, fixtures and hooks, wiring only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_lkft import (
    build_fixtures,
    cache_fixtures,
    collect,
    lab_fixtures,
    lava_fixtures,
    suiterun,
)
from pytest_lkft import config as device_config
from pytest_lkft.cache_fixtures import CACHE_KEY, lkft_artifact  # noqa: F401
from pytest_lkft.errors import UserError
from pytest_lkft.fixtures import (  # noqa: F401  (fixtures are found by name)
    SETTINGS_KEY,
    _lkft_case,
    crash_checks_last,
    device,
    device_arch,
    foreign_case,
    lkft_device_name,
    lkft_settings,
    lkft_suite_run,
    parsed_cases,
    start_preboot,
)
from pytest_lkft.reporting import junit, phases
from pytest_lkft.reporting import options as reporting_options
from pytest_lkft.selection import SuiteSelection
from pytest_lkft.terminal import open_terminal

MARKERS = (
    "lkft_suite(name): the SQUAD suite name of the tests in this module",
    "lkft_device_check: the test reports on the device itself, so it runs on a broken device",
    "lkft_crash_check: the suite's crash check; skipped when nothing booted the device",
    "lkft_run_check: the run of a parsed suite; runs before the suite's cases",
    "lkft_parsed(format, command=None, timeout=None, silent_reason=None, cases=None, "
    "setup=None): a suite whose cases come from parsing the output of `command` (None: the "
    "boot console); no output at all skips it with silent_reason when given; cases(config) "
    "-> {suite: [case, ...]} names the cases a plan promises before the run; setup(config) "
    "-> a command to run on the device before `command`, or None",
    "lkft_commands(func): func(params) -> the shell commands the test runs on its device, in "
    "order; a batch device (LAVA) runs a suite's commands in one job",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lkft", "Linux kernel functional testing")
    device_config.add_options(group)
    device_config.add_ini(parser)
    group.addoption("--lkft-results", dest="lkft_results", nargs="+", metavar="LOG",
                    help="Test logs (KTAP, kselftest, LTP, kirk JSON, LAVA) to turn into items")
    group.addoption("--lkft-results-device", dest="lkft_results_device", metavar="NAME",
                    help="Device (SQUAD environment) the --lkft-results logs came from")
    cache_fixtures.add_options(group)
    build_fixtures.add_options(group)
    lab_fixtures.add_options(group)
    lava_fixtures.add_options(group)
    reporting_options.add_options(group)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    open_terminal(config)  # before any thread writes to it, while capture is suspended
    try:
        boards = lab_fixtures.lab_device_names(config) + lava_fixtures.lava_device_names(config)
        settings = device_config.Settings.from_config(config, boards)
        config.stash[SETTINGS_KEY] = settings
        cache_fixtures.cache_from_config(config)
        lab_fixtures.configure(config, settings.devices)
        lava_fixtures.configure(config, settings.devices)
        built = build_fixtures.settings_from(config,
                                             [device_arch(config, n) for n in settings.devices])
        if settings.kselftest and built is not None and "kselftest" in built.targets:
            raise UserError("--lkft-kselftest and --lkft-build-targets with kselftest both give "
                            "the kselftests; pass one")
    except UserError as error:
        raise pytest.UsageError(str(error)) from None
    if settings.tests:
        config.pluginmanager.register(SuiteSelection(settings.tests, settings.tests_source),
                                      "lkft-suite-selection")
    reporting_options.configure(config)
    junit.configure(config)
    phases.configure(config)
    _collect_results(config)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ExtraCases(config), "lkft-extra-cases")


class ExtraCases:
    """Controller only: turn the extra cases a suite run carries into reports of their own."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for extra in suiterun.extra_reports(report):
            self.config.hook.pytest_runtest_logreport(report=extra)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the first boot as early as a session exists (--help, --markers have none)."""
    option = session.config.option
    if not (getattr(option, "showfixtures", False) or getattr(option, "show_fixtures_per_test",
                                                              False)):
        start_preboot(session.config)


def _collect_results(config: pytest.Config) -> None:
    """With --lkft-results, collect those logs (instead of testpaths, beside given paths)."""
    logs = collect.results_paths(config)
    if not logs:
        return
    config.stash[collect.RESULTS_KEY] = frozenset(logs)
    explicit = config.args_source is pytest.Config.ArgsSource.ARGS
    config.args = [*(config.args if explicit else []), *map(str, logs)]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path in parent.config.stash.get(collect.RESULTS_KEY, frozenset()):
        return collect.ResultsFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N`, keep each device's suites on one worker (see `scheduling`)."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.devices or config.option.dist not in ("load", "loadgroup"):
        return None
    from pytest_lkft.scheduling import make_scheduler

    return make_scheduler(config, log, settings.devices)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lkft_device_name" not in metafunc.fixturenames:  # `device` and tests asking the name
        return
    names = metafunc.config.stash[SETTINGS_KEY].devices
    if names:
        metafunc.parametrize("lkft_device_name", names, ids=names, scope="module")
    if "lkft_case_name" in metafunc.fixturenames:
        metafunc.parametrize("lkft_case_name", parsed_cases(metafunc))


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unknown = [i for i in items if _no_known_case(i) or foreign_case(i)]
    if unknown:  # parsed suites never run before, or cases only other devices have
        config.hook.pytest_deselected(items=unknown)
        dropped = set(map(id, unknown))
        items[:] = [i for i in items if id(i) not in dropped]
    items[:] = crash_checks_last(items)


def _no_known_case(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "lkft_case_name" in params and not isinstance(params["lkft_case_name"], str)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.devices:
        return None
    cache, timeouts = config.stash[CACHE_KEY], settings.timeouts
    extra = [line for line in (build_fixtures.report_header(config),
                               lab_fixtures.header_line(config),
                               lava_fixtures.header_line(config)) if line]
    return [*extra,
            f"lkft: devices={','.join(settings.devices)} kernel={settings.kernel or 'default'} "
            f"rootfs={settings.rootfs or 'default'} timeouts=boot={timeouts.boot:g},"
            f"test={timeouts.test:g} cache={cache.root}"
            + (f" kselftest={settings.kselftest}" if settings.kselftest else "")
            + (f" tests={','.join(settings.tests)}" if settings.tests else ""),
            *ltp_header(settings)]


def ltp_header(settings: device_config.Settings) -> list[str]:
    """`lkft: ltp=... runtest=... skipfile=... shard=...` when an LTP tarball or runtest
    files are given (`ltp=rootfs`: the rootfs's own /opt/ltp)."""
    if not settings.ltp and not settings.ltp_runtest:
        return []
    runtests = ",".join(settings.ltp_runtest) or "default"
    return [f"lkft: ltp={settings.ltp or 'rootfs'} runtest={runtests} "
            f"skipfile={settings.ltp_skipfile or 'none'} shard={settings.ltp_shard or 'all'}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.devices:
        return
    terminalreporter.write_line(
        f"lkft: console logs and reproducers in {settings.results_dir}")
    if not hasattr(config, "workerinput"):
        terminalreporter.write_line(cache_fixtures.summary_line(config.stash[CACHE_KEY]))
