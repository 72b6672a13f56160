"""`--lkft-tests`: keep the items of the named suites, deselect the others (as `-k` does).

A suite is named as SQUAD names it (`boot`, `smoke`, `kselftest-size`, ...) or by a glob
(`kselftest-*`); `SUITE/CASE` (globs too: `kunit/list-kunit-test.*`) keeps only those
cases of the suite, with the suite's own run and crash checks (a bisection step runs its
one case this way, not the hundred others of its suite). Each suite run boots its own
device, so deselecting `boot` takes nothing from `smoke`. A suite module whose suites are
not there yet (`kselftest-{collection}` with no kselftests given, or a bad tarball) has
one placeholder item that says why; it stands for every suite of its template, so
`--lkft-tests=kselftest-size` shows that reason instead of "no such suite".
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

import pytest

from pytest_lkft.pytestplugin.items import CaseItem
from pytest_lkft.pytestplugin.naming import PLACEHOLDER, case_name, suite_name
from pytest_lkft.settings.rootfs import suite_part

NO_SUITE = "{source} {value!r} matches no suite; the suites here: {suites}"


def item_suite(item: pytest.Item) -> tuple[str, bool] | None:
    """(the item's suite, True for a template's placeholder), None for an item of no suite."""
    if isinstance(item, CaseItem):  # a case of an --lkft-results log
        return item.case.suite, False
    marker = item.get_closest_marker("lkft_suite")
    if marker is None:  # a suite module without the marker is named after its file
        if "device" not in getattr(item, "fixturenames", ()):
            return None
        return suite_name(item), False
    name = suite_name(item)
    template = str(marker.args[0])
    is_template = PLACEHOLDER.search(template) is not None
    return name, is_template and name == PLACEHOLDER.sub("", template)


def matches(suite: str, placeholder: bool, pattern: str) -> bool:
    """True when `pattern` names `suite`; a placeholder `kselftest` stands for `kselftest-*`."""
    return fnmatchcase(suite, pattern) or (placeholder and pattern.startswith(f"{suite}-"))


SUITE_CHECKS = ("lkft_run_check", "lkft_crash_check")  # kept with any case of their suite


def item_case(item: pytest.Item) -> str | None:
    """The item's case name in its suite; None for the suite's run and crash checks."""
    if isinstance(item, CaseItem):
        return item.case.name
    if any(item.get_closest_marker(check) is not None for check in SUITE_CHECKS):
        return None
    return case_name(item)


def wanted(item: pytest.Item, found: tuple[str, bool], pattern: str) -> bool:
    """True when `pattern` (SUITE or SUITE/CASE) keeps `item` of the suite `found`."""
    suite, _, case = pattern.partition("/")
    if not matches(*found, suite):
        return False
    name = item_case(item) if case else None
    return name is None or fnmatchcase(name, case)


def select(items: Sequence[pytest.Item], patterns: Sequence[str],
           source: str) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(kept, deselected) items; a pattern that names no suite is a UsageError listing them."""
    suites = {id(item): item_suite(item) for item in items}
    known = {found for found in suites.values() if found is not None}
    for pattern in patterns:
        if not any(matches(name, holder, suite_part(pattern)) for name, holder in known):
            names = ", ".join(sorted({name for name, _ in known})) or "none"
            raise pytest.UsageError(NO_SUITE.format(source=source, value=pattern, suites=names))
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        found = suites[id(item)]
        keep = found is None or any(wanted(item, found, p) for p in patterns)
        (kept if keep else dropped).append(item)
    return kept, dropped


def refuse(session: pytest.Session, config: pytest.Config, items: list[pytest.Item],
           message: str) -> None:
    """Stop the run with one line: a UsageError, or on an xdist worker (where a UsageError
    crashes xdist) a failed collection report that the controller shows once, and no items."""
    if not hasattr(config, "workerinput"):
        raise pytest.UsageError(message)
    config.hook.pytest_deselected(items=list(items))
    items[:] = []
    config.hook.pytest_collectreport(report=pytest.CollectReport(
        session.nodeid, "failed", message, []))


class SuiteSelection:
    """The --lkft-tests plugin: selects before `-k` and `-m`, so each sees only the suites."""

    def __init__(self, patterns: Sequence[str], source: str) -> None:
        self.patterns, self.source = tuple(patterns), source

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        try:
            kept, dropped = select(items, self.patterns, self.source)
        except pytest.UsageError as error:
            refuse(session, config, items, str(error))
            return
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
