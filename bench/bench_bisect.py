"""Bisection cost: a whole `lkft bisect` as users run it, and one step against its bare parts.

1. End to end: `lkft bisect` on the test repository's branch `long` (tests/bisect_repo.py:
   33 commits on Debian's linux-source-6.1, one that does not build, one that fails
   list_test_list_init), arm64 tinyconfig + qemu-virt-kunit on qemu-arm64: its wall time,
   each step's time, and the number of steps against log2 of the commits.
2. One step after the first, from a step's commit to the next one git picked, alternating
   rounds, medians:
   - ours: `lkft bisect-step` at the next commit (pytest with the plugin: build in the
     shared object directory, boot, KUnit judged, the step recorded);
   - bare: the same checkout, then the step's own `make ... Image` (from the build's
     reproducer.sh, same variables) and the step's own QEMU command (its reproducer.sh)
     until the shell prompt, in the same object directory, from the same previous commit;
   - cold: the same kernel built by `lkft build` into an empty object directory with ccache
     off (and once more through the warm ccache, for scale).
   Target (issue 12): ours <= 1.1 x bare.

    python bench/bench_bisect.py [--rounds 3] [--cache DIR]

Both sides run on the same machine in the same state, one at a time; the machine's build
lock (/tmp/lkft-build.lock) is held throughout, as every kernel build here does.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bisect_repo import SELECTED, bisect_repo  # noqa: E402
from harness_env import harness_env  # noqa: E402

from pytest_lkft.bisect.state import Layout  # noqa: E402

SHARED = Path(os.environ.get("LKFT_TEST_CACHE") or Path.home() / ".cache" / "lkft-test")
BUILD = ["--kconfig", "tinyconfig", "--kconfig-add", "qemu-virt-kunit", "--targets",
         "config,kernel"]
PROMPT = re.compile(rb"/ # ")
STEP = re.compile(r"^step (\d+): (\w+) .*\| build (\S+) \| (\w+): .*\| in ([\d.]+)s", re.M)


def lkft(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `lkft ARGS` as a user's shell does (harness_env: only pytest-lkft and xdist
    loaded, byte-code cached); fail loudly."""
    done = subprocess.run([sys.executable, "-m", "pytest_lkft.cli", *args], env=harness_env(),
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"lkft {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def cache_dir(path: Path) -> Path:
    """A cache of its own that shares the test cache's artifacts (kernels, busybox), and its
    bisection worktrees and object directories (tests/test_bisect.py's)."""
    links = {path / shared: SHARED / "artifacts" / shared
             for shared in ("entries", "apt", "defaults")}
    links.update({path / "bisect" / f".{kept}": SHARED / f"bisect-{kept}"
                  for kept in ("worktrees", "objects")})
    for link, target in links.items():
        target.mkdir(parents=True, exist_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)
    return path


def whole_bisection(repo_path: Path, cache: Path, store: Path) -> tuple[str, float]:
    """`lkft bisect` of branch `long`: its output and wall time."""
    started = time.monotonic()
    done = lkft("bisect", "--tree", str(repo_path), "--good", "main", "--bad", "long",
                "--device", "qemu-arm64", "--test", SELECTED, *BUILD, "--cache-dir", str(cache),
                "--store", str(store), "--name", f"bench-{int(started)}")
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the bisection did not end on a commit:\n{done.stdout}{done.stderr}")
    return done.stdout, elapsed


def kernel_make(objects: Path) -> str:
    """The bisection build's own kernel command, with its variables (reproducer.sh)."""
    lines = (objects / "arm64" / "reproducer.sh").read_text().splitlines()
    exports = next(line for line in lines if line.startswith("export "))
    make = next(line for line in lines if line.startswith("make ") and line.endswith(" Image"))
    return f"{exports}; {make}"


def bare_boot(reproducer: Path, objects: Path) -> float:
    """Seconds from the step's QEMU command to the shell prompt, on the Image make left in
    the object directory (the step's copy of it is not updated by a bare make); QEMU is
    then stopped."""
    command = reproducer.read_text().splitlines()[-1].removeprefix("exec ")
    image = objects / "arm64" / "Image"
    command = command.replace(str(image), str(objects / "arm64" / "build" / "arch" / "arm64" /
                                              "boot" / "Image"))
    started = time.monotonic()
    child = pexpect.spawn("sh", ["-c", command], timeout=600)
    try:
        child.expect(PROMPT)
        return time.monotonic() - started
    finally:
        child.terminate(force=True)


def to_commit(worktree: Path, make: str, sha: str) -> None:
    """Check `sha` out and bring the object directory to it (not timed)."""
    git(worktree, "checkout", "-q", "--detach", sha)
    subprocess.run(["sh", "-c", make], cwd=worktree, check=True, capture_output=True)


def time_bare(worktree: Path, make: str, previous: str, sha: str, qemu: Path,
              objects: Path) -> float:
    """Checkout, the kernel's make and the boot, as one would bisect by hand."""
    to_commit(worktree, make, previous)
    started = time.monotonic()
    git(worktree, "checkout", "-q", "--detach", sha)
    subprocess.run(["sh", "-c", make], cwd=worktree, check=True, capture_output=True)
    built = time.monotonic() - started
    return built + bare_boot(qemu, objects)


def time_ours(worktree: Path, make: str, previous: str, sha: str, cache: Path,
              store: Path, index: int) -> float:
    """Checkout and `lkft bisect-step` there. Each round has a cache of its own (the same
    worktree and objects): its build cache has not seen this commit, so make runs."""
    to_commit(worktree, make, previous)
    started = time.monotonic()
    git(worktree, "checkout", "-q", "--detach", sha)
    lkft("bisect-step", "--tree", str(worktree), "--device", "qemu-arm64", "--test", SELECTED,
         *BUILD, "--cache-dir", str(cache), "--store", str(store), "--name", f"step-{index}")
    return time.monotonic() - started


def time_cold(worktree: Path, sha: str, work: Path, ccache: bool) -> float:
    """`lkft build` of `sha` into an empty object directory."""
    git(worktree, "checkout", "-q", "--detach", sha)
    out = work / f"cold-{ccache}"
    shutil.rmtree(out, ignore_errors=True)
    env = harness_env()
    if not ccache:
        env["CCACHE_DISABLE"] = "1"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "build", "--tree", str(worktree),
                    "--target-arch", "arm64", *BUILD, "--build-dir", str(out), "--cache-dir",
                    str(work / "cold-cache"), "--rebuild"], env=env, check=True,
                   capture_output=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=SHARED / "bench-bisect",
                        help="Its cache (the worktree and objects are the tests')")
    args = parser.parse_args()
    os.environ.setdefault("CCACHE_DIR", str(SHARED / "ccache"))
    with (
        open("/tmp/lkft-build.lock", "a") as lock,
        tempfile.TemporaryDirectory(prefix="bench-bisect-") as tmp,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX)
        return measure(args, Path(tmp))


