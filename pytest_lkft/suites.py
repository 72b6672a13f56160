"""Pieces every suite in `testsuites/` shares: running a command as a case, crash check."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lkft.collect import CaseFailed
from pytest_lkft.config import is_url
from pytest_lkft.devices.base import Device
from pytest_lkft.errors import DeviceBroken, LkftError
from pytest_lkft.fixtures import SETTINGS_KEY, check_run
from pytest_lkft.kselftests import KselftestInstall, read_install
from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.rootfs import module_names
from pytest_lkft.suiterun import SuiteRun, replay

OUTPUT_TAIL = 20
LTP_KEY = pytest.StashKey[dict[str, list[str]]]()
KSELFTEST_KEY = pytest.StashKey["KselftestInstall | str"]()


def run_case(device: Device, command: str, item: pytest.Item) -> None:
    """Run `command` on `device` as this case: pass on exit 0, fail with its output else."""
    try:
        result = device.run(command)
    except DeviceBroken as error:
        pytest.fail(str(error), pytrace=False)
    item.add_report_section("call", "console", f"$ {command}\n{result.output}")
    if result.exit_status != 0:
        tail = "\n".join(result.output.splitlines()[-OUTPUT_TAIL:])
        pytest.fail(f"$ {command}\nexit status {result.exit_status}\n{tail}", pytrace=False)


def modules_under_test(config: pytest.Config) -> list[str]:
    """Module names of the --lkft-modules tarball (fetched now if it is a URL), sorted."""
    from pytest_lkft.cache_fixtures import CACHE_KEY

    source = config.stash[SETTINGS_KEY].modules
    if not source:
        return []
    try:
        path = config.stash[CACHE_KEY].fetch(source) if is_url(source) else Path(source)
        return module_names(path)
    except LkftError as error:  # one line, not a collection traceback
        pytest.fail(f"--lkft-modules {source}: {error}", pytrace=False)


def kselftest_install(config: pytest.Config) -> KselftestInstall | str | None:
    """The --lkft-kselftest install (fetched now if it is a URL), or one line saying why it
    cannot be used; None without the option. Read once per process."""
    source = config.stash[SETTINGS_KEY].kselftest
    if not source:
        return None
    if KSELFTEST_KEY not in config.stash:
        config.stash[KSELFTEST_KEY] = _read_kselftest(config, source)
    return config.stash[KSELFTEST_KEY]


def _read_kselftest(config: pytest.Config, source: str) -> KselftestInstall | str:
    from pytest_lkft.cache_fixtures import CACHE_KEY

    option = "--lkft-kselftest" if config.getoption("lkft_kselftest", None) else "LKFT_KSELFTEST"
    shown = f"{option} {source}"
    try:
        path = config.stash[CACHE_KEY].fetch(source) if is_url(source) else Path(source)
        if not path.is_file():
            return f"{shown}: no such file; check the path or give a URL"
        return read_install(path, shown)
    except LkftError as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return text if text.startswith(shown) else f"{shown}: {text}"


def kselftest_collections(config: pytest.Config) -> list[str]:
    """The kselftest collections to run: those the --lkft-kselftest tarball lists, else
    those the kernel build makes (its TARGETS make variable)."""
    from pytest_lkft.build_fixtures import BUILD_SETTINGS_KEY

    install = kselftest_install(config)
    if install is not None:
        return list(install.collections) if isinstance(install, KselftestInstall) else []
    build = config.stash.get(BUILD_SETTINGS_KEY, None)
    if build is None or "kselftest" not in build.targets:
        return []
    return sorted(dict(build.make_vars).get("TARGETS", "").split())


def ltp_cases(config: pytest.Config) -> dict[str, list[str]]:
    """`ltp-<runtest>` -> the tags its run is to report (the shard's), from --lkft-ltp.

    Read once per process (the tarball is fetched now if it is a URL); a runtest file
    asked for but missing is one line naming it and the files the tarball has. Without
    --lkft-ltp, each --lkft-ltp-runtest name is a suite of the rootfs's own LTP whose
    tags are learned from its first run (none promised).
    """
    if LTP_KEY not in config.stash:
        config.stash[LTP_KEY] = _ltp_plans(config)
    return config.stash[LTP_KEY]


def _ltp_plans(config: pytest.Config) -> dict[str, list[str]]:
    from pytest_lkft import ltp
    from pytest_lkft.cache_fixtures import CACHE_KEY

    settings = config.stash[SETTINGS_KEY]
    if not settings.ltp:
        return {f"ltp-{name}": [] for name in settings.ltp_runtest}
    try:
        path = config.stash[CACHE_KEY].fetch(settings.ltp) if is_url(settings.ltp) \
            else Path(settings.ltp)
        texts = ltp.runtest_files(path)
        names = ltp.choose_runtests(list(texts), settings.ltp_runtest, settings.ltp)
    except LkftError as error:  # one line, not a collection traceback
        pytest.fail(str(error), pytrace=False)
    return {f"ltp-{name}": [tag for tag, _ in ltp.plan(texts[name], settings.ltp_shard)]
            for name in names}


def ltp_setup(config: pytest.Config) -> str | None:
    """The command that readies a device for the rootfs's LTP (runner, shard, skipfile
    tags; see `pytest_lkft.ltp.rootfs_setup`); None with --lkft-ltp (the overlay has it)."""
    from pytest_lkft import ltp
    from pytest_lkft.cache_fixtures import CACHE_KEY

    settings = config.stash[SETTINGS_KEY]
    if settings.ltp or not settings.ltp_runtest:
        return None
    skipfile = settings.ltp_skipfile
    try:
        path = (config.stash[CACHE_KEY].fetch(skipfile) if is_url(skipfile) else Path(skipfile)) \
            if skipfile else None
        skips = ltp.read_skipfile(path) if path else []
    except LkftError as error:  # one line, not a fixture traceback
        pytest.fail(str(error).splitlines()[0], pytrace=False)
    return ltp.rootfs_setup(settings.ltp_shard, skips, Path(skipfile or "").name)


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


def test_case(lkft_case: Case) -> None:
    """One case of a parsed suite, as its run reported it."""
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
