"""Parsed suites' case lists: which cases are items before the run, and the run's check.

See `pytest_lkft.run.caselists` for where the lists live. A case is an item when the last
run of its suite on the same artifacts saw it, or when the suite's plan promises it
(an LTP runtest file); a case the run reports beyond those is an extra, reported from the
controller (`pytest_lkft.pytestplugin.extras`).
"""

from __future__ import annotations

import hashlib

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.pytestplugin.cache import CACHE_KEY
from pytest_lkft.pytestplugin.extras import EXTRA_CASES, encode_extras
from pytest_lkft.pytestplugin.naming import PLACEHOLDER, suite_name
from pytest_lkft.pytestplugin.options import SETTINGS_KEY
from pytest_lkft.run.caselists import known_cases, remember_cases
from pytest_lkft.run.suite import SuiteRun, extra_cases
from pytest_lkft.settings.device import Settings


def case_list_key(settings: Settings, device_name: str, marker: pytest.Mark) -> str:
    """What the list of a parsed suite's cases depends on: device, artifacts, command."""
    parts = [device_name, settings.kernel or "default", settings.rootfs or "default",
             settings.modules or "", settings.boot_args, str(marker.kwargs.get("command")),
             settings.ltp or "", str(settings.ltp_shard or "")]
    if settings.kselftest:  # only then, so the lists of runs without one keep their keys
        parts.append(settings.kselftest)
    if settings.parameters or settings.libhugetlbfs:  # likewise
        parts += [repr(settings.parameters), settings.libhugetlbfs or ""]
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
    pattern = suite_name(metafunc.definition)
    if suite is not None:  # a template (kselftest-{collection}) matches each of its suites
        pattern = PLACEHOLDER.sub(r"\1*", str(suite.args[0]))
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
    if run.skipped:
        pytest.skip(f"{run.suite}: {run.skipped}")
    if run.silent and marker is not None and marker.kwargs.get("silent_reason"):
        pytest.skip(f"{run.suite}: {run.problem}: {marker.kwargs['silent_reason']}")
    if run.problem:
        pytest.fail(f"{run.suite}: {run.problem}", pytrace=False)
