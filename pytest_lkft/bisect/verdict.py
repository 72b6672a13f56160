"""A step's verdict from its results: good, bad or skip (git bisect's 0, 1 and 125).

Pure logic on the cases a step's runs reported (`pytest_lkft.parsers.model.Case`):

- skip: the kernel does not build (a failed `build/<target>`, unless the selection judges
  the build itself); a case named one by one is missing from the results and the run did
  not crash inside it (the device did not boot, an earlier case crashed it, the case does
  not exist at this revision); every selected case was skipped;
- bad: a selected case failed or errored, or the kernel crashed while it ran;
- good: otherwise, with at least one selected case passed.

"Crashed while it ran": a KTAP run cut short by a panic reports the cases its plans still
promised as `<block>.<missing #N>` errors (`pytest_lkft.parsers.ktap`). The N-th child
of that block is known from a run that reported the block whole (the good revision's): when
it is the selected case, the crash was in the selected case.

With `--repeat N` each run is judged alone; runs that disagree (good and bad) make the
step flaky, and `--flaky=bad|good|skip` says what a flaky step counts as.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_lkft.bisect.selection import BUILD_SUITE, Selection
from pytest_lkft.parsers.model import MISSING, Case, Result

GOOD, BAD, SKIP, FLAKY = "good", "bad", "skip", "flaky"
EXIT_CODES = {GOOD: 0, BAD: 1, SKIP: 125}
FLAKY_CHOICES = (BAD, GOOD, SKIP)
PLACEHOLDER = re.compile(r"^(?P<block>.+)\.<missing #(?P<first>\d+)(?:\.\.#(?P<last>\d+))?>$")
FAILING = (Result.FAIL, Result.ERROR, Result.XFAIL)
HEAD = re.compile(r"^(?P<id>.+?): (?:pass|fail|skip|xfail|error)(?: \((?P<reason>.*)\))?"
                  r"(?: \[log line \d+\])?$")

CaseOrder = dict[str, list[str]]  # "suite/block" -> its children's names, in run order


@dataclass(frozen=True)
class Verdict:
    """What a step (or one run of it) says about its revision."""

    word: str  # good, bad, skip, or flaky when runs disagree and no --flaky was given
    reason: str
    cases: dict[str, str] = field(default_factory=dict)  # selected case -> its result(s)

    @property
    def exit_code(self) -> int:
        """git bisect run's code: 0 good, 1 bad, 125 skip (128, abort, for flaky)."""
        return EXIT_CODES.get(self.word, 128)


def is_missing(case: Case) -> bool:
    """An error the plugin gives a known case its run did not report."""
    return case.result is Result.ERROR and any(MISSING in line for line in case.log[:3])


def build_failure(cases: Iterable[Case]) -> str | None:
    """The first error line of a failed `build/<target>`, None when the build passed."""
    for case in cases:
        if case.suite != BUILD_SUITE or case.result not in FAILING:
            continue
        lines = [line.strip() for line in case.log]
        head = f"{case.name} failed:"  # test_build.py's message, then the first errors
        if head in lines[:-1]:
            return lines[lines.index(head) + 1]
        return f"{case.id} {case.result}"
    return None


def case_order(cases: Iterable[Case]) -> CaseOrder:
    """Each block's children in the order a run reported them (`suite/a.b.c`: block
    `suite/a` has child `b`, block `suite/a.b` has child `c`)."""
    order: CaseOrder = {}
    for case in cases:
        if PLACEHOLDER.match(case.name):
            continue
        parts = case.name.split(".")
        for depth in range(1, len(parts)):
            block = f"{case.suite}/{'.'.join(parts[:depth])}"
            children = order.setdefault(block, [])
            if parts[depth] not in children:
                children.append(parts[depth])
    return order


def first_missing(cases: Iterable[Case]) -> dict[str, tuple[int, Case]]:
    """Each block a crash cut short: the number of its first missing case, and that case."""
    first: dict[str, tuple[int, Case]] = {}
    for case in cases:
        found = PLACEHOLDER.match(case.name)
        if found:
            block = f"{case.suite}/{found.group('block')}"
            number = int(found.group("first"))
            if block not in first or number < first[block][0]:
                first[block] = (number, case)
    return first


