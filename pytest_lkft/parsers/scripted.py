"""The lines pytest-lkft's suite scripts print about themselves (`data/suite-lib.sh`).

Accepted lines:

- `LKFT-CASE: <name> <pass|fail|skip> [<reason>]`: a check the script made itself
  (`modprobe-vivid`, `perf_record_test`), as test-definitions' scripts report them;
- `LKFT-SKIP: <reason>`: the suite cannot run here (a kernel option, a command); the
  suite run reports it (`pytest_lkft.run.suite`), no case is made.
"""

from __future__ import annotations

import re

from pytest_lkft.parsers.model import Case, Result

CASE = re.compile(r"^LKFT-CASE: (\S+) (pass|fail|skip)(?: (.*))?$")
SKIP = re.compile(r"^LKFT-SKIP: (.*)$", re.MULTILINE)


def scripted_case(line: str, suite: str, number: int = 0) -> Case | None:
    """The case an `LKFT-CASE:` line states, None for any other line."""
    found = CASE.match(line.strip())
    if found is None:
        return None
    name, result, reason = found.groups()
    return Case(suite, name, Result(result), log=[line.strip()], reason=reason or "",
                line=number)


def suite_skip(text: str) -> str:
    """The reason of the first `LKFT-SKIP:` line of `text`, "" when there is none."""
    found = SKIP.search(text)
    return found.group(1).strip() if found else ""
