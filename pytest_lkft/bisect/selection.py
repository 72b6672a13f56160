"""`--test SELECTION`: which results a bisection judges, named as the results name them.

A selection is `suite/case` (`kunit/list-kunit-test.list_test_list_init`,
`ltp-syscalls/fork01`, `boot/boot`), a whole suite (`kunit`) or a glob on either part
(`kunit/list-kunit-test.*`, `ltp-*/fork*`). A step runs only the suites the selection
names and, of those, only the cases it matches (the patterns themselves are the step's
`--lkft-tests`: a suite's other cases are no items, which saves their reporting), and
judges those cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pytest_lkft.errors import UserError

GLOB = re.compile(r"[*?\[]")
SUITE = re.compile(r"^[A-Za-z0-9*?\[\]_.+-]+$")
BUILD_SUITE = "build"


@dataclass(frozen=True)
class Pattern:
    """One `--test` value: a suite pattern and a case pattern (`*` for a whole suite)."""

    suite: str
    case: str

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """`suite/case`, `suite` or globs; a UserError naming the value otherwise."""
        suite, _, case = text.strip().partition("/")
        if not suite or not SUITE.match(suite) or (_ and not case):
            raise UserError(f"--test {text!r}: expected SUITE/CASE, a SUITE or a glob, "
                            "e.g. kunit/list-kunit-test.list_test_list_init or ltp-syscalls")
        return cls(suite, case or "*")

    @property
    def exact(self) -> bool:
        """True when the pattern names one case (no glob, not a whole suite)."""
        return not GLOB.search(self.suite) and not GLOB.search(self.case)

    def matches(self, case_id: str) -> bool:
        """True when `suite/name` is selected by this pattern."""
        suite, _, name = case_id.partition("/")
        return fnmatchcase(suite, self.suite) and fnmatchcase(name, self.case)

    def __str__(self) -> str:
        return f"{self.suite}/{self.case}"


@dataclass(frozen=True)
class Selection:
    """The `--test` values of a bisection, in the order given."""

    patterns: tuple[Pattern, ...]

    @classmethod
    def parse(cls, texts: list[str] | tuple[str, ...]) -> Selection:
        """Parse every `--test`; at least one is needed."""
        if not texts:
            raise UserError("no --test given: name the failing case, e.g. "
                            "--test kunit/list-kunit-test.list_test_list_init")
        return cls(tuple(dict.fromkeys(Pattern.parse(text) for text in texts)))

    def matches(self, case_id: str) -> bool:
        """True when any pattern selects `suite/name`."""
        return any(pattern.matches(case_id) for pattern in self.patterns)

    def tests(self, whole: bool = False) -> list[str]:
        """The `--lkft-tests` values a step runs: the build, then the selected cases
        (`kunit/list-kunit-test.list_test_list_init`: that case and its suite's checks), or
        with `whole` their suites (every case: the bisection's two ends)."""
        tests = [p.suite if whole else str(p).removesuffix("/*") for p in self.patterns]
        return list(dict.fromkeys([BUILD_SUITE, *tests]))

    def selects_build(self) -> bool:
        """True when the selection judges the build itself (`build/kernel`, `build`)."""
        return any(fnmatchcase(BUILD_SUITE, p.suite) for p in self.patterns)

    def exact_cases(self) -> list[str]:
        """The cases named one by one, which a run must report."""
        return [str(p) for p in self.patterns if p.exact]

    def __str__(self) -> str:
        return " ".join(str(p).removesuffix("/*") for p in self.patterns)

    def as_args(self) -> list[str]:
        """The selection as `--test` values again (for the state file and reproducers)."""
        return [str(p).removesuffix("/*") for p in self.patterns]
