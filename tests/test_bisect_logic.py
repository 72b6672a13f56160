"""The bisect helper without a kernel: selections, verdicts, git bisect's answers, bad input.

Verdicts are pure functions of the cases a step's runs reported; the cases here are as
the plugin reports them (the KTAP parser's `<missing #N>` errors after a panic, the
plugin's "missing" errors for known cases a run omitted, `build/<target>` failures).
Bad input is checked on real, small git repositories: one line each, nothing built.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_lkft.bisect import git
from pytest_lkft.bisect.run import estimate
from pytest_lkft.bisect.selection import Selection
from pytest_lkft.bisect.verdict import (
    BAD,
    FLAKY,
    GOOD,
    SKIP,
    Verdict,
    case_order,
    combine,
    judge,
    selected_any,
)
from pytest_lkft.errors import UserError
from pytest_lkft.parsers import ktap
from pytest_lkft.parsers.model import MISSING, Case, Result

SELECTED = "kunit/list-kunit-test.list_test_list_init"
KTAP_WHOLE = """\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: bitfields
    1..1
    ok 1 test_bitfields_constants
ok 1 bitfields
    KTAP version 1
    # Subtest: list-kunit-test
    1..3
    ok 1 list_test_list_init
    ok 2 list_test_list_add
    ok 3 list_test_list_add_tail
ok 2 list-kunit-test
"""
KTAP_PANIC_IN = """\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: bitfields
    1..1
    ok 1 test_bitfields_constants
ok 1 bitfields
    KTAP version 1
    # Subtest: list-kunit-test
    1..3
Kernel panic - not syncing: list_test_list_init: list5 is not empty
"""
KTAP_PANIC_AFTER = KTAP_PANIC_IN.replace("    1..3\n", "    1..3\n    ok 1 list_test_list_init\n")


def kunit(text: str) -> list[Case]:
    """The KUnit cases of a console, as the kunit suite reports them."""
    return ktap.parse(text.splitlines(), "kunit")


def built(*cases: Case) -> list[Case]:
    """A run whose build passed, then `cases`."""
    return [Case("build", "config", Result.PASS), Case("build", "kernel", Result.PASS), *cases]


def missing(name: str, why: str) -> Case:
    """The plugin's error for a known case the run did not report."""
    suite, _, test = name.partition("/")
    return Case(suite, test, Result.ERROR,
                log=[f"{name}: error ({MISSING} ({why}))"])


# -- selections --------------------------------------------------------------------------------


def test_selection_names_suites_and_cases() -> None:
    selection = Selection.parse([SELECTED, "ltp-syscalls", "ltp-*/fork*"])
    assert selection.tests() == ["build", SELECTED, "ltp-syscalls", "ltp-*/fork*"]
    assert selection.tests(whole=True) == ["build", "kunit", "ltp-syscalls", "ltp-*"]
    assert selection.exact_cases() == [SELECTED]
    assert selection.matches(SELECTED) and selection.matches("ltp-syscalls/abort01")
    assert selection.matches("ltp-fs/fork13") and not selection.matches("kunit/other.case")
    assert not selection.selects_build() and Selection.parse(["build/kernel"]).selects_build()
    assert selection.as_args() == [SELECTED, "ltp-syscalls", "ltp-*/fork*"]


@pytest.mark.parametrize("value", ["", "/case", "kunit/", "two words/x"])
def test_a_bad_selection_is_one_line(value: str) -> None:
    with pytest.raises(UserError, match=r"^--test '.*': expected SUITE/CASE, a SUITE or a glob"):
        Selection.parse([value])


def test_no_selection_says_what_to_pass() -> None:
    with pytest.raises(UserError, match="no --test given: name the failing case"):
        Selection.parse([])


# -- verdicts ----------------------------------------------------------------------------------


ONE = Selection.parse([SELECTED])


def test_pass_is_good_fail_is_bad() -> None:
    cases = built(*kunit(KTAP_WHOLE))
    assert judge(cases, ONE, {}) == Verdict(GOOD, "1 selected case(s) passed",
                                            {SELECTED: "pass"})
    cases[3].result = Result.FAIL
    assert judge(cases, ONE, {}).word == BAD
    assert judge(cases, ONE, {}).reason == f"{SELECTED} fail"


