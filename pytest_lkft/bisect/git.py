"""The git a bisection needs: revisions, ancestry, its own worktree, `git bisect` itself.

Every command is `git -C <dir> ...`. A command runs to its end even when Ctrl-C arrives
while it runs (it is started in its own session, so the terminal's SIGINT reaches only
us): git never leaves an `index.lock` behind, and the KeyboardInterrupt is raised once it
is done.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.errors import InfraError, UserError

ROUGHLY = re.compile(r"\(roughly (\d+) steps?\)")
FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit$", re.MULTILINE)
ONLY_SKIPPED = "There are only 'skip'ped commits left to test."


def git(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `git -C directory args` to its end; InfraError with git's message when `check`."""
    argv = ["git", "-C", str(directory), *args]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace", stdin=subprocess.DEVNULL,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate()
        except KeyboardInterrupt:
            process.communicate()  # let git finish and drop its locks, then stop
            raise
    done = subprocess.CompletedProcess(argv, process.returncode, out, err)
    if check and done.returncode != 0:
        message = (err.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise InfraError(f"`git {' '.join(args)}` in {directory} failed: {message}")
    return done


def repository(tree: Path) -> Path:
    """The git directory shared by `tree`'s worktrees; a UserError when it is none."""
    message = f"{tree} is not a git repository; pass --tree a kernel git checkout"
    if not tree.is_dir():
        raise UserError(message)
    done = git(tree, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
    if done.returncode != 0:
        raise UserError(message)
    return Path(done.stdout.strip())


def resolve(tree: Path, revision: str, option: str) -> str:
    """The full commit id of `revision`; a UserError naming it when it does not exist."""
    done = git(tree, "rev-parse", "--verify", "--quiet", "--end-of-options",
               f"{revision}^{{commit}}", check=False)
    if done.returncode != 0 or not revision.strip():
        raise UserError(f"{option} {revision!r}: no such revision in {tree}; check `git log`")
    return done.stdout.strip()


def is_ancestor(tree: Path, older: str, newer: str) -> bool:
    """True when `older` is an ancestor of (or is) `newer`."""
    return git(tree, "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


@dataclass(frozen=True)
class Commit:
    """A commit as the reports show it."""

    sha: str
    subject: str
    author: str

    @property
    def short(self) -> str:
        return self.sha[:12]


def commit(tree: Path, sha: str) -> Commit:
    """Subject and author of a commit."""
    out = git(tree, "log", "-1", "--format=%H%x00%s%x00%an <%ae>", sha).stdout.strip()
    full, subject, author = out.split("\0")
    return Commit(full, subject, author)


def count_commits(tree: Path, good: str, bad: str) -> int:
    """How many commits `good..bad` holds (the bisection's candidates)."""
    return int(git(tree, "rev-list", "--count", f"{good}..{bad}").stdout.strip())


def ensure_worktree(repo: Path, path: Path, revision: str) -> None:
    """A detached worktree of `repo` at `path`, made once and then reused, clean, at
    `revision`, with no bisection in progress."""
    if (path / ".git").exists() and repository(path) == repo:
        git(path, "bisect", "reset", "--quiet", check=False)
        git(path, "checkout", "--quiet", "--force", "--detach", revision)
        return
    shutil.rmtree(path, ignore_errors=True)
    git(repo, "worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "--quiet", "--force", "--detach", "--no-checkout", str(path),
        revision)
    whole_checkout(path)
    git(path, "checkout", "--quiet", "--force", "--detach", revision)


def whole_checkout(worktree: Path) -> None:
    """Check every file out even when the user's checkout is sparse (a new worktree takes
    its sparse settings): in this worktree's own config and patterns only."""
    if git(worktree, "config", "--type=bool", "extensions.worktreeConfig",
           check=False).stdout.strip() == "true":
        git(worktree, "config", "--worktree", "core.sparseCheckout", "false")
    info = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-dir").stdout.strip())
    (info / "info").mkdir(exist_ok=True)
    (info / "info" / "sparse-checkout").write_text("/*\n")


def head(worktree: Path) -> str:
    """The commit checked out in the worktree."""
    return git(worktree, "rev-parse", "HEAD").stdout.strip()


@dataclass(frozen=True)
class Answer:
    """What `git bisect` said after a start or a mark."""

    first_bad: str | None = None  # the first bad commit, when found
    candidates: tuple[str, ...] = ()  # when only skipped commits are left
    steps_left: int | None = None  # git's estimate

    @property
    def done(self) -> bool:
        return self.first_bad is not None or bool(self.candidates)


def answer(output: str) -> Answer:
    """Read `git bisect start|good|bad|skip` output."""
    found = FIRST_BAD.search(output)
    if found:
        return Answer(first_bad=found.group(1))
    if ONLY_SKIPPED in output:
        shas = re.findall(r"^([0-9a-f]{40})$", output, re.MULTILINE)
        return Answer(candidates=tuple(shas))
    estimate = ROUGHLY.search(output)
    return Answer(steps_left=int(estimate.group(1)) if estimate else None)


def bisect_start(worktree: Path, bad: str, good: str) -> Answer:
    """`git bisect start BAD GOOD`: checks out the first commit to test."""
    git(worktree, "bisect", "reset", "--quiet", check=False)
    return answer(git(worktree, "bisect", "start", bad, good, "--").stdout)


def bisect_mark(worktree: Path, word: str, sha: str) -> Answer:
    """`git bisect good|bad|skip SHA`: checks out the next commit to test."""
    done = git(worktree, "bisect", word, sha, check=False)
    if done.returncode not in (0, 2):  # 2: only skipped commits are left
        raise InfraError(f"`git bisect {word} {sha}` failed: {done.stderr.strip()}")
    return answer(done.stdout)


def bisect_log(worktree: Path) -> str:
    """`git bisect log`; "" when no bisection was started (the ends did not check out)."""
    return git(worktree, "bisect", "log", check=False).stdout


def bisect_reset(worktree: Path) -> None:
    """End the worktree's bisection (its refs/bisect are its own)."""
    git(worktree, "bisect", "reset", "--quiet", check=False)
