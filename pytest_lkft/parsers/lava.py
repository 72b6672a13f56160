"""LAVA results: test-case signals in a console log, and LAVA's YAML job log.

Console (anywhere in a line, printk prefix or not, as lava-dispatcher matches them):

    <8>[    4.291919] <LAVA_SIGNAL_STARTRUN 0_ltp-smoke 1_1.1.3.1>
    <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=access01 RESULT=pass>
    <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=boot-time RESULT=pass MEASUREMENT=4.2 UNITS=s>
    <LAVA_SIGNAL_ENDRUN 0_ltp-smoke 1_1.1.3.1>

The suite is the STARTRUN definition without its `N_` prefix (`ltp-smoke`), as SQUAD
shows it; parameters are `KEY=value` split on blanks, keys case-insensitive; results
pass/fail/skip (any case) map to themselves and `unknown` to error; another word
is ignored (LAVA refuses it). MEASUREMENT/UNITS become the `measurement` metric. The
lines since the previous signal are the case's log.
Unlike LAVA we also keep signals printed after a test-shell timeout (LAVA stops
listening; the console still shows the tests ran): see docs/results.md.

YAML job log (`lava-run --output-dir`, tuxrun's `logs.yaml`), one entry per line:

    - {"dt": "...", "lvl": "target", "msg": "<console line>"}
    - {"dt": "...", "lvl": "results", "msg": {"case": "access01",
       "definition": "0_ltp-smoke", "result": "pass", "starttc": ! "1756", ...}}

As tuxrun's results.py: each `results` entry with case, definition and result is
`<definition without N_>/<case>`; LAVA's own `lava` definition (validate, job,
login-action...) is not a test of the kernel and is left out. `target` lines since
the previous result are the case's log. Lines are parsed one by one (CSafeLoader when
libyaml is there), so the job log streams.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from pytest_lkft.parsers.lines import drive
from pytest_lkft.parsers.model import Case, Metric, Result

LOG_LINES = 200
SIGNAL = re.compile(r"<LAVA_SIGNAL_(\S+) ([^>]+)>")
RESULTS = {"pass": Result.PASS, "fail": Result.FAIL, "skip": Result.SKIP, "unknown": Result.ERROR}
Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def definition_suite(definition: str) -> str:
    """`0_ltp-smoke` -> `ltp-smoke` (LAVA numbers the definitions of a job)."""
    return re.sub(r"^\d+_", "", definition)


def signal_params(text: str) -> dict[str, str]:
    """Split `TEST_CASE_ID=x RESULT=pass` into lower-cased keys and values."""
    params: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            params[key.lower()] = value
    return params


def make_case(suite: str, params: dict[str, Any], log: list[str], line: int) -> Case | None:
    """A case from a signal's or a results entry's fields; None if LAVA would refuse it."""
    name = str(params.get("test_case_id") or params.get("case") or "")
    result = RESULTS.get(str(params.get("result", "")).lower())
    if not name or result is None:
        return None
    reason = "LAVA result unknown" if result is Result.ERROR else ""
    case = Case(suite, name, result, log=log, reason=reason, line=line)
    measurement = params.get("measurement")
    if measurement is not None:
        try:
            case.metrics["measurement"] = Metric(float(measurement), str(params.get("units", "")))
        except (TypeError, ValueError):
            case.reason = f"measurement {measurement!r} is not a number"
    return case


class ConsoleParser:
    """Push parser for signals in a console; `out` collects cases.

    Lifecycle: STARTRUN sets the suite, TESTCASE makes a case of the lines since the
    previous signal, ENDRUN clears the suite.
    """

    def __init__(self, suite: str | None = None) -> None:
        self.fixed = suite
        self.suite = suite or "lava"
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.out: list[Case] = []

    def feed(self, text: str, number: int) -> None:
        """Process one cleaned line."""
        if "<LAVA_SIGNAL_" not in text:
            self.log.append(text)
            return
        for match in SIGNAL.finditer(text):
            self._signal(match.group(1), match.group(2), number)

    def _signal(self, kind: str, body: str, number: int) -> None:
        if kind == "STARTRUN":
            self.suite = self.fixed or definition_suite(body.split()[0])
        elif kind == "ENDRUN":
            self.suite = self.fixed or "lava"
        elif kind == "TESTCASE":
            case = make_case(self.suite, signal_params(body), list(self.log), number)
            if case is not None:
                self.out.append(case)
            self.log.clear()


def iter_console(lines: Iterable[str], suite: str | None = None) -> Iterator[Case]:
    """Yield the cases of the LAVA test-case signals in a console log."""
    yield from drive(ConsoleParser(suite), lines)


def load_entry(raw: str) -> dict[str, Any] | None:
    """One `- {...}` job-log line as a dict; None if it is not one."""
    text = raw.strip()
    if not text.startswith("- {"):
        return None
    try:
        entry = json.loads(text[2:])
    except ValueError:
        try:
            loaded = yaml.load(text, Loader=Loader)
        except yaml.YAMLError:
            return None
        entry = loaded[0] if isinstance(loaded, list) and loaded else None
    return entry if isinstance(entry, dict) else None


def iter_job_log(lines: Iterable[str], suite: str | None = None) -> Iterator[Case]:
    """Yield the test results of a LAVA YAML job log, as tuxrun's results.py reads them."""
    log: deque[str] = deque(maxlen=LOG_LINES)
    for number, raw in enumerate(lines, 1):
        entry = load_entry(raw) if '"lvl"' in raw else None
        if entry is None:
            continue
        msg = entry.get("msg")
        if entry.get("lvl") == "target" and isinstance(msg, str):
            log.append(msg)
        elif entry.get("lvl") == "results" and isinstance(msg, dict):
            case = job_case(msg, suite, list(log), number)
            if case is not None:
                log.clear()
                yield case


def job_case(msg: dict[str, Any], suite: str | None, log: list[str], line: int) -> Case | None:
    """A case from one `results` message; None for LAVA's own or incomplete entries."""
    if not {"case", "definition", "result"} <= msg.keys():
        return None
    definition = definition_suite(str(msg["definition"]))
    if definition == "lava":
        return None
    return make_case(suite or definition, msg, log, line)


def parse_console(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """Parse the LAVA signals of a console log (see the module docstring)."""
    return list(iter_console(lines, suite))


def parse_job_log(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """Parse a LAVA YAML job log (see the module docstring)."""
    return list(iter_job_log(lines, suite))
