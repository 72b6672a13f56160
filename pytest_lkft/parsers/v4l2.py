"""v4l2-compliance's tests (`v4l2-compliance -v`) and the v4l2 suite's checks.

Accepted lines (v4l-utils 1.22):

    '\ttest VIDIOC_QUERYCAP: OK'                  -> VIDIOC_QUERYCAP pass
    '\ttest VIDIOC_G/S_PRIORITY: OK'              -> VIDIOC_G-S_PRIORITY pass
    '\ttest Cropping: OK (Not Supported)'         -> Cropping pass (test-definitions' way)
    '\t\tfail: v4l2-test-formats.cpp(263): ...'   the log of the next result
    '\ttest VIDIOC_ENUM_FMT/FRAMESIZES/FRAMEINTERVALS: FAIL'   -> fail
    'LKFT-CASE: modprobe-vivid pass'              a check of the script

Names are test-definitions' (`automated/linux/v4l2/v4l2-compliance.sh`): the text after
`test `, blanks as `_`, `/` as `-`. v4l2-compliance tests each input of a device: a
name seen again is numbered (`VIDIOC_QUERYCTRL#2`) by the suite run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytest_lkft.parsers.lines import clean
from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.parsers.scripted import scripted_case

RESULT = re.compile(r"^\s*test (?P<name>.+): (?P<result>OK|FAIL)(?: \((?P<why>.*)\))?\s*$")
LOG_LINES = 50


def test_name(text: str) -> str:
    """test-definitions' name of a v4l2-compliance test description."""
    return text.replace(" ", "_").replace("/", "-")


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """The cases of a v4l2 suite run's output (see the module docstring)."""
    suite = suite or "v4l2"
    cases: list[Case] = []
    log: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = clean(raw)
        scripted = scripted_case(line, suite, number)
        found = RESULT.match(line)
        if scripted is not None:
            cases.append(scripted)
        elif found is not None:
            result = Result.PASS if found.group("result") == "OK" else Result.FAIL
            cases.append(Case(suite, test_name(found.group("name")), result,
                              log=[*log, line.strip()], reason=found.group("why") or "",
                              line=number))
            log = []
        elif line.strip():
            log = (log + [line.strip()])[-LOG_LINES:]
    return cases
