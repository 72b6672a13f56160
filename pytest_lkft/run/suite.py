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

import dataclasses
import re
import shlex
from dataclasses import dataclass, field

from pytest_lkft.devices.base import Device
from pytest_lkft.errors import DeviceBroken
from pytest_lkft.parsers.detect import parse
from pytest_lkft.parsers.model import MISSING, Case, Result, unique_names
from pytest_lkft.parsers.scripted import suite_skip

LAST_START = re.compile(r"(?s:.*)^LKFT-START\r*$", re.MULTILINE)  # see console.run
MAX_RESTARTS = 10  # fresh boots of one suite run, each after a case killed the device


@dataclass
class SuiteRun:
    """The parsed outcome of one suite run on one device."""

    suite: str
    cases: dict[str, Case] = field(default_factory=dict)
    problem: str = ""  # why the run itself failed (no output, device died, ...)
    silent: bool = False  # the run printed nothing of its format at all
    skipped: str = ""  # why the suite could not run here (its script said `LKFT-SKIP:`)
    restarts: int = 0  # times the device was booted afresh to resume the run

    def case(self, name: str, crash: str = "") -> Case:
        """The named case, or an error case saying it is missing (a skip when the suite
        could not run)."""
        found = self.cases.get(name)
        if found is not None:
            return found
        if self.skipped:
            return Case(self.suite, name, Result.SKIP, reason=self.skipped)
        why = MISSING
        if crash or self.problem:
            why += f" ({crash or self.problem})"
        return Case(self.suite, name, Result.ERROR, reason=why)


def run_suite(device: Device, suite: str, command: str | None, fmt: str,
              timeout: float | None = None, setup: str | None = None,
              resume: str | None = None, skips: dict[str, str] | None = None) -> SuiteRun:
    """Run `command` (None: use the boot's console) on `device` and parse its output.

    `setup`, a command run first (e.g. one installing a runner script), must exit 0.
    `resume` goes on after a case: when the device died (a panic, a timeout) during a
    case and it can boot afresh (`restart()`), the lost case fails naming why, the
    device boots again, and `resume` with the lost case's name appended (quoted) runs
    the cases after it. `skips` (name -> reason) are cases the host decided not to run
    (an LTP skipfile's tags): skips of the run, whatever the device printed.
    """
    run = SuiteRun(suite)
    if setup is not None and command is not None:
        run.problem = setup_problem(device, setup, timeout)
        if run.problem:
            return with_skips(run, skips)
    text, status, run.problem = run_command(device, command, timeout)
    cases = parse(text.splitlines(), fmt, suite)
    while run.problem and resume and command and run.restarts < MAX_RESTARTS:
        lost = cases[-1] if cases and cases[-1].result is Result.ERROR else None
        restart = getattr(device, "restart", None)
        if lost is None or restart is None:
            break
        lost.result, lost.reason = Result.FAIL, f"lost: {run.problem}"
        run.restarts += 1
        restart()
        run.problem = setup_problem(device, setup, timeout) if setup else ""
        if run.problem:
            break
        text, status, run.problem = run_command(
            device, f"{resume} {shlex.quote(lost.name)}", timeout)
        cases += parse(text.splitlines(), fmt, suite)
    named = unique_names(cases, lambda c: c.name)
    run.cases = {name: dataclasses.replace(case, name=name) for name, case in named}
    run.skipped = suite_skip(text)
    # a plan the skips emptied prints no case, and says so by exiting 0
    quiet_plan = bool(skips) and status == 0
    if not run.cases and not run.problem and not run.skipped and not quiet_plan:
        run.silent = True
        run.problem = f"no {fmt} output found; see {device.console_log}"
        if status != 0 and text.strip():  # the command said why, e.g. a file it lacks
            last = text.strip().splitlines()[-1].strip()
            run.problem = (f"{last} (exit status {status}, no {fmt} output; see "
                           f"{device.console_log})")
    return with_skips(run, skips)


def with_skips(run: SuiteRun, skips: dict[str, str] | None) -> SuiteRun:
    """The run with the host's skips among its cases (a case the device reported wins)."""
    for name, reason in (skips or {}).items():
        run.cases.setdefault(name, Case(run.suite, name, Result.SKIP, [reason], reason))
    return run


def run_command(device: Device, command: str | None,
                timeout: float | None) -> tuple[str, int, str]:
    """(output, exit status, why the device broke or "") of `command` (None: the console
    of the boot); a broken device gives what the console showed since the command began."""
    started = not device.broken  # a broken device refuses the command: it prints nothing
    try:
        if command is None:
            return console_text(device), 0, ""
        result = device.run(command, timeout)
        return result.output, result.exit_status, ""
    except DeviceBroken as error:
        problem = str(error).splitlines()[0]
        if command is None:
            return console_text(device), 0, problem
        return since_last_command(device) if started else "", 0, problem


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


def extra_cases(run: SuiteRun, known: list[str]) -> list[Case]:
    """Cases of the run that were not collected as items."""
    collected = set(known)
    return [case for name, case in sorted(run.cases.items()) if name not in collected]
