"""`lkft bisect` for real: kernels built from a git repository of linux-source-6.1, booted in
QEMU, KUnit judged, the first bad commit found.

The repository (`bisect_repo.py`) is made once per machine from the tree the builds tests
extract. Each test has its own cache and store, but the bisections' worktree and object
directory live in the shared test cache (`bisect/.worktrees` and `bisect/.objects` are
links to it), as does ccache: every build after the machine's first is incremental. The
QEMU wrappers standing in for `--qemu-binary` run the real QEMU: one holds a boot paused
(the known state a Ctrl-C arrives in), one counts boots into a kernel parameter (the
counter the flaky case depends on).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bisect_repo import SELECTED, Repo, bisect_repo
from shared_kernel import linux_source, need_tools  # noqa: F401  (linux_source: a fixture)
from squad_server import SquadServer, install_squad

from conftest import SHARED_CACHE, need_qemu
from pytest_lkft.bisect.state import Layout
from pytest_lkft.reporting.squad import SquadClient
from pytest_lkft.reporting.store import Store

pytestmark = [pytest.mark.qemu, pytest.mark.kernel_build]
BUILD = ["--kconfig", "tinyconfig", "--kconfig-add", "qemu-virt-kunit", "--targets",
         "config,kernel"]
MACHINE_LOCK = Path("/tmp/lkft-build.lock")  # one heavy build at a time on shared machines
WAIT = 1800.0  # seconds a test waits for a state it holds the system in (a paused boot)
QEMU = "qemu-system-aarch64"
PAUSING_QEMU = """#!/usr/bin/env python3
# QEMU, except that boot number {pause} starts paused (-S): it never boots, and its pid
# is written to {pidfile} once it runs.
import os, sys
argv = ["{qemu}", *sys.argv[1:]]
if "-kernel" not in argv:  # qemu --version
    os.execv(argv[0], argv)
count = {count!r}
n = int(open(count).read() or 0) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
if n == {pause}:
    argv.append("-S")
    open({pidfile!r} + ".part", "w").write(str(os.getpid()))
    os.rename({pidfile!r} + ".part", {pidfile!r})
os.execv(argv[0], argv)
"""
COUNTING_QEMU = """#!/usr/bin/env python3
# QEMU, with the number of this boot as the kernel parameter list_test.lkft_counter
import os, sys
argv = ["{qemu}", *sys.argv[1:]]
if "-kernel" not in argv:  # qemu --version
    os.execv(argv[0], argv)
count = {count!r}
n = int(open(count).read() or 0) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
at = argv.index("-append") + 1
argv[at] += f" list_test.lkft_counter={{n}}"
os.execv(argv[0], argv)
"""


@dataclass
class Bisecting:
    """Where a test's bisections keep things, and how to run `lkft` there."""

    repo: Repo
    cache: Path
    store: Path

    def args(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "pytest_lkft.cli", *extra, "--cache-dir", str(self.cache),
                "--store", str(self.store)]

    def bisect(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """`lkft bisect` on the test repository, on qemu-arm64, built as BUILD."""
        done = subprocess.run(self.args("bisect", *self.options(*extra)), capture_output=True,
                              text=True, check=False)
        print(done.stdout, done.stderr)  # shown when the test fails
        return done

    def options(self, *extra: str) -> list[str]:
        if "--resume" in extra:
            return list(extra)
        return ["--tree", str(self.repo.path), "--device", "qemu-arm64", *BUILD, *extra]

    def lkft(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "pytest_lkft.cli", *args],
                              capture_output=True, text=True, check=False).stdout

    def worktree(self) -> Path:
        git_dir = self.repo.path / ".git"
        return Layout(self.cache, "any", git_dir).worktree


@pytest.fixture(scope="session")
def repo(linux_source: Path) -> Repo:  # noqa: F811
    need_qemu(QEMU)
    need_tools("aarch64-linux-gnu-gcc", "ccache")
    return bisect_repo(linux_source, SHARED_CACHE)


