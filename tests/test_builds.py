"""Kernel builds: bad input, the cache key, kconfig merging, records, and a real build + boot.

The real tests build Debian's `linux-source-6.1` (extracted once per machine under the
shared test cache) with the arm64 cross gcc through a persistent ccache, and boot the
result on qemu-arm64 with the plugin's busybox initramfs. `-m kernel_build` selects them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from shared_kernel import (  # noqa: F401  (linux_source, shared_kernel: fixtures)
    BUILD_CACHE,
    FRAGMENTS,
    MAKE_VARS,
    TARGETS,
    cli_options,
    linux_source,
    machine_build_lock,
    need_tools,
    shared_kernel,
)

from conftest import REPO, SHARED_CACHE, TESTSUITES, need_qemu
from pytest_lkft.build.inputs import (
    GitPrefetch,
    file_digest,
    git_metadata,
    git_source,
    read_git,
    tree_stamp,
)
from pytest_lkft.build.kernel import BuildResult, KernelBuild, build
from pytest_lkft.build.result import PERF_MAKE_VARS
from pytest_lkft.errors import UserError
from pytest_lkft.pytestplugin.build import device_overlays, failure_reason

KUNIT_FRAGMENT = REPO / "pytest_lkft" / "data" / "kconfig" / "qemu-virt-kunit.config"
FAKE_MAKEFILE = """\
# A stand-in for the kernel's Makefile: config works, the kernel fails, headers install.
tinyconfig defconfig:
\t@mkdir -p $(O) && printf 'CONFIG_MODULES=y\\n' > $(O)/.config
olddefconfig:
\t@echo "  olddefconfig"
bzImage:
\t@echo "  CC      init/main.o"
ifeq ($(FAKE_OK),)
\t@echo "init/main.c:1:1: warning: unused variable 'x'"
\t@echo "init/main.c:2:1: error: expected ';' before '}' token"
\t@exit 2
else
\t@echo built >> $(FAKE_OK)
\t@mkdir -p $(O)/arch/x86/boot && echo kernel > $(O)/arch/x86/boot/bzImage
\t@echo "ffff0000 T _text" > $(O)/System.map
endif
modules:
\t@echo "  CC [M]  fs/fake.o"
modules_install:
\t@mkdir -p $(INSTALL_MOD_PATH)/lib/modules/6.1.0-fake/kernel/fs && \
touch $(INSTALL_MOD_PATH)/lib/modules/6.1.0-fake/kernel/fs/fake.ko
headers_install:
\t@mkdir -p $(INSTALL_HDR_PATH)/include/linux && echo '#define X 1' > \
$(INSTALL_HDR_PATH)/include/linux/x.h
"""


def fake_tree(path: Path, git: bool = False) -> Path:
    """A directory that passes for a kernel source (Makefile, Kconfig, Kbuild)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n"
                                   "EXTRAVERSION = -fake\n" + FAKE_MAKEFILE)
    (path / "Kconfig").write_text("mainmenu \"fake\"\n")
    (path / "Kbuild").write_text("")
    (path / "init").mkdir(exist_ok=True)
    (path / "init" / "main.c").write_text("int main;\n")
    if git:
        for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c",
                                                   "user.email=t@t", "commit", "-qm", "fake"]):
            subprocess.run(["git", "-C", str(path), *args], check=True)
    return path


@pytest.fixture
def build_cache(tmp_path: Path) -> Path:
    return tmp_path / "build-cache"