def test_a_kernel_that_does_not_build_is_skipped() -> None:
    cases = [Case("build", "config", Result.PASS),
             Case("build", "kernel", Result.FAIL,
                  log=["kernel failed:", "lib/list_sort.c:21:49: error: 'heads' undeclared",
                       "see /x/build.log"]),
             missing(SELECTED, "kernel build failed")]
    verdict = judge(cases, ONE, {})
    assert verdict.word == SKIP
    assert verdict.reason == ("the kernel does not build: lib/list_sort.c:21:49: error: "
                              "'heads' undeclared")
    assert judge(cases, Selection.parse(["build/kernel"]), {}).word == BAD  # the build judged


def test_a_panic_inside_the_selected_case_is_bad() -> None:
    order = case_order(kunit(KTAP_WHOLE))
    assert order["kunit/list-kunit-test"][0] == "list_test_list_init"
    cases = built(*kunit(KTAP_PANIC_IN), missing(SELECTED, "Kernel panic - not syncing"))
    verdict = judge(cases, ONE, order)
    assert verdict.word == BAD and verdict.cases == {SELECTED: "crashed"}
    assert verdict.reason == (f"{SELECTED} crashed: Kernel panic - not syncing: "
                              "list_test_list_init: list5 is not empty")
    assert selected_any(cases, ONE)
    for case in cases:  # as a store has them: the failure text holds the reason
        if case.reason:
            case.log, case.reason = [f"{case.id}: {case.result} ({case.reason}) [log line 9]"], ""
    assert judge(cases, ONE, order) == verdict


def test_a_panic_in_another_case_or_no_boot_is_a_skip() -> None:
    order = case_order(kunit(KTAP_WHOLE))
    add_tail = Selection.parse(["kunit/list-kunit-test.list_test_list_add_tail"])
    after = built(*kunit(KTAP_PANIC_AFTER))
    assert judge(after, add_tail, order).word == SKIP  # the panic was in case 2, not 3
    no_boot = built(Case("kunit", "run", Result.FAIL, log=["kunit: boot failed: timeout"]))
    verdict = judge(no_boot, ONE, order)
    assert verdict == Verdict(SKIP, f"{SELECTED} not reported (kunit: boot failed: timeout)",
                              {SELECTED: "missing"})
    assert not selected_any(no_boot, ONE)


def test_globs_judge_every_case_they_match() -> None:
    suite = Selection.parse(["kunit/list-kunit-test.*"])
    assert judge(built(*kunit(KTAP_WHOLE)), suite, {}).word == GOOD
    crashed = judge(built(*kunit(KTAP_PANIC_IN)), suite, {})  # <missing #N> errors match
    assert crashed.word == BAD
    skipped = [Case("kunit", "list-kunit-test.a", Result.SKIP)]
    assert judge(built(*skipped), suite, {}).word == SKIP


def test_runs_that_disagree_are_flaky() -> None:
    good = Verdict(GOOD, "passed", {SELECTED: "pass"})
    bad = Verdict(BAD, f"{SELECTED} fail", {SELECTED: "fail"})
    skip = Verdict(SKIP, "no boot", {SELECTED: "missing"})
    flaky = combine([bad, good])
    assert flaky.word == FLAKY and flaky.exit_code == 128
    assert flaky.reason == f"flaky: 1 of 2 runs good, 1 bad ({SELECTED} fail)"
    assert flaky.cases == {SELECTED: "fail,pass"}
    assert combine([bad, good], "skip").word == SKIP
    assert combine([good, good]).word == GOOD
    assert combine([skip, bad]).word == BAD  # a run that did not get there does not count
    assert (good.exit_code, bad.exit_code, skip.exit_code) == (0, 1, 125)


def test_estimate_is_log2_of_the_commits() -> None:
    assert [estimate(n) for n in (1, 2, 3, 5, 33, 1000)] == [1, 2, 2, 3, 6, 10]


# -- git bisect's answers, on a real repository -----------------------------------------------


def small_repo(path: Path, commits: int = 6) -> list[str]:
    """A repository of `commits` + 1 commits; their ids, oldest first."""
    path.mkdir(parents=True)
    run = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*run[:3], "init", "-q"], check=True)
    for n in range(commits + 1):
        (path / "f").write_text(f"{n}\n")
        subprocess.run([*run, "add", "f"], check=True)
        subprocess.run([*run, "commit", "-qm", f"c{n}"], check=True)
    log = subprocess.run([*run, "log", "--format=%H", "--reverse"], capture_output=True,
                         text=True, check=True)
    return log.stdout.split()


