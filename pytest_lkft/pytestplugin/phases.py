"""Keep LKFT cases' empty setup and teardown reports out of the terminal's statistics.

pytest's terminal reporter keeps every passing setup and teardown report in
`stats[""]`, and at the end scans that whole list once per failure (to print the
failure's teardown sections: `TerminalReporter._handle_teardown_sections`). With
168,000 cases and 4,000 failures that is 4,000 scans of 336,000 reports, which made
the end of a large run take minutes, growing with tests times failures.

An LKFT case's passing setup or teardown report with no section of its own phase
(output captured during that setup or teardown; a report also carries the sections
of the phases before it) has nothing for the terminal to print, so once every plugin
has seen it, it is taken back out of `stats[""]`: the scans then cost what the other
tests' reports cost. Reports with such output, and other tests' reports, stay.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

SUITE = "lkft.suite"  # the reporting contract's marker of an LKFT case (see `reporting`)
TERMINAL = "terminalreporter"


def is_silent_case_phase(report: pytest.TestReport) -> bool:
    """A passing setup/teardown report of an LKFT case, with nothing captured in it."""
    return (report.when != "call" and report.passed
            and not any(report.when in title for title, _ in report.sections)
            and any(key == SUITE for key, _ in report.user_properties))


class SilentPhases:
    """Drop LKFT cases' silent setup/teardown reports from the terminal's `stats[""]`."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        yield  # junitxml, the reporter and the terminal see the report first
        if not is_silent_case_phase(report):
            return
        terminal = self.config.pluginmanager.get_plugin(TERMINAL)
        blank = getattr(terminal, "stats", {}).get("")
        if blank and blank[-1] is report:
            blank.pop()


def configure(config: pytest.Config) -> None:
    """Register the plugin (wherever reports reach a terminal: controller or no xdist)."""
    config.pluginmanager.register(SilentPhases(config), "lkft-silent-phases")