@pytest.fixture
def shared_ccache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ccache that persists on this machine, so CI rebuilds take seconds of compiling."""
    monkeypatch.setenv("CCACHE_DIR", str(SHARED_CACHE / "ccache"))


@pytest.fixture
def untouched(linux_source: Path) -> Iterator[Path]:  # noqa: F811
    """The source tree, checked afterwards to be exactly as it was (names, sizes, times)."""
    before = tree_stamp(linux_source)
    yield linux_source
    assert tree_stamp(linux_source) == before, "the build wrote into the source tree"


# -- bad input: one line each, before make starts ---------------------------------------------


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"is not a kernel source tree \(no Makefile, Kconfig"):
        KernelBuild(tree=tmp_path, target_arch="x86_64").validate()


def test_unknown_arch(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown architecture 'vax'; valid: arm, arm64, i386"):
        KernelBuild(tree=fake_tree(tmp_path), target_arch="vax").validate()


def test_unknown_toolchain(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown toolchain 'icc'; use gcc, gcc-N, clang"):
        KernelBuild(tree=fake_tree(tmp_path), target_arch="x86_64", toolchain="icc").validate()


def test_missing_fragment(tmp_path: Path) -> None:
    missing = tmp_path / "nope.config"
    with pytest.raises(UserError, match=f"kconfig fragment {missing} does not exist"):
        KernelBuild(tree=fake_tree(tmp_path / "src"), target_arch="x86_64",
                    kconfig_add=(str(missing),)).validate()


def test_missing_kconfig_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="kconfig ./no/such.config does not exist"):
        KernelBuild(tree=fake_tree(tmp_path), target_arch="x86_64",
                    kconfig="./no/such.config").validate()


def test_missing_cross_compiler_names_its_apt_package(tmp_path: Path) -> None:
    if shutil.which("s390x-linux-gnu-gcc"):
        pytest.skip("the s390x cross compiler is installed here")
    with pytest.raises(UserError) as error:
        KernelBuild(tree=fake_tree(tmp_path), target_arch="s390").validate()
    assert str(error.value) == ("s390x-linux-gnu-gcc not found: gcc for s390 needs "
                                "`apt-get install gcc-s390x-linux-gnu`")


def test_reserved_make_variable(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="make variable ARCH cannot be set"):
        KernelBuild(tree=fake_tree(tmp_path), target_arch="x86_64",
                    make_vars={"ARCH": "arm"}).validate()


def test_lkft_build_prints_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "build", "--tree",
                           str(tmp_path), "--target-arch", "x86_64"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"lkft build: error: {tmp_path} is not a kernel source tree (no Makefile, Kconfig, "
        "Kbuild); pass the top directory of a Linux source"]


def test_plugin_options_are_checked_at_start(pytester: pytest.Pytester) -> None:
    """settings_from in pytest_configure (as plugin.py wires it): a usage error, no build."""
    result = pytester.runpytest_subprocess("--lkft-kconfig=tinyconfig")
    result.stderr.fnmatch_lines(["ERROR: --lkft-kconfig needs --lkft-tree DIR*"])
    fake = fake_tree(pytester.path / "src")
    result = pytester.runpytest_subprocess(f"--lkft-tree={fake}", "--lkft-toolchain=gcc-99",
                                           "--lkft-device=qemu-arm64")
    result.stderr.fnmatch_lines(["ERROR: aarch64-linux-gnu-gcc-99 not found: gcc-99 for arm64 "
                                 "needs `apt-get install gcc-99-aarch64-linux-gnu`"])
    result = pytester.runpytest_subprocess(f"--lkft-tree={fake}", "--lkft-target-arch=x86_64",
                                           "--lkft-device=qemu-arm64")
    result.stderr.fnmatch_lines(["ERROR: --lkft-target-arch x86_64 cannot boot on an arm64*"])
    (pytester.path / "Image").write_bytes(b"\0" * 64)
    result = pytester.runpytest_subprocess(f"--lkft-tree={fake}", "--lkft-kernel=Image")
    result.stderr.fnmatch_lines(["ERROR: --lkft-kernel and --lkft-tree both give the kernel*"])


def test_xdist_workers_build_once(pytester: pytest.Pytester) -> None:
    """kernel_build_for under -n 2: one worker runs make, the other waits and reuses it."""
    pytester.makepyfile(test_two="""
        import pytest
        from pytest_lkft.pytestplugin.build import kernel_build_for

        @pytest.mark.parametrize("n", [1, 2])
        def test_kernel(pytestconfig, n):
            result = kernel_build_for(pytestconfig, "x86_64")
            assert result.passed and result.kernel.read_text() == "kernel\\n"
            assert result.modules.name == "modules.tar.xz"
    """)
    tree, counter = fake_tree(pytester.path / "src"), pytester.path / "made"
    result = pytester.runpytest_subprocess(
        "-n", "2", f"--lkft-tree={tree}", "--lkft-kconfig=tinyconfig",
        f"--lkft-make-var=FAKE_OK={counter}", f"--lkft-cache-dir={pytester.path / 'cache'}")
    result.assert_outcomes(passed=2)
    assert counter.read_text() == "built\n"


# -- the cache key ----------------------------------------------------------------------------


def key_of(tree: Path, cache: Path, **kwargs: object) -> str:
    kernel = KernelBuild(tree=tree, target_arch="x86_64", cache_dir=cache,
                         **kwargs)  # type: ignore[arg-type]
    kernel.validate()
    return kernel.cache_key()


def test_cache_key_follows_git_state(tmp_path: Path, build_cache: Path) -> None:
    tree = fake_tree(tmp_path / "src", git=True)
    first = key_of(tree, build_cache)
    assert key_of(tree, build_cache) == first
    assert key_of(tree, build_cache, targets=("modules", "kernel", "config")) == first
    assert key_of(tree, build_cache, targets=("config", "kernel")) != first
    assert key_of(tree, build_cache, toolchain="gcc-12") != first
    (tree / "init" / "main.c").write_text("int main = 1;\n")  # uncommitted change
    dirty = key_of(tree, build_cache)
    assert dirty != first
    (tree / "init" / "new.c").write_text("\n")  # untracked file
    assert key_of(tree, build_cache) not in (first, dirty)


def test_one_read_of_git_gives_the_key_and_describe(tmp_path: Path) -> None:
    """The cache key and the metadata's `git describe --dirty` come from one `git status`
    (and `git diff HEAD` only when a tracked file changed): as git itself says them."""
    tree = fake_tree(tmp_path / "src", git=True)
    git = ["git", "-C", str(tree)]

    def described() -> str:
        return subprocess.run([*git, "describe", "--always", "--tags", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()

    def changes() -> bytes:
        return subprocess.run([*git, "diff", "HEAD", "--binary"], capture_output=True,
                              check=True).stdout

    clean = read_git(tree)
    assert clean is not None and not clean.changed
    assert clean.commit == subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                                          text=True, check=True).stdout.strip()
    assert git_metadata(tree, clean)["git_describe"] == described()
    (tree / "init" / "new.c").write_text("\n")  # untracked: a new key, not dirty
    untracked = read_git(tree)
    assert untracked is not None and not untracked.changed
    assert untracked.dirty != clean.dirty
    assert git_metadata(tree, untracked)["git_describe"] == described()
    subprocess.run([*git, "mv", "Kbuild", "Kbuild.moved"], check=True)  # a staged rename
    moved = read_git(tree)
    assert moved is not None and moved.changed and described().endswith("-dirty")
    assert git_metadata(tree, moved)["git_describe"] == described()
    assert moved.dirty == hashlib.sha256(changes() + b"init/new.c" + file_digest(
        tree / "init" / "new.c").encode()).hexdigest()  # what `git diff HEAD` said, as before
    assert read_git(tmp_path) is None  # not the top of a checkout


def test_the_git_state_read_while_pytest_collects_is_taken_once(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "src", git=True)
    clean = read_git(tree)
    GitPrefetch.start(tree)
    GitPrefetch.start(tree / ".." / "src")  # the same tree: started once
    taken = GitPrefetch.take(tree)
    assert taken is not None and taken.result() == clean
    assert GitPrefetch.take(tree) is None  # taken: the next build reads afresh
    (tree / "init" / "new.c").write_text("\n")
    assert git_source(tree) == read_git(tree) != clean
    GitPrefetch.start(tree)
    GitPrefetch.drop(tree)  # what the session's cleanup does with a read nobody took
    assert GitPrefetch.take(tree) is None


def test_cache_key_follows_content_outside_git(tmp_path: Path, build_cache: Path) -> None:
    tree = fake_tree(tmp_path / "a")
    fragment = tmp_path / "frag.config"
    fragment.write_text("CONFIG_PRINTK=y\n")
    first = key_of(tree, build_cache, kconfig_add=(str(fragment),))
    copy = tmp_path / "b"
    shutil.copytree(tree, copy)  # same content elsewhere: the same build
    assert key_of(copy, build_cache, kconfig_add=(str(fragment),)) == first
    os.utime(tree / "Kbuild")  # touched, not changed
    assert key_of(tree, build_cache, kconfig_add=(str(fragment),)) == first
    fragment.write_text("CONFIG_PRINTK=n\n")  # same path, new content
    assert key_of(tree, build_cache, kconfig_add=(str(fragment),)) != first
    (tree / "Kbuild").write_text("obj-y += init/\n")
    assert key_of(tree, build_cache) != key_of(copy, build_cache)


# -- a failing target, keep-going, records (fake tree: seconds) --------------------------------


def test_failed_kernel_keeps_going_and_is_not_cached(tmp_path: Path, build_cache: Path) -> None:
    tree = fake_tree(tmp_path / "src")
    before = tree_stamp(tree)
    lines: list[str] = []
    result = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig", cache_dir=build_cache,
                   targets=("kernel", "modules", "headers"),
                   progress=lambda p: lines.append(f"{p.target}: {p.line}"))
    assert result.status == {"config": "PASS", "kernel": "FAIL", "modules": "SKIP",
                             "headers": "PASS"}
    assert not result.passed and result.kernel is None and result.modules is None
    assert result.headers is not None and result.headers.exists()
    assert result.first_errors.splitlines()[0] == (
        "init/main.c:2:1: error: expected ';' before '}' token")
    assert (result.warnings, result.errors) == (1, 1)
    assert failure_reason(result) == ("kernel build failed (kernel): init/main.c:2:1: error: "
                                      f"expected ';' before '}}' token; see {result.log}")
    assert "kernel: starting" in lines
    again = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig", cache_dir=build_cache,
                  targets=("kernel", "modules", "headers"))
    assert not again.cached  # failures are built again, never served from the cache
    assert tree_stamp(tree) == before  # nothing written into the source tree


def test_records_and_reproducer(tmp_path: Path, build_cache: Path) -> None:
    tree = fake_tree(tmp_path / "src", git=True)
    out = tmp_path / "out"
    result = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig", cache_dir=build_cache,
                   targets=("headers",), build_dir=out, make_vars={"KCFLAGS": "-O1"})
    metadata = json.loads((out / "metadata.json").read_text())
    assert set(metadata) >= {"build", "compiler", "git", "source", "results", "os", "uname"}
    assert metadata["build"]["targets"] == ["headers"]
    assert metadata["build"]["kconfig"] == "tinyconfig"
    assert metadata["build"]["make_variables"] == {"KCFLAGS": "-O1"}
    assert metadata["source"]["kernelversion"] == "6.1.0-fake"
    assert metadata["git"]["git_commit"] == subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True,
        check=True).stdout.strip()
    assert metadata["results"]["status"] == "PASS"
    assert metadata["results"]["artifacts"]["headers"] == ["headers.tar.xz"]
    assert set(metadata["results"]["targets"]["config"]) == {"status", "duration"}
    reproducer = (out / "reproducer.sh").read_text().splitlines()
    assert reproducer[:3] == ["#!/bin/sh", reproducer[1], "set -eu"]
    assert f"cd {tree}" in reproducer
    make = f"make --keep-going --jobs={os.cpu_count()} O={out}/build ARCH=x86_64"
    assert any(line.startswith(make) and line.endswith("KCFLAGS=-O1 tinyconfig")
               for line in reproducer)
    assert os.access(out / "reproducer.sh", os.X_OK)
    (out / "headers.tar.xz").unlink()
    subprocess.run([str(out / "reproducer.sh")], check=True, capture_output=True)
    with tarfile.open(out / "headers.tar.xz") as tar:
        assert "./include/linux/x.h" in tar.getnames()
    assert not result.cached
    again = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig", cache_dir=build_cache,
                  targets=("headers",), make_vars={"KCFLAGS": "-O1"})
    assert again.cached and again.output_dir == out  # no build_dir asked: any recorded one
    elsewhere = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig",
                      cache_dir=build_cache, targets=("headers",), build_dir=tmp_path / "other",
                      make_vars={"KCFLAGS": "-O1"})
    assert not elsewhere.cached and elsewhere.headers == tmp_path / "other" / "headers.tar.xz"



FAKE_PERF_MAKEFILE = """\
# A stand-in for tools/perf's Makefile: records its variables, installs a perf.
install-bin:
\t@mkdir -p $(O) && echo "$(MAKEFLAGS)" > $(O)/variables
\t@mkdir -p $(DESTDIR)$(prefix)/bin && echo perf > $(DESTDIR)$(prefix)/bin/perf
"""


def test_perf_target_packs_tools_perf(tmp_path: Path, build_cache: Path) -> None:
    """tools/perf, built out of the source tree with the target's compiler and the static,
    library-less variables, installed under usr/ and packed; those variables are part of
    the cache key (a change to them builds again)."""
    tree = fake_tree(tmp_path / "src")
    (tree / "tools" / "perf").mkdir(parents=True)
    (tree / "tools" / "perf" / "Makefile").write_text(FAKE_PERF_MAKEFILE)
    before = tree_stamp(tree)
    result = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig", cache_dir=build_cache,
                   targets=("perf",))
    assert result.status == {"perf": "PASS"} and result.perf is not None
    with tarfile.open(result.perf) as tar:
        assert "./usr/bin/perf" in tar.getnames()
    variables = (result.output_dir / "build" / "tools" / "perf" / "variables").read_text()
    for variable in ("NO_LIBELF=1", "EXTRA_PERFLIBS=-static", "WERROR=0", "ARCH=x86_64",
                     "CROSS_COMPILE=x86_64-linux-gnu-", "prefix=/usr"):
        assert variable in variables
    assert result.metadata["lkft"]["inputs"]["perf"] == list(PERF_MAKE_VARS)
    assert tree_stamp(tree) == before

CONFIG_MAKEFILE = """\
# config counts its runs; the kernel writes kbuild's list of the Kconfig files it read
tinyconfig:
\t@mkdir -p $(O) && printf 'CONFIG_X=y\\n' > $(O)/.config && echo config >> $(COUNT)
olddefconfig:
\t@true
bzImage:
\t@mkdir -p $(O)/include/config $(O)/arch/x86/boot
\t@printf 'deps_config := \\\\\\n\\tKconfig \\\\\\n\\tinit/Kconfig\\n\\n' \\
\t\t> $(O)/include/config/auto.conf.cmd
\t@echo kernel > $(O)/arch/x86/boot/bzImage && echo "ffff0000 T _text" > $(O)/System.map
"""


def test_an_unchanged_config_is_kept(tmp_path: Path, build_cache: Path) -> None:
    """A build into an object tree whose .config came from the same inputs, with no
    Kconfig file changed since, keeps that .config (a bisection's step after the first)."""
    tree = fake_tree(tmp_path / "src")
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n" + CONFIG_MAKEFILE)
    (tree / "init" / "Kconfig").write_text("config X\n")
    (tree / "scripts" / "kconfig").mkdir(parents=True)
    (tree / "scripts" / "kconfig" / "merge_config.sh").write_text('cat "$5" >> "$4"\n')
    count, fragment = tmp_path / "count", tmp_path / "frag.config"
    fragment.write_text("CONFIG_X=y\n")

    def config_runs() -> int:
        result = build(tree=tree, target_arch="x86_64", kconfig="tinyconfig",
                       kconfig_add=(str(fragment),), targets=("kernel",), reuse=False,
                       cache_dir=build_cache, build_dir=tmp_path / "out",
                       make_vars={"COUNT": str(count)})
        assert result.passed and (tmp_path / "out" / "config").exists(), result.first_errors
        return len(count.read_text().splitlines())

    assert config_runs() == 1
    assert config_runs() == 1  # kept
    log = (tmp_path / "out" / "build.log").read_text()
    assert "I: config: the object tree's .config is kept" in log
    reproducer = (tmp_path / "out" / "reproducer.sh").read_text()
    assert "tinyconfig" in reproducer  # the reproducer still makes it from scratch
    (tree / "init" / "Kconfig").write_text("config X\n\tbool\n")  # a Kconfig file kbuild read
    assert config_runs() == 2
    assert config_runs() == 2
    fragment.write_text("CONFIG_X=n\n")  # another input
    assert config_runs() == 3


# -- real kconfig on linux-source-6.1 (tens of seconds) ----------------------------------------


@pytest.mark.kernel_build
def test_fragments_merge_in_order(
    untouched: Path, tmp_path: Path, build_cache: Path, shared_ccache: None
) -> None:
    need_tools("aarch64-linux-gnu-gcc")
    fragment = tmp_path / "printk.config"
    fragment.write_text("CONFIG_PRINTK=y\nCONFIG_KUNIT=y\n")
    result = build(tree=untouched, target_arch="arm64", kconfig="tinyconfig",
                   cache_dir=build_cache, targets=("config",),
                   kconfig_add=(str(fragment), "# CONFIG_PRINTK is not set",
                                "make:kvm_guest.config"))
    assert result.status == {"config": "PASS"}
    assert result.config is not None
    config = result.config.read_text().splitlines()
    assert "# CONFIG_PRINTK is not set" in config  # the later inline line wins
    assert "CONFIG_KUNIT=y" in config
    assert "CONFIG_VIRTIO_BLK=y" in config  # from kernel/configs/kvm_guest.config
    unmet = result.metadata["lkft"]["kconfig_unmet"]  # kvm_guest.config's x86-only options
    assert "CONFIG_HYPERVISOR_GUEST=y (kvm_guest.config) is n" in unmet
    assert all("(kvm_guest.config)" in line for line in unmet)
    assert "W: kconfig: CONFIG_HYPERVISOR_GUEST=y" in result.log.read_text()


# -- the real end-to-end: build, kselftest, boot, cache, lkft build, reproducer ----------------


def boot_and_run(kernel: Path, initrd: Path, command: str, timeout: float = 240) -> str:
    """Boot `kernel` on qemu-arm64, run `command` at the shell; the whole console."""
    qemu = ["qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "cortex-a57",
            "-m", "512", "-nographic", "-no-reboot", "-kernel", str(kernel),
            "-initrd", str(initrd), "-append", "console=ttyAMA0 panic=-1"]
    child = pexpect.spawn(qemu[0], qemu[1:], encoding="utf-8", codec_errors="replace",
                          timeout=timeout)
    try:
        child.expect("lkft: init done")
        console = str(child.before)
        child.expect("/ # ")
        child.sendline(f"{command}; echo lkft-exit=$?")
        child.expect(r"lkft-exit=(\d+)")
        return console + str(child.before) + str(child.after)
    finally:
        child.terminate(force=True)


def busybox_rootfs(artifact_cache: Path) -> Path:
    """The plugin's default busybox initramfs for qemu-arm64."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    with ArtifactCache(artifact_cache) as cache:
        return default_artifacts(load_devices().get("qemu-arm64"), artifact_cache,
                                 cache.fetch).rootfs


def elf_facts(path: Path) -> tuple[int, bool]:
    """e_machine of a 64-bit ELF file (183: aarch64) and whether it has a PT_INTERP program
    header (a dynamically linked executable)."""
    data = path.read_bytes()
    assert data[:5] == b"\x7fELF\x02", f"{path} is no 64-bit ELF file"
    offset, size = int.from_bytes(data[32:40], "little"), int.from_bytes(data[54:56], "little")
    types = [int.from_bytes(data[offset + i * size:offset + i * size + 4], "little")
             for i in range(int.from_bytes(data[56:58], "little"))]
    return int.from_bytes(data[18:20], "little"), 3 in types


@pytest.mark.kernel_build
@pytest.mark.qemu
def test_build_boot_and_rebuild_arm64_kunit(
    untouched: Path, tmp_path: Path, shared_kernel: BuildResult,  # noqa: F811
    shared_ccache: None, artifact_cache: Path,
) -> None:
    """The arm64 kernel the real tests share (tests/shared_kernel.py), built once per
    machine: the records of its build, `lkft build` and the library finding it in the
    cache, a boot running its cross-built kselftests and its static perf, and its
    reproducer making the same Image again."""
    need_qemu("qemu-system-aarch64")
    done = subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "build",
                           *cli_options(untouched)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("build: PASS from the build cache: ")
    out = shared_kernel.output_dir
    assert f"artifacts: {out}" in done.stdout
    result = BuildResult.load(out)
    assert result is not None and result.metadata == shared_kernel.metadata
    targets = result.metadata["results"]["targets"]
    assert {t: info["status"] for t, info in targets.items()} == {
        "config": "PASS", "kernel": "PASS", "modules": "PASS", "kselftest": "PASS",
        "perf": "PASS"}
    assert all(info["duration"] > 0 for info in targets.values())  # make ran each
    assert result.metadata["lkft"]["kconfig_unmet"] == []
    assert result.metadata["build"]["wrapper"] == "ccache"
    assert result.kernel == out / "Image" and result.modules == out / "modules.tar.xz"
    assert result.kselftest is not None and result.perf == out / "perf.tar.xz"
    with tarfile.open(result.kselftest) as tar:
        names = tar.getnames()
    assert {"./run_kselftest.sh", "./kselftest-list.txt", "./size/get_size"} <= set(names)
    assert any(n.startswith("./breakpoints/") for n in names)
    with tarfile.open(result.perf) as tar:
        tar.extract("./usr/bin/perf", tmp_path / "perf", filter="data")
    assert elf_facts(tmp_path / "perf" / "usr" / "bin" / "perf") == (183, False)  # static

    initrd = tmp_path / "initrd.gz"  # kselftests, the cross libc and perf over busybox
    overlays = device_overlays(result, tmp_path / "overlays")
    initrd.write_bytes(b"".join(p.read_bytes() for p in [busybox_rootfs(artifact_cache),
                                                          *overlays]))
    console = boot_and_run(result.kernel, initrd, "/opt/kselftest/breakpoints/"
                           "step_after_suspend_test -h; /opt/kselftest/size/get_size; "
                           "/usr/bin/perf --version")
    assert "KTAP version 1" in console
    assert "# Subtest: list-kunit-test" in console
    assert "not ok" not in console
    assert "ok 1 get runtime memory use" in console  # the cross-built kselftests ran,
    assert "Usage: /opt/kselftest/breakpoints/step_after_suspend_test" in console  # dynamic
    assert "perf version 6.1." in console  # the build's perf, on a rootfs with no perf
    assert "lkft-exit=0" in console

    by_path = (str(KUNIT_FRAGMENT), *FRAGMENTS[1:])  # a fragment's file is its name's input
    again = build(tree=untouched, target_arch="arm64", kconfig="tinyconfig", kconfig_add=by_path,
                  targets=TARGETS, make_vars=MAKE_VARS, cache_dir=BUILD_CACHE)
    assert again.cached and again.output_dir == out  # its speed: bench/bench_build.py

    image = (out / "Image").read_bytes()
    with machine_build_lock():  # make runs again in the shared build's object tree
        rebuilt = subprocess.run([str(out / "reproducer.sh")], capture_output=True, text=True,
                                 check=False)
    assert rebuilt.returncode == 0, rebuilt.stdout[-2000:] + rebuilt.stderr[-2000:]
    assert (out / "Image").read_bytes() == image  # reproducible: same timestamp, same bytes


def test_failed_build_is_a_result_and_skips_the_device(pytester: pytest.Pytester) -> None:
    """build/<target> items say what failed; the device's suites skip with the first error."""
    tree = fake_tree(pytester.path / "src")  # its kernel does not compile
    result = pytester.runpytest_subprocess(
        str(TESTSUITES / "test_build.py"), str(TESTSUITES / "test_boot.py"), "-v", "-rs",
        "--lkft-device=qemu-x86_64", f"--lkft-tree={tree}", "--lkft-kconfig=tinyconfig",
        f"--lkft-cache-dir={pytester.path / 'cache'}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=3)  # config; kernel; modules, boot, crash
    result.stdout.fnmatch_lines([
        "*test_target?qemu-x86_64-kernel? FAILED*",
        "*init/main.c:2:1: error: expected ';' before '}' token*",
        "*qemu-x86_64: kernel build failed (kernel): init/main.c:2:1: error: expected ';'*",
    ])
