"""How tests are named and ordered for LKFT: SQUAD suite and case names, one boot per suite run.

A suite is named by its module's `lkft_suite` marker (with the test's parameters filled
in), else the module's name; a case by its case parameter, else the function's name.
"""

from __future__ import annotations

import re

import pytest

PLACEHOLDER = re.compile(r"(-?)\{(\w+)\}")


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
