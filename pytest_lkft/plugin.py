"""The pytest11 entry point: hooks, fixtures and built-in extensions, wiring only.

Each hook delegates to `pytest_lkft.pytestplugin`; the library stages below it import
without pytest. docs/architecture.md shows the whole pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_lkft import hookspecs
from pytest_lkft.provision.device import BUILT_IN_STAGES
from pytest_lkft.provision.stages import Stage
from pytest_lkft.pytestplugin import collection, options, rootdir
from pytest_lkft.pytestplugin import session as run
from pytest_lkft.pytestplugin.cache import lkft_artifact  # noqa: F401  (fixtures by name)
from pytest_lkft.pytestplugin.devicekinds import DeviceKind
from pytest_lkft.pytestplugin.fixtures import (  # noqa: F401  (fixtures are found by name)
    _lkft_case,
    device,
    lkft_device_name,
    lkft_settings,
    lkft_suite_run,
)
from pytest_lkft.pytestplugin.labgrid import LabgridKind
from pytest_lkft.pytestplugin.lava import LavaKind
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.pytestplugin.qemu import QemuKind
from pytest_lkft.reporting.settings import Settings as ReportingSettings
from pytest_lkft.reporting.sinks import ResultSink, built_in_sinks


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    run.configure(config)


@pytest.hookimpl(tryfirst=True)  # before conftests are looked for from the rootdir
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    rootdir.keep_project_setup(early_config, args)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    run.session_start(session)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    return collection.results_file(file_path, parent)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N`, keep each device's suites on one worker (see `scheduling`)."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.devices or config.option.dist not in ("load", "loadgroup"):
        return None
    from pytest_lkft.pytestplugin.scheduling import make_scheduler

    return make_scheduler(config, log, settings.devices)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    collection.generate_tests(metafunc)


@pytest.hookimpl(trylast=True)  # after -k, -m and pytest's reordering by fixture parameters
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    collection.modify_items(session, config, items)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    return run.header_lines(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    for line in run.summary_lines(config):
        terminalreporter.write_line(line)


# -- the built-in extensions (trylast: a plugin's or a conftest's come first) ---------------


@pytest.hookimpl(trylast=True)
def pytest_lkft_device_kinds(config: pytest.Config) -> list[DeviceKind]:
    return [LabgridKind(), LavaKind(), QemuKind()]


@pytest.hookimpl(trylast=True)
def pytest_lkft_result_sinks(config: pytest.Config,
                             settings: ReportingSettings) -> list[ResultSink]:
    return built_in_sinks(settings)


@pytest.hookimpl(trylast=True)
def pytest_lkft_stages(config: pytest.Config) -> list[Stage]:
    return list(BUILT_IN_STAGES)
