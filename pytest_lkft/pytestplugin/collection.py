"""Collection: devices as parameters, parsed suites' known cases, results logs as items.

Each suite module is parametrized over the `--lkft-device` names at module scope (one
boot per suite run); a parsed suite's cases are the cases its last run saw (see
`parsed`); `--lkft-results` logs are collected as files of case items (see `items`).
Suites collected with no device to run them on are a usage error, not a run of skips.
Each suite run's items stay together, in order, whatever reordered them before
(`SuiteRunOrder`: pytest's `--ff` puts failed tests first).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from pytest_lkft.pytestplugin.fixtures import NO_DEVICE
from pytest_lkft.pytestplugin.items import RESULTS_KEY, ResultsFile, results_paths
from pytest_lkft.pytestplugin.naming import crash_checks_last, identity
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.pytestplugin.parsed import foreign_case, parsed_cases
from pytest_lkft.pytestplugin.selection import refuse


def packaged_suites() -> Path | None:
    """The suites the plugin ships: `pytest_lkft/testsuites/` in a wheel, the checkout's
    `testsuites/` beside the package otherwise."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "testsuites", package.parent / "testsuites"):
        if (candidate / "test_boot.py").is_file():
            return candidate
    return None


def collect_suites(config: pytest.Config) -> None:
    """With devices and neither paths nor testpaths given, in a directory with no tests of
    its own (`pytest --lkft-device=x` after `pip install`), collect the plugin's suites."""
    devices = config.stash[SETTINGS_KEY].devices
    suites = packaged_suites()
    if not devices or suites is None:
        return
    if config.args_source is not pytest.Config.ArgsSource.INVOCATION_DIR:
        return
    if not has_own_tests(config.invocation_params.dir):
        config.args = [str(suites)]


OWN_TESTS = ("conftest.py", "test_*.py", "*_test.py", "tests/test_*.py", "testsuites/test_*.py")


def has_own_tests(directory: Path) -> bool:
    """True when `directory` holds tests pytest would collect (a conftest, test files)."""
    return any(next(directory.glob(pattern), None) is not None for pattern in OWN_TESTS)


def collect_results(config: pytest.Config) -> None:
    """With --lkft-results, collect those logs (instead of testpaths, beside given paths)."""
    logs = results_paths(config)
    if not logs:
        return
    config.stash[RESULTS_KEY] = frozenset(logs)
    explicit = config.args_source is pytest.Config.ArgsSource.ARGS
    config.args = [*(config.args if explicit else []), *map(str, logs)]


def results_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A ResultsFile for a --lkft-results log, None for any other file."""
    if file_path in parent.config.stash.get(RESULTS_KEY, frozenset()):
        return ResultsFile.from_parent(parent, path=file_path)
    return None


def generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize device tests by device (module scope), parsed suites by known case."""
    if "lkft_device_name" not in metafunc.fixturenames:  # `device` and tests asking the name
        return
    names = metafunc.config.stash[SETTINGS_KEY].devices
    if names:
        metafunc.parametrize("lkft_device_name", names, ids=names, scope="module")
    if "lkft_case_name" in metafunc.fixturenames:
        metafunc.parametrize("lkft_case_name", parsed_cases(metafunc))


def modify_items(session: pytest.Session, config: pytest.Config,
                 items: list[pytest.Item]) -> None:
    """Refuse device tests without a device; drop cases no run of this device knows; name
    each device test for reporting."""
    if _without_device(config, items):
        refuse(session, config, items, NO_DEVICE)
        return
    unknown = [i for i in items if _no_known_case(i) or foreign_case(i)]
    if unknown:  # parsed suites never run before, or cases only other devices have
        config.hook.pytest_deselected(items=unknown)
        dropped = set(map(id, unknown))
        items[:] = [i for i in items if id(i) not in dropped]
    for item in items:
        item.user_properties += identity(item)


def _without_device(config: pytest.Config, items: list[pytest.Item]) -> bool:
    """Device tests selected to run, and no device given (collecting only is fine)."""
    if config.stash[SETTINGS_KEY].devices or config.option.collectonly:
        return False
    return any("lkft_device_name" in getattr(item, "fixturenames", ()) for item in items)


class SuiteRunOrder:
    """Order each suite run (its run, its cases, its crash check), keeping the place of its
    first item, after every other plugin reordered the items: registered at session start,
    after pytest's cache plugin, its wrapper ends last."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None]:
        result = yield
        items[:] = crash_checks_last(items)
        return result


def _no_known_case(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "lkft_case_name" in params and not isinstance(params["lkft_case_name"], str)
