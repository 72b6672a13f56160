"""JUnit as kernel CI reads it: classname the suite, name the case, the case's log as output.

pytest's junitxml names test cases after the Python node id (`testsuites.test_smoke`,
`test_smoke[qemu-arm64-uname]`). After it has written the file, the controller rewrites
every LKFT case (one with an `lkft.suite` property): classname = the SQUAD suite, name =
`<test> [<device>]`, and the case's log (the report sections the item added) as
`<system-out>`. The name is the same whether one device ran or a matrix did, so a CI's
test history and `lkft junit merge` of several runs keep each case apart and in line.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

LOG_SECTIONS = ("log", "console", "kernel log")
MAX_LOG = 200_000  # characters of one case's log kept in system-out


def case_key(properties: dict[str, str]) -> tuple[str, str, str]:
    """(device, suite, test) of an LKFT case."""
    return properties.get("lkft.device", ""), properties["lkft.suite"], properties["lkft.test"]


class JunitRelabel:
    """Controller-only plugin: remember case logs, then relabel the JUnit file."""

    def __init__(self, xmlpath: str) -> None:
        self.path = Path(xmlpath)
        self.logs: dict[tuple[str, str, str], str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = {str(k): str(v) for k, v in report.user_properties}
        if "lkft.suite" not in properties:
            return
        text = "\n".join(body for title, body in report.sections
                         if _section(title, report.when) in LOG_SECTIONS)
        if text:
            key = case_key(properties)
            self.logs[key] = (self.logs.get(key, "") + text)[-MAX_LOG:]

    @pytest.hookimpl(trylast=True)  # after junitxml has written the file
    def pytest_sessionfinish(self) -> None:
        if self.path.is_file():
            relabel(self.path, self.logs)


def relabel(path: Path, logs: dict[tuple[str, str, str], str]) -> None:
    """Rewrite the LKFT test cases of the JUnit file at `path` in place."""
    tree = ET.parse(path)
    cases = [(case, _properties(case)) for case in tree.getroot().iter("testcase")]
    for case, props in cases:
        if "lkft.suite" not in props:
            continue
        device, suite, test = case_key(props)
        case.set("classname", suite)
        case.set("name", f"{test} [{device}]")
        log = logs.get((device, suite, test))
        if log and case.find("system-out") is None:
            ET.SubElement(case, "system-out").text = log
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _section(title: str, when: str | None) -> str:
    """`log` of `Captured log call` (the title `Item.add_report_section` gives) in the call
    report; '' in later reports, which carry the sections of the phases before them again."""
    words = title.split(" ")
    if len(words) > 2 and words[0] == "Captured":
        return " ".join(words[1:-1]) if words[-1] == when else ""
    return title


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def configure(config: pytest.Config) -> None:
    """Register the relabelling on the controller when --junitxml is given."""
    xmlpath = config.getoption("xmlpath", None)
    if xmlpath and not hasattr(config, "workerinput"):
        config.pluginmanager.register(JunitRelabel(xmlpath), "lkft-junit")
