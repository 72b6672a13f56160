"""The arm64 kernel the real tests share, built once per machine (issue 18).

Debian's linux-source-6.1 (extracted once under the shared test cache), tinyconfig with the
fragments every suite on it needs: qemu-virt-kunit (console, KUnit, the virtio disk), perf,
rcutorture and gpio-sim; targets config, kernel, modules, kselftest (size and breakpoints)
and perf. `shared_kernel` builds it under the machine's build lock, through the shared
ccache, into the shared build cache; every test that boots this kernel asks for exactly
these inputs (the library, `lkft build` or the plugin's options), so the first one builds
and the others find it in the cache. CI pays one cold kernel build instead of three.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import SHARED_CACHE, need_commands
from pytest_lkft.build.inputs import tree_stamp
from pytest_lkft.build.kernel import BuildResult, KernelBuild

SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
BUILD_LOCK = Path("/tmp/lkft-build.lock")  # one heavy build at a time on this machine
BUILD_CACHE = SHARED_CACHE / "artifacts" / "builds"
KCONFIG = "tinyconfig"
# the order the plugin gives them for --lkft-tests=rcutorture,libgpiod after the user's
# qemu-virt-kunit and perf (a suite's fragment the user gave is not added again)
FRAGMENTS = ("qemu-virt-kunit", "perf", "rcutorture", "gpio-sim")
TARGETS = ("config", "kernel", "modules", "kselftest", "perf")
MAKE_VARS = {"TARGETS": "size breakpoints"}  # two kselftest collections, not all


def need_tools(*tools: str) -> None:
    """Skip (fail under CI) when a build tool is missing, naming the package."""
    need_commands(tools, "apt-get install gcc-aarch64-linux-gnu ccache")


@pytest.fixture(scope="session")
def linux_source() -> Path:
    """Debian's linux-source-6.1, extracted once per machine (apt-get install linux-source-6.1)."""
    tree = SHARED_CACHE / "linux-source-6.1"
    if not (tree / "Makefile").exists():
        if not SOURCE_TARBALL.exists():
            message = f"{SOURCE_TARBALL} is missing: apt-get install linux-source-6.1"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        SHARED_CACHE.mkdir(parents=True, exist_ok=True)
        with open(SHARED_CACHE / "linux-source.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one extraction across xdist workers
            if not (tree / "Makefile").exists():
                partial = SHARED_CACHE / f"linux-source.{os.getpid()}.part"
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir()
                subprocess.run(["tar", "xJf", str(SOURCE_TARBALL), "-C", str(partial)],
                               check=True)
                (partial / "linux-source-6.1").rename(tree)
                partial.rmdir()
    return tree


@contextmanager
def machine_build_lock() -> Iterator[None]:
    """Hold the machine-wide build lock (other helpers and benchmarks build beside us)."""
    with BUILD_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def shared_ccache() -> Iterator[None]:
    """CCACHE_DIR set to the machine's persistent ccache for the duration."""
    before = os.environ.get("CCACHE_DIR")
    os.environ["CCACHE_DIR"] = str(SHARED_CACHE / "ccache")
    try:
        yield
    finally:
        if before is None:
            del os.environ["CCACHE_DIR"]
        else:
            os.environ["CCACHE_DIR"] = before


@pytest.fixture(scope="session")
def shared_kernel(linux_source: Path) -> BuildResult:
    """The shared arm64 build: made here the first time (the source tree checked to be as
    it was), found in the shared build cache afterwards. Its cold cost is printed."""
    need_tools("aarch64-linux-gnu-gcc", "ccache")
    kernel = KernelBuild(tree=linux_source, target_arch="arm64", kconfig=KCONFIG,
                         kconfig_add=FRAGMENTS, targets=TARGETS, make_vars=MAKE_VARS,
                         cache_dir=BUILD_CACHE)
    kernel.validate()
    result = kernel.lookup(kernel.cache_key())  # found: no need to wait for the lock
    before = tree_stamp(linux_source)
    if result is None:
        with machine_build_lock(), shared_ccache():
            result = kernel.run()
    assert result.passed, f"{result.first_errors}\nsee {result.log}"
    if not result.cached:
        assert tree_stamp(linux_source) == before, "the build wrote into the source tree"
    took = {t: info["duration"] for t, info in result.metadata["results"]["targets"].items()}
    origin = "from the build cache" if result.cached else "built now"
    print(f"shared arm64 kernel ({origin}): {took}, ccache {result.metadata.get('ccache')}")
    return result


def cli_options(tree: Path) -> list[str]:
    """`lkft build` options asking for the shared kernel."""
    options = ["--tree", str(tree), "--target-arch", "arm64", "--kconfig", KCONFIG,
               "--targets", ",".join(TARGETS), "--cache-dir", str(BUILD_CACHE)]
    for fragment in FRAGMENTS:
        options += ["--kconfig-add", fragment]
    return options + [f"--make-var={k}={v}" for k, v in MAKE_VARS.items()]


def plugin_options(tree: Path, left_to_suites: tuple[str, ...] = ()) -> list[str]:
    """The plugin's options asking for the shared kernel; the fragments `left_to_suites`
    are not given: the run's --lkft-tests adds them (in FRAGMENTS' order, after the rest)."""
    options = [f"--lkft-tree={tree}", f"--lkft-kconfig={KCONFIG}",
               f"--lkft-build-targets={','.join(TARGETS)}"]
    options += [f"--lkft-kconfig-add={f}" for f in FRAGMENTS if f not in left_to_suites]
    return options + [f"--lkft-make-var={k}={v}" for k, v in MAKE_VARS.items()]


def with_shared_builds(cache: Path) -> Path:
    """`cache` (a test's private --lkft-cache-dir) with the shared build cache as its builds."""
    builds = cache / "builds"
    BUILD_CACHE.mkdir(parents=True, exist_ok=True)
    if not builds.exists():
        builds.symlink_to(BUILD_CACHE, target_is_directory=True)
    return cache
