"""Cases a suite run reported that were not collected as items, reported from the controller.

Under xdist a worker may only report its own items, so the `<suite>/run` item carries its
extra cases in a user property and the controller turns them into reports of their own
(so JUnit, the terminal and the store get them).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

from pytest_lkft.parsers.model import Case, Metric, Result
from pytest_lkft.pytestplugin.items import CaseFailed, case_properties

EXTRA_CASES = "lkft.extra_cases"


def encode_extras(cases: list[Case], device: str) -> str:
    """Extra cases as a user property value the controller turns into reports."""
    return json.dumps([{"suite": c.suite, "name": c.name, "result": str(c.result),
                        "reason": c.reason, "log": c.log[-50:], "device": device,
                        "metrics": {k: [m.value, m.unit] for k, m in c.metrics.items()}}
                       for c in cases])


def extra_reports(report: pytest.TestReport) -> list[pytest.TestReport]:
    """Setup, call and teardown reports for the extra cases a `<suite>/run` report carries."""
    value = dict(report.user_properties).get(EXTRA_CASES)
    if report.when != "call" or not value:
        return []
    reports = []
    for data in json.loads(str(value)):
        metrics = {k: Metric(*value) for k, value in data.get("metrics", {}).items()}
        case = Case(data["suite"], data["name"], Result(data["result"]), data["log"],
                    data["reason"], metrics=metrics)
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
    return "failed", CaseFailed(case).describe()


class ExtraCases:
    """Controller only: turn the extra cases a suite run carries into reports of their own.

    Each extra case counts as collected, so pytest's progress (`[ 42%]`) stays a share of
    the tests it reports, not past 100 %.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        extras = extra_reports(report)
        if self.session is not None:
            self.session.testscollected += sum(extra.when == "call" for extra in extras)
        for extra in extras:
            self.config.hook.pytest_runtest_logreport(report=extra)