@pytest.fixture(scope="module")
def machine_lock() -> Iterator[None]:
    """Hold the machine's build lock while these tests build (other jobs wait for it)."""
    with open(MACHINE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def bisecting_in(path: Path, repo: Repo, artifacts: Path) -> Bisecting:
    """A cache of its own at `path`, sharing the machine's artifacts, worktrees, objects."""
    (path / "bisect").mkdir(parents=True)
    for shared in ("entries", "apt", "defaults"):
        (path / shared).symlink_to(artifacts / shared)
    for kept in ("worktrees", "objects"):
        target = SHARED_CACHE / f"bisect-{kept}"
        target.mkdir(parents=True, exist_ok=True)
        (path / "bisect" / f".{kept}").symlink_to(target)
    return Bisecting(repo, path, path / "store.sqlite3")


@pytest.fixture
def bisecting(tmp_path: Path, repo: Repo, artifact_cache: Path, machine_lock: None,
              monkeypatch: pytest.MonkeyPatch) -> Bisecting:
    monkeypatch.setenv("CCACHE_DIR", str(SHARED_CACHE / "ccache"))
    return bisecting_in(tmp_path / "cache", repo, artifact_cache)


@pytest.fixture(scope="module")
def fail_bisection(tmp_path_factory: pytest.TempPathFactory, repo: Repo, artifact_cache: Path,
                   machine_lock: None) -> tuple[Bisecting, subprocess.CompletedProcess[str]]:
    """The bisection of branch `fail`, run once for the tests that look at it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CCACHE_DIR", str(SHARED_CACHE / "ccache"))
        where = bisecting_in(tmp_path_factory.mktemp("fail") / "cache", repo, artifact_cache)
        done = where.bisect("--good", "main", "--bad", "fail", "--test", SELECTED)
    return where, done


def step_lines(output: str) -> dict[str, str]:
    """The progress line of each step, by the commit's short id."""
    return {line.split()[2]: line for line in output.splitlines() if line.startswith("step ")}


def test_the_commit_that_fails_a_kunit_case_is_found(
        fail_bisection: tuple[Bisecting, subprocess.CompletedProcess[str]]) -> None:
    where, done = fail_bisection
    repo, (_, broken, _, bad, unrelated) = where.repo, where.repo.refs["fail"]
    assert done.returncode == 0, done.stderr
    out = done.stdout
    found = (f"first bad commit: {bad}\n  list: initialise list5 before filling it\n"
             "  author: Ada Lovelace <ada@example.org>\n")
    assert found in out
    steps = step_lines(out)
    assert steps[unrelated[:12]].startswith(f"step 1: {unrelated[:12]} init: reword a comment")
    assert f"| bad: {SELECTED} fail | {SELECTED}=fail" in steps[unrelated[:12]]
    assert f"| good: 1 selected case(s) passed | {SELECTED}=pass" in steps[repo.base[:12]]
    assert "| skip: the kernel does not build: " in steps[broken[:12]]  # the skipped step
    assert "lib/list_sort.c:19:43: error: " in steps[broken[:12]]  # from the tree's top
    assert "heads" in steps[broken[:12]] and "undeclared" in steps[broken[:12]]
    assert steps[bad[:12]].split(" | ")[2] == f"bad: {SELECTED} fail"
    assert re.search(r"\| about \d+ steps? left\n", out)  # git's estimate
    assert steps[bad[:12]].endswith(" | the last step")
    assert f"# skip: [{broken}] lib/list_sort: take the tail from a local" in out  # bisect log
    assert f"# first bad commit: [{bad}]" in out
    table = out[out.index("steps:\n"):].splitlines()
    assert table[1].split() == ["step", "commit", "verdict", "build", "time", "subject", "cases"]
    assert [row.split()[2] for row in table[2:2 + len(steps)]] == [
        line.split(" | ")[2].split(":")[0] for line in steps.values()]
    name = out.split("as project bisect/")[1].split()[0]
    folder = where.cache / "bisect" / name
    assert (folder / "steps.txt").read_text().splitlines() == [r[2:] for r in table[1:-1]]
    assert f"# first bad commit: [{bad}]" in (folder / "bisect.log").read_text()
    reproducer = (folder / "reproducer.sh").read_text()
    assert f'git -C "$repo" worktree add --detach "$dir/src" {bad}' in reproducer
    assert '--lkft-tree="$dir"/src' in reproducer and "--lkft-tests=build,kunit" in reproducer
    subprocess.run(["sh", "-n", str(folder / "reproducer.sh")], check=True)


def test_the_user_checkout_is_left_alone(
        fail_bisection: tuple[Bisecting, subprocess.CompletedProcess[str]]) -> None:
    where, done = fail_bisection
    git = ["git", "-C", str(where.repo.path)]
    assert subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip() == where.repo.base
    assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""
    worktrees = subprocess.run([*git, "worktree", "list", "--porcelain"], capture_output=True,
                               text=True, check=True).stdout
    assert "locked" not in worktrees and str(where.worktree()) in worktrees
    assert not list((where.repo.path / ".git").glob("**/*.lock"))


def test_every_step_is_a_build_of_the_store(
        fail_bisection: tuple[Bisecting, subprocess.CompletedProcess[str]]) -> None:
    where, done = fail_bisection
    name = done.stdout.split("as project bisect/")[1].split()[0]
    project = ["--store", str(where.store), "--project", f"bisect/{name}"]
    builds = where.lkft("builds", *project).splitlines()
    assert len(builds) == 1 + len(step_lines(done.stdout))
    bad, base = where.repo.refs["fail"][3][:12], where.repo.base[:12]
    assert f"  FAIL  qemu-arm64: {SELECTED}" in where.lkft("show", *project, bad)
    compared = where.lkft("compare", *project, base, bad)
    assert f"qemu-arm64: {SELECTED} (pass -> fail)" in compared
    with Store(where.store) as store:
        record = store.runs("bisect", name, bad)[0]
    assert record.metadata["verdict"] == "bad"
    assert record.metadata["revision"] == where.repo.refs["fail"][3]
    assert "KTAP version 1" in record.log  # the console log


def from_known(where: Bisecting, name: str, *source: str) -> subprocess.CompletedProcess[str]:
    """`lkft bisect` started from the fail bisection's first two steps (bad, then good)."""
    return subprocess.run(where.args("bisect", "--tree", str(where.repo.path), *BUILD, *source,
                                     "--good-build", where.repo.base[:12],
                                     "--bad-build", where.repo.tip("fail")[:12]),
                          capture_output=True, text=True, check=False)


def test_known_builds_give_the_revisions_and_the_selection(
        fail_bisection: tuple[Bisecting, subprocess.CompletedProcess[str]]) -> None:
    """--from-store: the revisions from two builds' metadata, the selection from their
    regressions, the device from their environment. That is the fail bisection again (same
    default name), so its recorded steps are reused and nothing is built."""
    where, done = fail_bisection
    name = done.stdout.split("as project bisect/")[1].split()[0]
    again = from_known(where, name, "--from-store", f"bisect/{name}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"on qemu-arm64: {SELECTED};" in again.stdout
    assert f"first bad commit: {where.repo.refs['fail'][3]}" in again.stdout
    assert all("| build recorded |" in line for line in step_lines(again.stdout).values())
    assert f"as project bisect/{name} " in again.stdout


def test_squad_builds_give_the_same(
        fail_bisection: tuple[Bisecting, subprocess.CompletedProcess[str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--squad-url: the same two builds, submitted to a real SQUAD and read back through its
    REST API, start the same bisection."""
    where, done = fail_bisection
    name = done.stdout.split("as project bisect/")[1].split()[0]
    server = SquadServer(install_squad(), tmp_path / "squad")
    server.start()
    try:
        monkeypatch.setenv("LKFT_SQUAD_TOKEN", server.token("lkft/linux"))
        monkeypatch.setenv("LKFT_CACHE_DIR", str(tmp_path / "spool"))
        with Store(where.store) as store:
            for version in (where.repo.base[:12], where.repo.tip("fail")[:12]):
                record = store.runs("bisect", name, version)[0]
                record.group, record.project = "lkft", "linux"
                assert " submitted to " in SquadClient(server.url).submit_or_spool(record)
        again = from_known(where, name, "--squad-url", server.url, "--from-store", "lkft/linux")
    finally:
        server.stop()
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"on qemu-arm64: {SELECTED};" in again.stdout
    assert f"first bad commit: {where.repo.refs['fail'][3]}" in again.stdout


def wrapper(path: Path, text: str, **values: object) -> Path:
    """A --qemu-binary script running the real QEMU."""
    path.write_text(text.format(qemu=shutil.which(QEMU), **values))
    path.chmod(0o755)
    return path


def running(pid: int) -> bool:
    """True while the process runs (a zombie waiting for its parent does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_panic_in_the_case_is_bad_and_ctrl_c_leaves_nothing_behind(
        bisecting: Bisecting, tmp_path: Path) -> None:
    """Branch `panic`: the bad commit panics the kernel inside the selected case. The third
    boot is held paused (the system waits there), Ctrl-C arrives, and the bisection stops
    clean; --resume then finds the commit."""
    pidfile = tmp_path / "paused.pid"
    qemu = wrapper(tmp_path / "qemu", PAUSING_QEMU, pause=3, pidfile=str(pidfile),
                   count=str(tmp_path / "boots"))
    argv = bisecting.args("bisect", *bisecting.options(
        "--good", "main", "--bad", "panic", "--test", SELECTED, "--qemu-binary", str(qemu),
        "--timeouts", f"boot={WAIT:.0f}"))
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + WAIT
    while not pidfile.exists():  # the builds and two boots before the paused one
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no third boot"
        time.sleep(0.5)
    paused, qemu_binary = int(pidfile.read_text()), Path(shutil.which(QEMU) or QEMU).resolve()
    while Path(f"/proc/{paused}/exe").resolve() != qemu_binary:  # the wrapper execs QEMU
        assert time.monotonic() < deadline, "the paused boot is not QEMU"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
    out, err = process.communicate(timeout=WAIT)
    print(out, err)
    assert process.returncode == 130
    assert err.splitlines()[-1].startswith("lkft bisect: interrupted; the steps done are "
                                           "recorded: continue with `lkft bisect --resume")
    assert not running(paused)  # no QEMU left
    objects = Layout(bisecting.cache, "any", bisecting.repo.path / ".git").objects(
        bisecting.worktree())
    with open(objects / "lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free
    assert not list((bisecting.repo.path / ".git").glob("**/*.lock"))  # nor git's
    done_before = step_lines(out)
    name = next((bisecting.cache / "bisect").glob("*/bisection.json")).parent.name
    with Store(bisecting.store) as store:  # the interrupted step left no record
        assert len(store.builds("bisect", name)) == len(done_before)

    resumed = bisecting.bisect("--resume")
    assert resumed.returncode == 0, resumed.stderr
    panic = bisecting.repo.refs["panic"][3]
    assert f"first bad commit: {panic}\n  list: panic when list5 is not empty\n" in resumed.stdout
    steps = step_lines(resumed.stdout)
    assert all("| build recorded |" in steps[sha] for sha in done_before)
    assert (f"| bad: {SELECTED} crashed: Kernel panic - not syncing: list_test_list_init: "
            "list5 is not empty |") in steps[panic[:12]]
    assert "| skip: the kernel does not build: " in steps[bisecting.repo.refs["panic"][1][:12]]


def test_a_flaky_case_stops_the_bisection(bisecting: Bisecting, tmp_path: Path) -> None:
    """Branch `flaky`: list_test_list_init fails on odd boots. --repeat 2 sees both."""
    qemu = wrapper(tmp_path / "qemu", COUNTING_QEMU, count=str(tmp_path / "boots"))
    flaky = bisecting.repo.tip("flaky")
    done = bisecting.bisect("--good", "main", "--bad", "flaky", "--test", SELECTED,
                            "--repeat", "2", "--qemu-binary", str(qemu))
    assert done.returncode == 1, done.stderr
    assert (f"stopped: {flaky[:12]} is flaky: 1 of 2 runs good, 1 bad ({SELECTED} fail); "
            "run it again with `lkft bisect --resume --name ") in done.stdout
    assert f"| {SELECTED}=fail,pass" in step_lines(done.stdout)[flaky[:12]]
    name = next((bisecting.cache / "bisect").glob("*/bisection.json")).parent.name
    shown = bisecting.lkft("show", "--store", str(bisecting.store), "--project",
                           f"bisect/{name}", flaky[:12])
    assert f"FAIL  qemu-arm64: {SELECTED}" in shown  # both runs are in the store

    counted = bisecting.bisect("--resume", "--flaky=bad")
    assert counted.returncode == 0, counted.stderr
    assert f"first bad commit: {flaky}" in counted.stdout


def test_a_failing_good_revision_and_a_selection_of_nothing(bisecting: Bisecting) -> None:
    """Each found on the ends it builds, said in one line; their steps are kept."""
    fail = bisecting.repo.refs["fail"]
    done = bisecting.bisect("--good", fail[3], "--bad", fail[4], "--test", SELECTED)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"lkft bisect: error: the good revision fails too: {fail[3][:12]} {SELECTED} fail; "
        "pass an older --good"]
    nothing = bisecting.bisect("--good", "main", "--bad", fail[4], "--test",
                               "kunit/no-such-suite.case")
    assert nothing.returncode == 2
    name = nothing.stdout.split("as project bisect/")[-1]
    assert nothing.stderr.startswith(
        f"lkft bisect: error: --test kunit/no-such-suite.case: matches no case on the bad "
        f"revision {fail[4][:12]}; see its cases with `lkft show --project bisect/")
    with Store(bisecting.store) as store:
        assert sum(len(store.builds(g, p)) for g, p in store.projects()) == 3, name


def test_bisect_step_under_git_bisect_run(bisecting: Bisecting) -> None:
    """`git bisect run lkft bisect-step ...` in a full checkout (the helper's worktree, at
    hand here): the step's exit codes drive git."""
    fail, worktree = bisecting.repo.refs["fail"], bisecting.worktree()
    git = ["git", "-C", str(worktree)]
    subprocess.run([*git, "bisect", "reset"], capture_output=True, check=False)
    subprocess.run([*git, "bisect", "start", fail[3], bisecting.repo.base], check=True)
    step = bisecting.args("bisect-step", "--tree", str(worktree), "--device", "qemu-arm64",
                          "--test", SELECTED, *BUILD, "--name", "by-hand")
    done = subprocess.run([*git, "bisect", "run", *step], capture_output=True, text=True,
                          check=False)
    print(done.stdout, done.stderr)
    log = subprocess.run([*git, "bisect", "log"], capture_output=True, text=True).stdout
    subprocess.run([*git, "bisect", "reset"], capture_output=True, check=True)
    assert f"# first bad commit: [{fail[3]}]" in log
    assert f"# skip: [{fail[1]}]" in log  # 125: it does not build
    assert f"# good: [{fail[2]}]" in log
    marks = [line for line in log.splitlines() if line.startswith(("# good", "# bad", "# skip"))]
    builds = bisecting.lkft("builds", "--store", str(bisecting.store), "--project",
                            "bisect/by-hand")
    assert len(builds.splitlines()) == 1 + len(marks) - 2  # a step a mark after the ends'
    assert f"step {len(marks) - 2}: " in done.stdout
    # run again at a commit it recorded (git bisect replay, a second look): the new run's
    # record replaces the old one, same step number, no traceback
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run([*git, "checkout", "-q", "--detach", fail[2]], check=True)
    try:
        again = subprocess.run(step, capture_output=True, text=True, check=False)
    finally:
        subprocess.run([*git, "checkout", "-q", "--detach", head], check=True)
    assert again.returncode == 0, again.stdout + again.stderr
    with Store(bisecting.store) as store:
        versions = [build.version for build in store.builds("bisect", "by-hand")]
        assert len(versions) == len(marks) - 2
        runs = store.runs("bisect", "by-hand", fail[2][:12])
    assert len(runs) == 1
    assert f"step {runs[0].metadata['step']}: {fail[2][:12]} " in again.stdout
