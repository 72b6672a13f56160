"""How tests are named and ordered for LKFT: SQUAD suite and case names, one boot per suite run.

A suite is named by its module's `lkft_suite` marker (with the test's parameters filled
in), else the module's name; a case by its case parameter, else the function's name.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import pytest

PLACEHOLDER = re.compile(r"(-?)\{(\w+)\}")


def fill(template: str, node: pytest.Item | pytest.Collector,
         quote: Callable[[str], str] = str) -> str:
    """`kselftest-{collection}` with the test's parameters (each passed through `quote`);
    unknown or empty ones dropped with their leading dash (the module-level name of a
    per-collection suite, and its placeholder when there are no collections, is
    `kselftest`)."""
    params = getattr(getattr(node, "callspec", None), "params", {})

    def value(match: re.Match[str]) -> str:
        found = params.get(match.group(2))
        if found in (None, ""):
            return ""
        return f"{match.group(1)}{quote(str(found))}"

    return PLACEHOLDER.sub(value, template)


def fill_command(template: str, node: pytest.Item | pytest.Collector) -> str:
    """A suite's shell command with the test's parameters, each one shell word: a name from
    a tarball or an option (`x;reboot`) cannot run commands of its own on the device."""
    return fill(template, node, shlex.quote)


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


def identity(item: pytest.Item) -> list[tuple[str, object]]:
    """The reporting contract's names of a device test (suite, test, device), given at
    collection: JUnit and the reporter name every test of a device alike, also one skipped
    before its fixtures ran (a placeholder saying what to pass)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "lkft_device_name" not in params:
        return []
    return [("lkft.suite", suite_name(item)), ("lkft.test", case_name(item)),
            ("lkft.device", str(params["lkft_device_name"]))]


def suite_run(item: pytest.Item) -> tuple[str, str, str]:
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
        runs.setdefault(suite_run(item), []).append(item)
    return [item for group in runs.values() for item in sorted(group, key=_rank)]