def measure(args: argparse.Namespace, work: Path) -> int:
    """Run the benchmark (see the module docstring) and print its figures."""
    repo = bisect_repo(SHARED / "linux-source-6.1", SHARED)
    cache, store = cache_dir(args.cache), work / "store.sqlite3"
    out, elapsed = whole_bisection(repo.path, cache, store)
    steps = [(int(n), sha, build, word, float(took))
             for n, sha, build, word, took in STEP.findall(out)]
    commits = len(repo.refs["long"])
    bisected = len(steps) - 2
    print(f"lkft bisect, {commits} commits: {elapsed:.1f}s, {len(steps)} steps (2 ends + "
          f"{bisected}); log2({commits}) = {math.log2(commits):.2f}")
    for n, sha, build, word, took in steps:
        print(f"  step {n}: {sha} {word:<5} build {build:>7}  step {took:.1f}s")
    worktree = Layout(cache, "any", repo.path / ".git").worktree
    objects = Layout(cache, "any", repo.path / ".git").objects(worktree)
    make = kernel_make(objects)
    shas = [git(worktree, "rev-parse", sha) for _, sha, _, _, _ in steps]
    previous, sha = shas[3], shas[4]  # the second step after the ends: an incremental one
    name = re.search(r"as project bisect/(\S+)", out)
    assert name is not None
    qemu = next((cache / "bisect" / name.group(1) / "steps" / sha[:12]).glob(
        "run-1/results/*/kunit/reproducer.sh"))
    ours, bare = [], []
    for index in range(args.rounds):
        bare.append(time_bare(worktree, make, previous, sha, qemu, objects))
        ours.append(time_ours(worktree, make, previous, sha, cache_dir(work / f"ours-{index}"),
                              store, index))
    cold = time_cold(worktree, sha, work, ccache=False)
    warm = time_cold(worktree, sha, work, ccache=True)
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"one step, {previous[:12]} -> {sha[:12]}, {args.rounds} rounds:")
    print(f"  bare make + boot:  median {statistics.median(bare):.1f}s "
          f"{[round(t, 1) for t in bare]}")
    print(f"  lkft bisect-step:  median {statistics.median(ours):.1f}s "
          f"{[round(t, 1) for t in ours]}")
    print(f"  ours / bare: {ratio:.3f} (target <= 1.1)")
    print(f"  cold build of the same kernel: {cold:.1f}s without ccache "
          f"({cold / statistics.median(ours):.1f}x a step), {warm:.1f}s through warm ccache "
          f"({warm / statistics.median(ours):.1f}x)")
    return 0 if ratio <= 1.1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
