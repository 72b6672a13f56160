"""A run's set-up and its lines on the terminal: what `pytest_lkft.plugin` wires.

`configure` resolves every option once (a bad value stops the run with one line, before
anything boots), configures the device kinds and checks the devices, the build, and
registers the controller's plugins (suite selection, reporter, extra cases).
"""

from __future__ import annotations

import pytest

from pytest_lkft.errors import UserError
from pytest_lkft.parsers import formats
from pytest_lkft.pytestplugin import build, junit, labgrid, lava, phases, reporter
from pytest_lkft.pytestplugin.cache import CACHE_KEY, cache_from_config, summary_line
from pytest_lkft.pytestplugin.collection import SuiteRunOrder, collect_results, collect_suites
from pytest_lkft.pytestplugin.devicekinds import check_devices, configure_kinds, device_arch
from pytest_lkft.pytestplugin.extras import ExtraCases
from pytest_lkft.pytestplugin.options import LTP_MISSING_KEY, SETTINGS_KEY, resolve_settings
from pytest_lkft.pytestplugin.provisioning import STAGES_KEY
from pytest_lkft.pytestplugin.qemu import start_preboot
from pytest_lkft.pytestplugin.selection import SuiteSelection
from pytest_lkft.pytestplugin.terminal import open_terminal
from pytest_lkft.settings.device import Settings, is_url

MARKERS = (
    "lkft_suite(name): the SQUAD suite name of the tests in this module",
    "lkft_device_check: the test reports on the device itself, so it runs on a broken device",
    "lkft_crash_check: the suite's crash check; skipped when nothing booted the device",
    "lkft_run_check: the run of a parsed suite; runs before the suite's cases",
    "lkft_parsed(format, command=None, timeout=None, silent_reason=None, cases=None, "
    "setup=None, resume=None, skips=None): a suite whose cases come from parsing the output of "
    "`command` (None: the boot console); no output at all skips it with silent_reason when given; "
    "cases(config) -> {suite: [case, ...]} names the cases a plan promises before the run; "
    "setup(config) -> a command to run on the device before `command`, or None; resume: a "
    "command that, given a case's name as its last argument, runs the cases after it (the "
    "device is booted afresh when a case killed it); skips(config) -> {suite: {case: "
    "reason}} names cases the host reports as skips without running them",
    "lkft_commands(func): func(params) -> the shell commands the test runs on its device, in "
    "order; a batch device (LAVA) runs a suite's commands in one job",
)


def configure(config: pytest.Config) -> None:
    """Resolve and check everything before anything boots; register the run's plugins."""
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    open_terminal(config)  # before any thread writes to it, while capture is suspended
    try:
        settings = _check(config)
    except UserError as error:
        raise pytest.UsageError(str(error)) from None
    for fmt in (f for found in config.hook.pytest_lkft_formats(config=config) for f in found):
        if fmt not in formats.registered():
            formats.register(fmt)
    config.stash[STAGES_KEY] = [stage for found in config.hook.pytest_lkft_stages(config=config)
                                for stage in found]
    if settings.tests:
        config.pluginmanager.register(SuiteSelection(settings.tests, settings.tests_source),
                                      "lkft-suite-selection")
    reporter.configure(config)
    junit.configure(config)
    phases.configure(config)
    collect_suites(config)
    collect_results(config)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ExtraCases(config), "lkft-extra-cases")


def _check(config: pytest.Config) -> Settings:
    settings = resolve_settings(config)
    cache_from_config(config)
    configure_kinds(config)
    check_devices(config, settings.devices)
    archs = [device_arch(config, n) for n in settings.devices]
    built = build.settings_from(config, archs)
    if settings.ltp_src:
        check_ltp_build(settings, archs)
    if settings.kselftest and built is not None and "kselftest" in built.targets:
        raise UserError("--lkft-kselftest and --lkft-build-targets with kselftest both give "
                        "the kselftests; pass one")
    return settings


def check_ltp_build(settings: Settings, archs: list[str]) -> None:
    """--lkft-ltp-src: the source, each device's architecture and its cross compiler checked
    before anything builds or boots (a URL's source is checked once fetched)."""
    from pathlib import Path

    from pytest_lkft.build.ltp import LtpBuild

    given = settings.ltp_src or ""
    for arch in sorted(set(archs)):
        build = LtpBuild(source=Path(given), target_arch=arch, linking=settings.ltp_linking,
                         runtests=settings.ltp_runtest, shown=given)
        if is_url(given):
            build.check_toolchain()
        else:
            build.validate()


def session_start(session: pytest.Session) -> None:
    """Keep suite runs together after any reordering; start the first boot as early as a
    session exists (--help, --markers have none)."""
    session.config.pluginmanager.register(SuiteRunOrder(), "lkft-suite-run-order")
    option = session.config.option
    if not (getattr(option, "showfixtures", False)
            or getattr(option, "show_fixtures_per_test", False)):
        start_preboot(session.config)


def header_lines(config: pytest.Config) -> list[str] | None:
    """`lkft: devices=... kernel=... rootfs=...`, and the build's, lab's and LTP's lines."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.devices:
        return None
    cache, timeouts = config.stash[CACHE_KEY], settings.timeouts
    extra = [line for line in (build.report_header(config), labgrid.header_line(config),
                               lava.header_line(config)) if line]
    main = (f"lkft: devices={','.join(settings.devices)} kernel={settings.kernel or 'default'} "
            f"rootfs={settings.rootfs or 'default'} timeouts=boot={timeouts.boot:g},"
            f"test={timeouts.test:g},silence={timeouts.silence:g} cache={cache.root}")
    if settings.kselftest:
        main += f" kselftest={settings.kselftest}"
    if settings.tests:
        main += f" tests={','.join(settings.tests)}"
    return [*extra, main, *ltp_header(settings)]


def ltp_header(settings: Settings) -> list[str]:
    """`lkft: ltp=... runtest=... skipfile=... shard=...` when an LTP tarball or runtest
    files are given (`ltp=rootfs`: the rootfs's own /opt/ltp)."""
    if not settings.ltp and not settings.ltp_runtest and not settings.ltp_src:
        return []
    runtests = ",".join(settings.ltp_runtest) or "default"
    given = settings.ltp or "rootfs"
    if settings.ltp_src:
        given = f"build:{settings.ltp_src} linking={settings.ltp_linking}"
    return [f"lkft: ltp={given} runtest={runtests} "
            f"skipfile={settings.ltp_skipfile or 'none'} shard={settings.ltp_shard or 'all'} "
            f"timeout={settings.ltp_timeout:g}"]


def summary_lines(config: pytest.Config) -> list[str]:
    """Where the console logs are, and (on the controller) what the cache fetched."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.devices:
        return []
    lines = [f"lkft: console logs and reproducers in {settings.results_dir}"]
    missing = config.stash.get(LTP_MISSING_KEY, [])
    if missing:
        lines.append(f"lkft: LKFT's LTP runtest files {', '.join(missing)} are not in "
                     f"{settings.ltp or settings.ltp_src}: not run")
    if not hasattr(config, "workerinput"):
        lines.append(summary_line(config.stash[CACHE_KEY]))
    return lines