def test_git_bisect_answers(tmp_path: Path) -> None:
    shas = small_repo(tmp_path / "repo")
    tree = tmp_path / "repo"
    started = git.bisect_start(tree, shas[6], shas[0])
    assert started.steps_left == 2 and not started.done
    assert git.head(tree) == shas[3]
    git.bisect_mark(tree, "skip", shas[3])
    assert git.head(tree) in shas[1:6] and git.head(tree) != shas[3]
    git.bisect_mark(tree, "good", shas[2])
    ambiguous = git.bisect_mark(tree, "bad", shas[4])
    assert ambiguous.done and set(ambiguous.candidates) == {shas[3], shas[4]}
    git.bisect_reset(tree)
    git.bisect_start(tree, shas[6], shas[0])
    for sha, word in ((shas[3], "good"), (shas[5], "bad")):
        answer = git.bisect_mark(tree, word, sha)
    answer = git.bisect_mark(tree, "bad", git.head(tree))
    assert answer.first_bad == shas[4]
    assert git.commit(tree, shas[4]).subject == "c4"


# -- bad input: one line each, nothing built ---------------------------------------------------


def lkft(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_lkft.cli", *args], capture_output=True,
                          text=True, check=False, cwd=cwd)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """A small repository of four commits."""
    tree = tmp_path / "repo"
    return tree, small_repo(tree, 3)


def bisect_args(tree: Path, cache: Path, *extra: str) -> list[str]:
    return ["bisect", "--tree", str(tree), "--device", "qemu-arm64", "--test", SELECTED,
            "--cache-dir", str(cache), "--store", str(cache / "store.sqlite3"), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--good", "HEAD~1", "--bad", "nope"],
     "--bad 'nope': no such revision in {tree}; check `git log`"),
    (["--good", "HEAD", "--bad", "HEAD~2"],
     "the good revision HEAD is not an ancestor of the bad revision HEAD~2; pass --good an "
     "older revision of the bad one's history"),
    (["--good", "HEAD", "--bad", "HEAD"], "the good and the bad revision are the same commit"),
    (["--bad", "HEAD"], "lkft bisect needs --good REV and --bad REV, or --from-store"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--name", "a/b"], "--name 'a/b': use letters,"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--test", "x y/z"], "--test 'x y/z': expected"),
    (["--good", "HEAD~1", "--bad", "HEAD", "--device", "a", "--device", "b"],
     "a bisection runs on one device; pass --device NAME (given: qemu-arm64, a, b)"),
    (["--from-store", "lkft/linux", "--good-build", "v1"],
     "--from-store lkft/linux needs --good-build and --bad-build"),
])
def test_bad_input_is_one_line_and_builds_nothing(repo: tuple[Path, list[str]], tmp_path: Path,
                                                  extra: list[str], message: str) -> None:
    tree, _ = repo
    cache = tmp_path / "cache"
    done = lkft(*bisect_args(tree, cache, *extra))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lkft bisect: error: "), done.stderr
    assert message.format(tree=tree) in lines[0]
    assert not (cache / "bisect").exists() and done.stdout == ""  # nothing started


def test_a_tree_that_is_not_git(tmp_path: Path) -> None:
    done = lkft(*bisect_args(tmp_path, tmp_path / "cache", "--good", "a", "--bad", "b"))
    assert done.returncode == 2
    assert done.stderr == (f"lkft bisect: error: {tmp_path} is not a git repository; pass "
                           "--tree a kernel git checkout\n")


def test_resume_without_a_bisection(tmp_path: Path) -> None:
    done = lkft("bisect", "--resume", "--cache-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr == (f"lkft bisect: error: no bisection to resume under "
                           f"{tmp_path / 'bisect'}; start one with --good and --bad\n")
    done = lkft("bisect", "--resume", "--good", "x", "--cache-dir", str(tmp_path))
    assert "--resume takes the bisection's own options; drop --good" in done.stderr


def test_bisect_step_aborts_git_bisect_run_on_bad_input(tmp_path: Path) -> None:
    """git bisect run takes 1-127 (but 125) as bad: bad input must be 128, which stops it."""
    done = lkft("bisect-step", "--tree", str(tmp_path), "--device", "qemu-arm64", "--test",
                SELECTED, "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 128
    assert done.stderr == (f"lkft bisect-step: error: {tmp_path} is not a git repository; "
                           "pass --tree a kernel git checkout\n")
