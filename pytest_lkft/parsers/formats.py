"""The registry of results formats: how to recognise a log, and how to parse it.

Each entry is a `Format`: a name, a `sniff` that looks at a log's first lines (joined, at
most about 1 MB: see `detect`) and says whether they are in this format, a `parse` from
lines to cases (a list, or an iterator that yields them as they are read, so that `lkft
parse` streams), and a `rank`: logs are sniffed in rank order and the first entry that
recognises one names its format. A format may have several entries (LAVA's job log is
recognised early, a LAVA console only after kselftest and KTAP have had their look). A
log nothing recognises is read as KTAP. A `document` format (JSON) is given the whole
file as one string; the others get lines, none longer than `lines.LINE_LIMIT`.

Adding one is one module plus one registration: `register(Format(...))` (a plugin may
instead return it from the `pytest_lkft_formats` hook; a package may name it in the
`pytest_lkft.formats` entry-point group, which `lkft parse` loads too). Recipe:
docs/architecture.md. The built-in parsers import on first use, so recognising a format
costs nothing before a log is read.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import BinaryIO

from pytest_lkft.errors import UserError
from pytest_lkft.parsers.model import Case

ENTRY_POINTS = "pytest_lkft.formats"
FALLBACK = "ktap"
Parse = Callable[[Iterator[str], "str | None"], Iterable[Case]]
ParseBinary = Callable[[BinaryIO, "str | None", list[str]], Iterable[Case]]


@dataclass(frozen=True)
class Format:
    """One way to recognise and parse a results log."""

    name: str
    sniff: Callable[[str], bool]
    parse: Parse
    rank: int = 50
    parse_binary: ParseBinary | None = None  # a faster reader of the whole file, if any
    document: bool = False  # one document (JSON): parse gets the whole text at once


_REGISTRY: list[Format] = []
_loaded_entry_points = False


def register(fmt: Format) -> Format:
    """Add `fmt`, sniffed after the entries of lower or equal rank already there."""
    if not re.match(r"^[a-z][a-z0-9_-]*$", fmt.name) or fmt.name == "auto":
        raise UserError(f"invalid format name {fmt.name!r}; use lower-case letters, digits, "
                        "'-' and '_' (not 'auto')")
    position = sum(1 for known in _REGISTRY if known.rank <= fmt.rank)
    _REGISTRY.insert(position, fmt)
    return fmt


def registered() -> list[Format]:
    """Every entry, in sniffing order (entry-point formats loaded on first call)."""
    _load_entry_points()
    return list(_REGISTRY)


def names() -> list[str]:
    """The format names, `auto` first, as `--format` takes them."""
    return ["auto", *dict.fromkeys(fmt.name for fmt in registered())]


def get(name: str) -> Format:
    """The first entry of format `name`; UserError listing the names for an unknown one."""
    for fmt in registered():
        if fmt.name == name:
            return fmt
    raise UserError(f"unknown format {name!r}; use one of {', '.join(names())}")


def sniff(text: str) -> str | None:
    """The format of a log whose first lines are `text`: the first entry that sniffs it, or
    None when none does."""
    for fmt in registered():
        if fmt.sniff(text):
            return fmt.name
    return None


def detect(text: str) -> str:
    """The format of a log whose first lines are `text`, `FALLBACK` when nothing sniffs it."""
    return sniff(text) or FALLBACK


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for point in entry_points(group=ENTRY_POINTS):
        found = point.load()  # a Format, or a function returning a list of them
        if isinstance(found, Format):
            register(found)
            continue
        for fmt in found():
            register(fmt)


def lazy(module: str, function: str) -> Parse:
    """A parse function that imports `pytest_lkft.parsers.<module>` when first called."""
    def parse(lines: Iterator[str], suite: str | None) -> Iterable[Case]:
        parser = getattr(importlib.import_module(f"pytest_lkft.parsers.{module}"), function)
        found: Iterable[Case] = parser(lines, suite)
        return found
    return parse


# -- the built-in formats ------------------------------------------------------------------

# Every sniffing regex runs in time linear in its text (no `.*` before a word, no `\s*`
# that crosses lines): a log's first megabyte is sniffed in milliseconds (issue 17).
KSELFTEST = re.compile(r"^(?:(?:not )?ok \d+ |# )selftests: \S+: ", re.MULTILINE)
KTAP = re.compile(r"^[ \t]*(?:<\d+>)?(?:\[[^\]\n]*\][ \t]*)*K?TAP version \d+", re.MULTILINE)
KIRK_CONSOLE = re.compile(r"^─{3,}[ \t]*\n[ \t]+\S+[ \t]*\n─{3,}[ \t]*\nExecuting: ", re.MULTILINE)
LTP = re.compile(
    r"^(?:Testcase\s+Result\s+Exit Value|tag=\S+ stime=|<<<test_start>>>"
    r"|\S+: (?:pass|fail|broken|skip)(?: \| tainted)?\s+\(\d+\.\d+s\)"
    r"|INFO: Test start time:)",
    re.MULTILINE,
)
LTP_WORDS = re.compile(r"\bT(?:PASS|FAIL|BROK|CONF)\b")


def _parse_kirk(lines: Iterator[str], suite: str | None) -> Iterable[Case]:
    from pytest_lkft.parsers import kirk

    return kirk.parse_text("\n".join(line.removesuffix("\n") for line in lines) + "\n", suite)


def _parse_lava(lines: Iterator[str], suite: str | None) -> Iterable[Case]:
    """A LAVA job log (`- {"dt": ...` lines) or a console with signals."""
    from itertools import chain, islice

    from pytest_lkft.parsers import lava

    head = list(islice(lines, 50))
    if any(line.startswith('- {"dt"') for line in head):
        return lava.iter_job_log(chain(head, lines), suite)
    return lava.iter_console(chain(head, lines), suite)


def _parse_ktap(lines: Iterator[str], suite: str | None) -> Iterable[Case]:
    from pytest_lkft.parsers import ktap

    return ktap.iter_cases(lines, suite or "kunit")


def _ktap_binary(stream: BinaryIO, suite: str | None, head: list[str]) -> Iterable[Case]:
    from pytest_lkft.parsers import ktap  # read in blocks, not lines: the C scanner's input

    return ktap.iter_binary(stream, suite or "kunit", head)


BUILT_IN = (
    Format("kirk", lambda text: text.lstrip().startswith("{") and '"results"' in text,
           _parse_kirk, rank=10, document=True),
    Format("lava", lambda text: '- {"dt": ' in text, _parse_lava, rank=20),
    Format("kselftest", lambda text: bool(KSELFTEST.search(text)),
           lazy("kselftest", "iter_cases"), rank=30),
    Format("ktap", lambda text: bool(KTAP.search(text)), _parse_ktap, rank=40,
           parse_binary=_ktap_binary),
    Format("lava", lambda text: "<LAVA_SIGNAL_" in text or "/bin/lava-test-runner" in text,
           _parse_lava, rank=50),
    Format("kirk-console", lambda text: bool(KIRK_CONSOLE.search(text)),
           lazy("kirk_console", "iter_cases"), rank=55),
    Format("ltp", lambda text: bool(LTP.search(text) or LTP_WORDS.search(text)),
           lazy("ltp", "iter_cases"), rank=60),
)
for _format in BUILT_IN:
    register(_format)
