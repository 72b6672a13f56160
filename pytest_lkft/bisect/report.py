"""What a bisection prints and leaves: a line per step, the step table, reproducer.sh."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.bisect.git import Commit
from pytest_lkft.bisect.verdict import Verdict
from pytest_lkft.files import write_atomically

SUBJECT_WIDTH = 40
CASES_SHOWN = 3


@dataclass(frozen=True)
class Step:
    """One tested revision, as the table shows it."""

    index: int
    commit: Commit
    verdict: Verdict
    build: str  # seconds, "cached", or "recorded" (a step reused from the store)
    seconds: float  # the whole step: every run's build, boot and suites


def subject(commit: Commit, width: int = SUBJECT_WIDTH) -> str:
    """The commit's subject cut to `width` characters."""
    text = commit.subject
    if len(text) > width:
        text = text[: width - 3] + "..."
    return text


def cases_text(verdict: Verdict) -> str:
    """The selected cases' results, the first few: `kunit/x=fail kunit/y=pass`."""
    items = [f"{name}={result}" for name, result in sorted(verdict.cases.items())]
    if len(items) > CASES_SHOWN:
        items = [*items[:CASES_SHOWN], f"(+{len(items) - CASES_SHOWN} more)"]
    return " ".join(items) or "-"


def build_text(build: str) -> str:
    """`12.3s`, `cached` or `recorded`."""
    if build.replace(".", "", 1).isdigit():
        return f"{build}s"
    return build or "-"


def step_line(step: Step, steps_left: int | None) -> str:
    """The progress line of a step: commit, subject, build time, verdict, cases, estimate."""
    left = ""
    if steps_left == 0:
        left = " | the last step"
    elif steps_left is not None:
        left = f" | about {steps_left} step{'s' * (steps_left != 1)} left"
    return (f"step {step.index}: {step.commit.short} {subject(step.commit)} | build "
            f"{build_text(step.build)} | {step.verdict.word}: {step.verdict.reason} | "
            f"{cases_text(step.verdict)} | in {step.seconds:.1f}s{left}")


def table(steps: list[Step]) -> list[str]:
    """The step table, one row a step in the order they ran."""
    lines = [f"{'step':>4}  {'commit':<12}  {'verdict':<7}  {'build':>8}  {'time':>7}  "
             f"{'subject':<{SUBJECT_WIDTH}}  cases"]
    for step in steps:
        lines.append(f"{step.index:>4}  {step.commit.short:<12}  {step.verdict.word:<7}  "
                     f"{build_text(step.build):>8}  {step.seconds:>6.1f}s  "
                     f"{subject(step.commit):<{SUBJECT_WIDTH}}  {cases_text(step.verdict)}")
    return lines


PLACE = "@DIR@"  # in a reproducer's command: the directory it works in


def reproducer(path: Path, repo: str, commit: Commit, command: list[str],
               env: dict[str, str]) -> Path:
    """reproducer.sh: build `commit` in a fresh worktree of `repo` and run the selection
    as the bisection's steps ran it (`command`, its paths under PLACE, with `env`)."""
    lines = [
        "#!/bin/sh",
        f"# lkft bisect: the first bad commit {commit.sha}",
        f"#   {commit.subject}",
        f"#   {commit.author}",
        "# Builds it in a new worktree of the repository and runs the selected suites as",
        "# each bisection step did. Usage: reproducer.sh [DIR] (default: a new temporary one)",
        "set -eu",
        f"repo={shlex.quote(repo)}",
        'dir=$(cd "${1:-$(mktemp -d)}" && pwd)',
        f'git -C "$repo" worktree add --detach "$dir/src" {commit.sha}',
        'trap \'git -C "$repo" worktree remove --force "$dir/src"\' EXIT',
        'cd "$dir"',
        "printf '[pytest]\\n' > pytest.ini",
        *(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())),
        shlex.join(command).replace(PLACE, '"$dir"'),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, "\n".join(lines) + "\n", mode=0o755)
