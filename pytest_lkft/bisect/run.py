"""A bisection from good to bad: check, verify both ends, let `git bisect` pick, report.

Lifecycle: `Bisector(bisection, layout, store, cache, out).run()` takes the repository's
worktree (waiting for another bisection of it to end), tests the bad revision (the
selection must match one of its cases) and the good one (it must pass), then marks each
revision `git bisect` checks out with the step's verdict until the first bad commit is
known, printing a line per step. Every step goes to the store (project `bisect/<name>`)
when it ends; a step already recorded there is not run again, which is what `--resume`
relies on: the worktree's own bisect state is rebuilt from the store each time.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TextIO

from pytest_lkft.bisect import git
from pytest_lkft.bisect.report import PLACE, Step, reproducer, step_line, table
from pytest_lkft.bisect.selection import Selection
from pytest_lkft.bisect.state import GROUP, Bisection, Layout
from pytest_lkft.bisect.step import (
    STEP_ENV,
    Runner,
    order_of,
    recorded_steps,
    recorded_verdict,
    step_record,
)
from pytest_lkft.bisect.verdict import (
    BAD,
    FLAKY,
    GOOD,
    SKIP,
    CaseOrder,
    Verdict,
    build_failure,
    selected_any,
)
from pytest_lkft.errors import UserError
from pytest_lkft.reporting.store import RunRecord, Store

FOUND, INCONCLUSIVE = 0, 1  # exit statuses of `lkft bisect` (2: bad input, 130: Ctrl-C)


class Stopped(Exception):
    """The bisection cannot go on (a flaky step); the message says why and what to do."""


class Bisector:
    """Runs one bisection; see the module docstring."""

    def __init__(self, bisection: Bisection, layout: Layout, store: Store, cache: Path,
                 out: TextIO) -> None:
        self.b, self.layout, self.store, self.out = bisection, layout, store, out
        self.selection = Selection.parse(bisection.tests)
        worktree = layout.worktree
        self.runner = Runner(bisection.name, worktree, layout.objects(worktree), cache,
                             bisection.device, self.selection, tuple(bisection.pytest_args),
                             bisection.repeat, bisection.flaky)
        self.steps: list[Step] = []
        self.recorded: dict[str, RunRecord] = {}
        self.order: CaseOrder = {}

    def say(self, line: str) -> None:
        """One line of progress."""
        self.out.write(line + "\n")
        self.out.flush()

    def run(self) -> int:
        """The whole bisection; FOUND or INCONCLUSIVE (a UserError for bad input)."""
        tree = Path(self.b.tree)
        with self.layout.locked(self.out, self.runner.build_dir):
            git.ensure_worktree(git.repository(tree), self.layout.worktree, self.b.bad)
            self.recorded = recorded_steps(self.store, self.b.name)
            commits = git.count_commits(tree, self.b.good, self.b.bad)
            self.say(f"bisecting {commits} commits of {tree} from good {self.b.good[:12]} to "
                     f"bad {self.b.bad[:12]} on {self.b.device}: {self.selection}; about "
                     f"{estimate(commits)} steps after checking both ends")
            try:
                self.check_ends()
                answer = git.bisect_start(self.layout.worktree, self.b.bad, self.b.good)
                while not answer.done:
                    answer = self.next_step(answer.steps_left)
            except Stopped as stopped:
                self.say(str(stopped))
                self.finish(None)
                return INCONCLUSIVE
            return self.finish(answer)

    # -- the two ends --

    def check_ends(self) -> None:
        """The bad revision must fail the selection, the good one pass it (one line each,
        after both are recorded: results obtained are kept). Both run every case of the
        selected suites: a selection that names no case is said with the cases there are,
        and the two ends can be compared whole (`lkft compare`)."""
        bad_runs = self.runs_at(self.b.bad, whole=True)
        if bad_runs is not None:
            self.check_selection(bad_runs)
            if self.runner.verdict(bad_runs, {}).word == FLAKY:  # said before going on
                self.conclude(self.b.bad, bad_runs)
        good_runs = self.runs_at(self.b.good, whole=True)
        logs = [self.recorded[sha].log for sha in (self.b.good, self.b.bad)
                if sha in self.recorded]
        logs += [run.log for run in [*(good_runs or []), *(bad_runs or [])]]
        self.order = order_of(logs, self.selection)
        bad = self.conclude(self.b.bad, bad_runs)
        good = self.conclude(self.b.good, good_runs)
        if good.word == BAD:
            raise UserError(f"the good revision fails too: {self.b.good[:12]} {good.reason}; "
                            "pass an older --good")
        if good.word != GOOD:
            raise UserError(f"the good revision {self.b.good[:12]} cannot be tested: "
                            f"{good.reason}; pass another --good")
        if bad.word == GOOD:
            raise UserError(f"the bad revision {self.b.bad[:12]} passes the selection: "
                            f"{bad.reason}; pass a --bad where it fails")
        if bad.word != BAD:
            raise UserError(f"the bad revision {self.b.bad[:12]} cannot be tested: "
                            f"{bad.reason}; pass another --bad")

    def check_selection(self, runs: list[RunRecord]) -> None:
        """The bad revision must build and report a selected case (first, before any other
        step); else it is recorded as a skip and the bisection stops with one line."""
        failed = build_failure(runs[-1].cases)
        if failed is not None and not self.selection.selects_build():
            self.record(self.b.bad, runs, Verdict(SKIP, f"the kernel does not build: {failed}"))
            raise UserError(f"the bad revision {self.b.bad[:12]} does not build: {failed}; "
                            "pass a --bad that builds")
        if not any(selected_any(run.cases, self.selection) for run in runs):
            self.record(self.b.bad, runs, Verdict(SKIP, "the selection matches no case"))
            raise UserError(f"--test {self.selection}: matches no case on the bad revision "
                            f"{self.b.bad[:12]}; see its cases with `lkft show --project "
                            f"{GROUP}/{self.b.name} {self.b.bad[:12]}`")

    def runs_at(self, sha: str, whole: bool = False) -> list[RunRecord] | None:
        """The runs of a step at `sha` (checked out first); None when it is recorded."""
        if sha in self.recorded:
            return None
        git.git(self.layout.worktree, "checkout", "--quiet", "--force", "--detach", sha)
        self.say(f"testing {sha[:12]} ...")
        return self.runner.run(sha, self.layout.step_dir(sha), whole)

    def conclude(self, sha: str, runs: list[RunRecord] | None,
                 steps_left: int | None = None) -> Verdict:
        """The verdict of a step: recorded, or judged now, recorded and shown."""
        if runs is None:
            verdict = recorded_verdict(self.recorded[sha])
            if verdict.word == FLAKY and self.b.flaky:
                verdict = dataclasses.replace(verdict, word=self.b.flaky)
            build = "recorded"
        else:
            verdict = self.runner.verdict(runs, self.order)
            self.record(sha, runs, verdict)
            build = runs[0].metadata.get("build_time", "")
        seconds = float(self.recorded[sha].metadata.get("step_time", 0))
        step = Step(len(self.steps) + 1, git.commit(self.layout.worktree, sha), verdict, build,
                    seconds)
        self.steps.append(step)
        self.say(step_line(step, steps_left))
        if verdict.word == FLAKY:
            raise Stopped(f"stopped: {sha[:12]} is {verdict.reason}; run it again with "
                          f"`lkft bisect --resume --name {self.b.name} --flaky=bad|good|skip`"
                          " to count it as one of those")
        return verdict

    def record(self, sha: str, runs: list[RunRecord], verdict: Verdict) -> None:
        """Put the step in the store, in one transaction."""
        commit = git.commit(self.layout.worktree, sha)
        record = step_record(self.b.name, len(self.steps) + 1, commit, runs, verdict)
        self.store.record(record)
        self.recorded[sha] = record

    # -- the bisection proper --

    def next_step(self, steps_left: int | None) -> git.Answer:
        """Test the revision git checked out, mark it, and say what git answered."""
        sha = git.head(self.layout.worktree)
        verdict = self.conclude(sha, self.runs_at(sha), steps_left)
        return git.bisect_mark(self.layout.worktree, verdict.word, sha)

    def finish(self, answer: git.Answer | None) -> int:
        """The first bad commit (or the candidates), `git bisect log`, the step table and
        reproducer.sh, printed and kept in the bisection's directory."""
        lines: list[str] = []
        status = INCONCLUSIVE
        if answer is not None and answer.first_bad:
            lines += self.first_bad(answer.first_bad)
            status = FOUND
        elif answer is not None:
            lines.append("only skipped commits are left; the first bad commit is one of:")
            lines += [f"  {c.short} {c.subject} ({c.author})" for c in
                      (git.commit(self.layout.worktree, sha) for sha in answer.candidates)]
        log = git.bisect_log(self.layout.worktree)
        self.layout.dir.mkdir(parents=True, exist_ok=True)
        (self.layout.dir / "bisect.log").write_text(log)
        rows = table(self.steps)
        (self.layout.dir / "steps.txt").write_text("\n".join(rows) + "\n")
        lines += ["git bisect log:", *(f"  {line}" for line in log.splitlines()),
                  "steps:", *(f"  {row}" for row in rows),
                  f"recorded in {self.store.path} as project {GROUP}/{self.b.name} "
                  f"(lkft builds --project {GROUP}/{self.b.name})"]
        git.bisect_reset(self.layout.worktree)
        self.say("\n".join(lines))
        return status

    def first_bad(self, sha: str) -> list[str]:
        """The first bad commit's lines, and its reproducer.sh."""
        commit = git.commit(self.layout.worktree, sha)
        place = Path(PLACE)
        runner = dataclasses.replace(self.runner, tree=place / "src", build_dir=place / "out")
        script = reproducer(self.layout.dir / "reproducer.sh", self.b.tree, commit,
                            runner.command(place, commit.short), STEP_ENV)
        return [f"first bad commit: {commit.sha}", f"  {commit.subject}",
                f"  author: {commit.author}", f"reproducer: {script}"]


