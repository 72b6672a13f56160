"""Suites whose cases are known only from their output (KUnit, kselftest, LTP).

A suite run on a device is one command (or the boot itself, for built-in KUnit); its
output is parsed into cases. pytest wants its items before the run, so each suite keeps
the list of cases the last run saw (`<cache>/caselists/`, keyed by what was booted) and
collects one item per known case, plus `<suite>/run`, the run itself. A known case the
run did not report is an error ("missing", with the crash when one was seen); a case the
run reported but the list did not know is reported too, from the controller, as its own
test report (so JUnit, the terminal and the store get it, also under xdist).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_lkft.collect import case_properties, replay
from pytest_lkft.devices.base import Device
from pytest_lkft.errors import DeviceBroken
from pytest_lkft.files import write_atomically
from pytest_lkft.parsers.model import Case, Result, unique_names

EXTRA_CASES = "lkft.extra_cases"
LAST_START = re.compile(r"(?s:.*)^LKFT-START\r*$", re.MULTILINE)  # see console.run


@dataclass
class SuiteRun:
    """The parsed outcome of one suite run on one device."""

    suite: str
    cases: dict[str, Case] = field(default_factory=dict)
    problem: str = ""  # why the run itself failed (no output, device died, ...)
    silent: bool = False  # the run printed nothing of its format at all

    def case(self, name: str, crash: str = "") -> Case:
        """The named case, or an error case saying it is missing."""
        found = self.cases.get(name)
        if found is not None:
            return found
        why = "missing: the run did not report it"
        if crash or self.problem:
            why += f" ({crash or self.problem})"
        return Case(self.suite, name, Result.ERROR, reason=why)


def run_suite(device: Device, suite: str, command: str | None, fmt: str,
              timeout: float | None = None, setup: str | None = None) -> SuiteRun:
    """Run `command` (None: use the boot's console) on `device` and parse its output.

    `setup`, a command run first (e.g. one installing a runner script), must exit 0.
    """
    run = SuiteRun(suite)
    if setup is not None and command is not None:
        run.problem = setup_problem(device, setup, timeout)
        if run.problem:
            return run
    started = not device.broken  # a broken device refuses the command: it prints nothing
    status = 0
    try:
        if command is None:
            text = console_text(device)
        else:
            result = device.run(command, timeout)
            text, status = result.output, result.exit_status
    except DeviceBroken as error:  # what the console showed since the command began
        run.problem = str(error).splitlines()[0]
        text = console_text(device) if command is None else \
            since_last_command(device) if started else ""
    from pytest_lkft.parsers.detect import parse  # lazily: not needed to start the first boot

    run.cases = dict(unique_names(parse(text.splitlines(), fmt, suite), lambda c: c.name))
    if not run.cases and not run.problem:
        run.silent = True
        run.problem = f"no {fmt} output found; see {device.console_log}"
        if status != 0 and text.strip():  # the command said why, e.g. a file it lacks
            last = text.strip().splitlines()[-1].strip()
            run.problem = f"{last} (exit status {status}, no {fmt} output; see " \
                          f"{device.console_log})"
    return run


def setup_problem(device: Device, setup: str, timeout: float | None) -> str:
    """Run a suite's setup command; why it failed in one line, "" when it did not."""
    try:
        result = device.run(setup, timeout)
    except DeviceBroken as error:
        return f"setup: {str(error).splitlines()[0]}"
    if result.exit_status == 0:
        return ""
    lines = result.output.strip().splitlines()
    return f"setup exited {result.exit_status}: {lines[-1].strip() if lines else 'no output'}"


def console_text(device: Device) -> str:
    """Everything the device's console showed so far ("" when it never started)."""
    try:
        return device.console_log.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def since_last_command(device: Device) -> str:
    """The console from the last command's start marker on ("" if no command started).

    A suite run cut short by a broken device gets what its own command printed, never
    the cases an earlier suite printed on the same console.
    """
    text = console_text(device)
    found = LAST_START.search(text)
    return text[found.end():] if found else ""


def list_key(*paths: Path | None) -> str:
    """A key for what was booted: the files' names, sizes and times (cheap, stable)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is not None and path.exists():
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def known_cases(cache_root: Path, suite: str, key: str) -> list[str]:
    """The case names the last run of `suite` on the same artifacts reported, sorted.

    `suite` may be a glob (`kselftest-*`): the union of the matching suites' lists.
    """
    names: set[str] = set()
    for path in (cache_root / "caselists").glob(f"{suite}-{key}.json"):
        try:
            names.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a list we cannot read is a list we do not know
    return sorted(names)


def remember_cases(cache_root: Path, suite: str, key: str, run: SuiteRun) -> None:
    """Keep the case names of this run for the next collection (atomic write)."""
    if not run.cases:
        return
    path = cache_root / "caselists" / f"{suite}-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(sorted(run.cases)))


def extra_cases(run: SuiteRun, known: list[str]) -> list[Case]:
    """Cases of the run that were not collected as items."""
    collected = set(known)
    return [case for name, case in sorted(run.cases.items()) if name not in collected]


def encode_extras(cases: list[Case], device: str) -> str:
    """Extra cases as a user property value the controller turns into reports."""
    return json.dumps([{"suite": c.suite, "name": c.name, "result": str(c.result),
                        "reason": c.reason, "log": c.log[-50:], "device": device}
                       for c in cases])


def extra_reports(report: pytest.TestReport) -> list[pytest.TestReport]:
    """Setup, call and teardown reports for the extra cases a `<suite>/run` report carries."""
    value = dict(report.user_properties).get(EXTRA_CASES)
    if report.when != "call" or not value:
        return []
    reports = []
    for data in json.loads(str(value)):
        case = Case(data["suite"], data["name"], Result(data["result"]), data["log"],
                    data["reason"])
        reports += _reports_for(report, case, data["device"])
    return reports


def _reports_for(run: pytest.TestReport, case: Case, device: str) -> list[pytest.TestReport]:
    nodeid = f"{run.nodeid.split('::')[0]}::{case.suite}/{case.name}[{device}]"
    outcome, longrepr = _outcome(case)
    props = case_properties(case, device)

    def report(when: Literal["setup", "call", "teardown"], outcome: Any = "passed",
               longrepr: Any = None) -> pytest.TestReport:
        return pytest.TestReport(nodeid=nodeid, location=run.location, keywords={},
                                 outcome=outcome, longrepr=longrepr, when=when,
                                 user_properties=props, duration=0.0)

    return [report("setup"), report("call", outcome, longrepr), report("teardown")]


def _outcome(case: Case) -> tuple[Any, Any]:
    if case.result is Result.PASS:
        return "passed", None
    if case.result in (Result.SKIP, Result.XFAIL):
        return "skipped", ("", 0, f"Skipped: {case.reason or case.result}")
    from pytest_lkft.collect import CaseFailed

    return "failed", CaseFailed(case).describe()


__all__ = ["SuiteRun", "extra_cases", "extra_reports", "known_cases", "remember_cases",
           "replay", "run_suite"]
