"""libhugetlbfs's test suite (`tests/run_tests.py`), one case per test and page size.

Accepted lines (libhugetlbfs 2.24), a command with its environment, the page size and
word size, a tab, then what the test printed:

    'zero_filesize_segment (2M: 64):\tPASS'         -> zero_filesize_segment-2M-64 pass
    'slbpacaflush (2M: 64):\tPASS (inconclusive)'   -> pass
    'HUGETLB_VERBOSE=1 empty_mounts (2M: 64):\tPASS'-> HUGETLB_VERBOSE_1-empty_mounts-2M-64
    'direct (2M: 64):\tBad configuration: ...'       -> skip, with the reason
    'LD_PRELOAD=libhugetlbfs.so ... (2M: 64):\tSKIPPED' -> skip
    'readahead (2M: 64):\tFAIL\t<why>'              -> fail, with the reason
    'brk_near_huge (2M: 64):\tFatal glibc error: ...' -> fail (killed by a signal; the
                                                        test-definitions script drops it)
    'LKFT-CASE: ...'                                 a check of the script

Names are test-definitions' (`automated/linux/libhugetlbfs/libhugetlbfs.sh`): `/` as
`-`, parentheses and colons dropped, the words joined by `-`, `=` as `_`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytest_lkft.parsers.lines import clean
from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.parsers.scripted import scripted_case

RESULT = re.compile(r"^(?P<test>\S.*? \(\d+[KMGT]?: (?:32|64)\)):\s(?P<outcome>.*)$")


def test_name(text: str) -> str:
    """test-definitions' name of `cmd (2M: 64)`."""
    words = re.sub(r"[():]", "", text.replace("/", "-")).split()
    return "-".join(words).replace("=", "_")


def outcome(text: str) -> tuple[Result, str]:
    """The result and reason of what a test printed."""
    text = text.strip()
    if text.startswith("PASS"):
        return Result.PASS, ""
    if text.startswith("SKIP"):
        return Result.SKIP, "skipped by run_tests.py"
    if text.startswith("Bad configuration"):
        return Result.SKIP, text
    if text.startswith("FAIL"):
        return Result.FAIL, text.removeprefix("FAIL").strip()
    return Result.FAIL, text or "no result (killed by a signal?)"


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """The cases of a libhugetlbfs suite run's output (see the module docstring)."""
    suite = suite or "libhugetlbfs"
    cases: list[Case] = []
    for number, raw in enumerate(lines, start=1):
        line = clean(raw)
        scripted = scripted_case(line, suite, number)
        found = RESULT.match(line)
        if scripted is not None:
            cases.append(scripted)
        elif found is not None:
            result, reason = outcome(found.group("outcome"))
            cases.append(Case(suite, test_name(found.group("test")), result, log=[line],
                              reason=reason, line=number))
    return cases