def estimate(commits: int) -> int:
    """Steps a bisection of `commits` takes without skips: ceil(log2(commits + 1))."""
    return max(1, math.ceil(math.log2(commits + 1)))


def one_step(layout: Layout, store: Store, tree: Path, device: str, selection: Selection,
             pytest_args: list[str], cache: Path, out: TextIO, repeat: int = 1,
             flaky: str | None = None) -> Verdict:
    """`lkft bisect-step`: test what `tree` has checked out (into the object directory kept
    for that tree), record the step under the bisection's name and print its line."""
    runner = Runner(layout.name, tree, layout.objects(tree), cache, device, selection,
                    tuple(pytest_args), repeat, flaky)
    with layout.locked(out, runner.build_dir):
        sha = git.head(tree)
        recorded = recorded_steps(store, layout.name)
        runs = runner.run(sha, layout.step_dir(sha))
        logs = [record.log for record in recorded.values()] + [run.log for run in runs]
        verdict = runner.verdict(runs, order_of(logs, selection))
        commit = git.commit(tree, sha)
        index = len(recorded) + 1
        if sha in recorded:  # run again here: this run's record replaces the earlier one
            index = int(recorded[sha].metadata.get("step", index))
        record = step_record(layout.name, index, commit, runs, verdict)
        store.record(record, replace=True)
        step = Step(index, commit, verdict, runs[0].metadata.get("build_time", ""),
                    float(record.metadata["step_time"]))
        out.write(step_line(step, None) + "\n")
    return verdict