def crashed_in(case_id: str, cases: Iterable[Case], order: CaseOrder) -> str | None:
    """The crash line when the run stopped inside `case_id`: its block's first missing
    case (see the module docstring) is the one at its place in `order`."""
    for block, (number, case) in first_missing(cases).items():
        if not case_id.startswith(block + "."):
            continue
        child = case_id[len(block) + 1:].split(".")[0]
        children = order.get(block, [])
        if child in children and children.index(child) + 1 == number:
            return crash_line(case)
    return None


def selected_any(cases: list[Case], selection: Selection) -> bool:
    """True when a run reports a selected case, or crashed inside the block of one."""
    if any(selection.matches(c.id) and not is_missing(c) for c in cases):
        return True
    blocks = first_missing(cases)
    return any(name.startswith(block + ".") for name in selection.exact_cases()
               for block in blocks)


def crash_line(case: Case) -> str:
    """What a crashed case's result says the kernel stopped with (the KTAP parser gives the
    placeholder the kernel's last line, e.g. `Kernel panic - not syncing: ...`)."""
    return reason_of(case) or "crashed"


def reason_of(case: Case) -> str:
    """A case's reason; read back from a store, the head of its failure text holds it
    (`suite/name: error (reason) [log line N]`, as the plugin reports a case)."""
    if case.reason or not case.log:
        return case.reason
    found = HEAD.match(case.log[0].strip())
    if found is None or found.group("id") != case.id:
        return ""
    return found.group("reason") or ""


def judge(cases: list[Case], selection: Selection, order: CaseOrder) -> Verdict:
    """The verdict of one run of a step (see the module docstring)."""
    failed = build_failure(cases)
    if failed is not None and not selection.selects_build():
        return Verdict(SKIP, f"the kernel does not build: {failed}")
    chosen = [c for c in cases if selection.matches(c.id) and not is_missing(c)]
    results = {c.id: str(c.result) for c in chosen}
    bad = [c for c in chosen if c.result in FAILING]
    for name in selection.exact_cases():
        if name in results:
            continue
        crash = crashed_in(name, cases, order)
        if crash is None:
            results[name] = "missing"
            if not bad:
                return Verdict(SKIP, f"{name} not reported ({why_missing(name, cases)})",
                               results)
        else:
            results[name] = "crashed"
            suite, _, test = name.partition("/")
            bad.append(Case(suite, test, Result.ERROR, reason=crash))
    if bad:
        return Verdict(BAD, f"{bad[0].id} {how_bad(bad[0], results)}", results)
    if not any(c.result is Result.PASS for c in chosen):
        said = ", ".join(f"{name} {result}" for name, result in results.items())
        return Verdict(SKIP, f"no selected case ran: {said or 'none in the results'}", results)
    return Verdict(GOOD, f"{len(chosen)} selected case(s) passed", results)


def how_bad(case: Case, results: dict[str, str]) -> str:
    """`fail`, `error`, or `crashed: <the kernel's last line>`."""
    if results.get(case.id) == "crashed":
        return f"crashed: {case.reason}"
    return str(case.result)


def why_missing(name: str, cases: list[Case]) -> str:
    """Why a case is not in the results: the run's own word, else the suite's crash."""
    suite = name.split("/", 1)[0]
    for case in cases:
        why = reason_of(case).removeprefix(MISSING).strip()
        if case.id == name and why.startswith("(") and why.endswith(")"):
            return why[1:-1]
    for case in cases:
        if case.suite == suite and case.name in ("run", "crash") and case.result in FAILING:
            lines = [line.strip() for line in case.log if line.strip()]
            return lines[0] if lines else f"{case.id} {case.result}"
    return "the run did not report it"


def combine(verdicts: list[Verdict], flaky: str | None = None) -> Verdict:
    """One verdict from each run's: agreeing runs (skips aside) decide; good and bad
    together are flaky, counted as `flaky` (bad, good or skip) when it is given."""
    words = {v.word for v in verdicts}
    cases: dict[str, list[str]] = {}
    for verdict in verdicts:
        for name, result in verdict.cases.items():
            cases.setdefault(name, []).append(result)
    merged = {name: ",".join(results) for name, results in cases.items()}
    if {GOOD, BAD} <= words:
        good = sum(v.word == GOOD for v in verdicts)
        reason = (f"flaky: {good} of {len(verdicts)} runs good, "
                  f"{sum(v.word == BAD for v in verdicts)} bad "
                  f"({next(v.reason for v in verdicts if v.word == BAD)})")
        return Verdict(flaky or FLAKY, reason, merged)
    decided = [v for v in verdicts if v.word != SKIP] or verdicts
    return Verdict(decided[0].word, decided[0].reason, merged)
