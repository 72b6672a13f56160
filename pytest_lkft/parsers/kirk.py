"""kirk's JSON report (`kirk --json-report FILE`), one case per test.

Accepted document (kirk 4.2.0):

    {"results": [{"test_fqn": "ioctl_loop01", "status": "fail",
                  "test": {"command": "ioctl_loop01", "arguments": [], "log": "...",
                           "retval": ["36"], "duration": 0.0021, "result": "fail", ...}}],
     "stats": {...}, "environment": {...}}

`status` is pass, fail, brok, warn or conf; kirk derives it from the exit code only.
Mapping (as LKFT's `sed 's/brok/fail/; s/conf/skip/'`, without touching the names):
pass -> pass, fail -> fail, brok -> fail (kirk also says brok for an exec timeout or a
kernel panic: retval -1, reason "no exit status (timeout or panic)"), conf -> skip,
**warn -> fail** with reason "TWARN" (LKFT's pipeline drops the test: `warn` is not a
LAVA result word). The name is `test_fqn` unchanged; the suite is `--suite` or `ltp`.
The case log is the test's output (last `LOG_LINES` lines); `duration` and the result
counts (`passed`, `failed`, `broken`, `skipped`, `warnings`) are metrics.
A report that is not valid JSON, or not shaped like this, gives no cases.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_lkft.parsers.model import Case, Metric, Result

LOG_LINES = 200
COUNTS = ("passed", "failed", "broken", "skipped", "warnings")
STATUSES = {
    "pass": (Result.PASS, ""),
    "fail": (Result.FAIL, ""),
    "brok": (Result.FAIL, "TBROK"),
    "conf": (Result.SKIP, "TCONF"),
    "warn": (Result.FAIL, "TWARN (warnings only)"),
}


def parse_text(text: str, suite: str | None = None) -> list[Case]:
    """Parse the text of a kirk JSON report; malformed input gives no cases."""
    try:
        report = json.loads(text)
    except ValueError:
        return []
    results = report.get("results") if isinstance(report, dict) else None
    if not isinstance(results, list):
        return []
    cases = (case_of(entry, suite or "ltp") for entry in results)
    return [case for case in cases if case is not None]


def case_of(entry: Any, suite: str) -> Case | None:
    """Make one case of a `results` entry, or None if it has no name."""
    if not isinstance(entry, dict) or not isinstance(entry.get("test_fqn"), str):
        return None
    raw_test = entry.get("test")
    test: dict[str, Any] = raw_test if isinstance(raw_test, dict) else {}
    status = str(entry.get("status") or test.get("result") or "")
    result, reason = STATUSES.get(status, (Result.ERROR, f"unknown kirk status {status!r}"))
    retval = test.get("retval")
    if status == "brok" and retval == ["-1"]:
        reason = "no exit status (timeout or panic)"
    log = str(test.get("log") or "").splitlines()[-LOG_LINES:]
    case = Case(suite, entry["test_fqn"], result, log=log, reason=reason)
    duration = test.get("duration")
    if isinstance(duration, int | float):
        case.metrics["duration"] = Metric(float(duration), "s")
    for key in COUNTS:
        if isinstance(test.get(key), int | float):
            case.metrics[key] = Metric(float(test[key]))
    return case
