"""rcutorture's verdicts and statistics from the kernel log, per torture type.

Accepted lines (kernel 6.1, `<type>-torture:` messages, printk prefixes allowed):

    'LKFT-RCUTORTURE: srcu'                       the rcutorture suite's script starts a type
    'LKFT-CASE: modprobe-rcutorture pass'         a check of the script (modprobe, rmmod)
    'rcu-torture:--- Start of test: nreaders=1 ...'            -> rcutorture-start pass
    'rcu-torture: rtc: 000000 ver: 2285 tfle: 0 rta: 2286 ... nt: 23645 ...'   statistics
    'rcu-torture: Reader Pipe:  72099894 1136 0 0 ...'        statistics
    'rcu-torture:--- End of test: SUCCESS: nreaders=1 ...'    -> rcutorture-end pass
    'rcu-torture:--- End of test: FAILURE: ...'              -> rcutorture-end fail

Names are test-definitions' (`automated/linux/rcutorture/rcutorture.sh`):
modprobe-rcutorture, rcutorture-start, rmmod-rcutorture, rcutorture-end; a type other
than `rcu` is their suffix (`rcutorture-end-srcu`). A missing start or end line fails its
case. `rcutorture-end` carries the last statistics line's counters as metrics named by
the type (`rcu-ver`: grace periods, `rcu-nt`: reader loops, `rcu-rtmbe`, `rcu-rtbe`, ...:
errors) and, failing, the lines that said so (`!!!`, the end line, the statistics).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_lkft.parsers.lines import clean
from pytest_lkft.parsers.model import Case, Metric, Result
from pytest_lkft.parsers.scripted import scripted_case

SECTION = re.compile(r"^LKFT-RCUTORTURE: (\S+)$")
MESSAGE = re.compile(r"(?P<type>[\w-]+)-torture:\s?(?P<text>.*)$")
# `name: number` of a statistics line; `VER` is `ver` that did not move since the last
# statistics; `rtc` is a pointer, no counter
COUNTER = re.compile(r"\b([A-Za-z][A-Za-z-]*): (\d+)(?=\s|$)")
DEFAULT_TYPE = "rcu"


@dataclass
class Section:
    """What one torture type's run printed."""

    type: str
    started: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    stats: str = ""
    alarms: list[str] = field(default_factory=list)


def case_name(name: str, torture: str) -> str:
    """test-definitions' name, suffixed with the torture type when it is not `rcu`."""
    return name if torture == DEFAULT_TYPE else f"{name}-{torture}"


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """The cases of an rcutorture suite run's output (see the module docstring)."""
    suite = suite or "rcutorture"
    stated: list[Case] = []
    sections: list[Section] = []
    for number, raw in enumerate(lines, start=1):
        line = clean(raw).strip()
        scripted = scripted_case(line, suite, number)
        section = SECTION.match(line)
        if scripted is not None:
            stated.append(scripted)
        elif section is not None:
            sections.append(Section(section.group(1)))
        elif sections:
            _read(sections[-1], line)
    names = {case.name for case in stated}
    derived = [case for section in sections for case in _verdicts(section, suite)
               if case.name not in names]
    return stated + derived


def _read(section: Section, line: str) -> None:
    found = MESSAGE.search(line)
    if found is None or found.group("type") != section.type:
        return
    text = found.group("text")
    if text.startswith("--- Start of test"):
        section.started.append(line)
    elif text.startswith("--- End of test"):
        section.ended.append(line)
    elif text.startswith("rtc:"):
        section.stats = line
    if "!!!" in text:
        section.alarms.append(line)


def _verdicts(section: Section, suite: str) -> list[Case]:
    start = Case(suite, case_name("rcutorture-start", section.type), Result.PASS,
                 log=section.started[-1:])
    if not section.started:
        start.result, start.reason = Result.FAIL, "no `--- Start of test` in the kernel log"
    end = Case(suite, case_name("rcutorture-end", section.type), Result.PASS,
               log=[*section.alarms, section.stats, *section.ended[-1:]],
               metrics={f"{section.type}-{name.lower()}": Metric(float(value))
                        for name, value in COUNTER.findall(section.stats) if name != "rtc"})
    end.log = [line for line in end.log if line]
    if not section.ended:
        end.result, end.reason = Result.FAIL, "no `--- End of test` in the kernel log"
    elif "End of test: SUCCESS" not in section.ended[-1]:
        end.result = Result.FAIL
        end.reason = section.ended[-1].split("End of test:", 1)[1].split(":")[0].strip()
    return [start, end]
