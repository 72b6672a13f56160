"""Crash detection in console output: panics, oopses, BUG/KASAN/KCSAN/KFENCE, warnings.

Fed text as it arrives from the console (any chunking); each complete line is matched
against the lab's crash patterns. A crash keeps the lines that follow it, up to the end
of the trace, as its excerpt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pytest_lkft.errors import UserError
from pytest_lkft.settings.tables import (
    data_path,
    depends_on_lab_dir,
    expect,
    make_entry,
    read_table,
)

CRASH_FILE = "crash-patterns.yaml"

EXCERPT_LINES = 40
TRACE_END = re.compile(r"---\[ end (?:trace|Kernel panic)")


@dataclass(frozen=True)
class CrashPattern:
    """A console line pattern that means the kernel crashed or warned."""

    kind: str
    regex: re.Pattern[str]
    fatal: bool = False


@dataclass(frozen=True)
class PatternEntry:
    """One entry of crash-patterns.yaml, as written."""

    kind: str
    pattern: str
    fatal: bool = False


@depends_on_lab_dir
@cache
def load_crash_patterns(path: Path | None = None) -> tuple[CrashPattern, ...]:
    """Read the crash patterns (the packaged or --lkft-lab-dir `crash-patterns.yaml`), in
    match order."""
    path = path or data_path(CRASH_FILE)
    entries = expect(path, read_table(path), list, "the file")
    return tuple(_pattern(path, index, entry) for index, entry in enumerate(entries, 1))


def _pattern(path: Path, index: int, entry: Any) -> CrashPattern:
    found = make_entry(PatternEntry, path, f"#{index}", entry)
    try:
        regex = re.compile(found.pattern)
    except re.error as error:
        raise UserError(f"{path}: entry '#{index}': pattern {found.pattern!r} is not a "
                        f"regular expression ({error})") from None
    return CrashPattern(found.kind, regex, found.fatal)


@dataclass
class Crash:
    """One kernel crash or warning seen on the console."""

    kind: str
    line: str
    fatal: bool
    lineno: int
    context: str = ""
    excerpt: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A short multi-line description: what, where, then the excerpt."""
        where = f" during {self.context}" if self.context else ""
        head = f"{self.kind}{where} (console line {self.lineno}): {self.line.strip()}"
        return "\n".join([head, *self.excerpt])


class CrashDetector:
    """Scan console text for crash patterns; `crashes` grows as they are seen."""

    def __init__(self, patterns: Sequence[CrashPattern]) -> None:
        self.patterns = tuple(patterns)
        self.any = re.compile("|".join(f"(?:{p.regex.pattern})" for p in self.patterns))
        self.crashes: list[Crash] = []
        self.booted_at = 0  # crashes before it belong to an earlier boot of the device
        self.context = ""
        self._partial = ""
        self._lineno = 0
        self._open: Crash | None = None

    def feed(self, text: str) -> None:
        """Consume a chunk of console output."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.rstrip("\r"))

    def _line(self, line: str) -> None:
        self._lineno += 1
        if self._open is not None:
            self._extend(self._open, line)
        if self.any.search(line):
            self._match(line)

    def _extend(self, crash: Crash, line: str) -> None:
        crash.excerpt.append(line)
        if len(crash.excerpt) >= EXCERPT_LINES or TRACE_END.search(line):
            self._open = None

    def _match(self, line: str) -> None:
        pattern = next(p for p in self.patterns if p.regex.search(line))
        if self._open is not None and not pattern.fatal:
            return  # part of the trace being recorded (an Oops inside a BUG report)
        crash = Crash(pattern.kind, line, pattern.fatal, self._lineno, self.context, [line])
        self.crashes.append(crash)
        self._open = crash

    def new_boot(self) -> None:
        """The device boots again: earlier crashes stay listed but are no longer fatal to it."""
        self.booted_at = len(self.crashes)
        self._open, self._partial = None, ""

    @property
    def fatal(self) -> Crash | None:
        """The first fatal crash (a panic) of the current boot, if any."""
        return next((c for c in self.crashes[self.booted_at:] if c.fatal), None)
