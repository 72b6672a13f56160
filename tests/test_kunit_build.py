"""One command builds, boots and tests: KUnit cases of a kernel built from linux-source-6.1.

`pytest --lkft-device=qemu-arm64 --lkft-tree=SRC --lkft-kconfig=tinyconfig
--lkft-kconfig-add=qemu-virt-kunit` cross-builds the kernel (ccache
shared on this machine), boots it in QEMU and turns every KUnit case into its own test.
The kernel is the one the real tests share (tests/shared_kernel.py: qemu-virt-kunit with
the perf, rcutorture and gpio-sim fragments), found in the shared build cache.
"""

from __future__ import annotations

import hashlib
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from shared_kernel import (  # noqa: F401  (linux_source, shared_kernel: fixtures)
    linux_source,
    plugin_options,
    shared_kernel,
    with_shared_builds,
)

from conftest import TESTSUITES, junit_name, need_qemu
from pytest_lkft.build.kernel import BuildResult
from pytest_lkft.parsers.detect import parse

pytestmark = [pytest.mark.qemu, pytest.mark.kernel_build]


def kunit_cases(junit: Path) -> dict[str, str]:
    """KUnit results in a JUnit file: test name -> pass/failure/skipped/error."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.get("classname") == "kunit" and junit_name(case) not in ("run", "crash"):
            tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
            found[junit_name(case)] = tags[0] if tags else "pass"
    return found


def test_build_boot_and_every_kunit_case_is_a_test(pytester: pytest.Pytester, tmp_path: Path,
                                                   linux_source: Path,  # noqa: F811
                                                   shared_kernel: BuildResult,  # noqa: F811
                                                   private_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    cache = with_shared_builds(private_cache)  # private case lists; builds, kernels shared
    args = [str(TESTSUITES / "test_build.py"), str(TESTSUITES / "test_kunit.py"),
            f"--lkft-cache-dir={cache}", "--lkft-device=qemu-arm64",
            *plugin_options(linux_source), "-p", "no:cacheprovider"]

    first = pytester.runpytest_subprocess(*args, f"--junitxml={pytester.path / 'first.xml'}")
    first.stdout.fnmatch_lines(["lkft: build tree=* kconfig=tinyconfig+qemu-virt-kunit+perf*"])
    reported = kunit_cases(pytester.path / "first.xml")
    console = pytester.path / "lkft-results" / "qemu-arm64" / "kunit" / "console.log"
    printed = parse(console, format="ktap")
    assert len(printed) >= 50  # the fragment's KUnit suites ran
    assert sorted(reported) == sorted(c.name for c in printed)  # each its own testcase
    assert reported.get("list-kunit-test.list_test_list_init") == "pass"
    assert set(reported.values()) <= {"pass", "skipped"}

    second = pytester.runpytest_subprocess(*args, "-v",
                                           f"--junitxml={pytester.path / 'second.xml'}")
    second.stdout.fnmatch_lines([
        "*test_build.py::test_target?qemu-arm64-kernel? PASSED*",
        "*test_kunit.py::test_case?qemu-arm64-list-kunit-test.list_test_list_init?*PASSED*",
    ])
    assert kunit_cases(pytester.path / "second.xml") == reported  # now collected as items
    outcomes = second.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0


def test_kselftest_collections_are_suites_of_their_own(pytester: pytest.Pytester,
                                                       tmp_path: Path,
                                                       linux_source: Path,  # noqa: F811
                                                       shared_kernel: BuildResult,  # noqa: F811
                                                       private_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    cache = with_shared_builds(private_cache)  # private case lists; builds, kernels shared
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(  # the kselftest target: size and breakpoints
        str(TESTSUITES / "test_kselftest.py"), f"--lkft-cache-dir={cache}",
        "--lkft-device=qemu-arm64", *plugin_options(linux_source), "-p", "no:cacheprovider",
        f"--junitxml={junit}")
    suites: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        suites.setdefault(case.get("classname", ""), {})[junit_name(case)] = \
            tags[0] if tags else "pass"
    assert set(suites) == {"kselftest-size", "kselftest-breakpoints"}, result.stdout.str()[-3000:]
    assert suites["kselftest-size"]["size_get_size"] == "pass"  # test-definitions' name
    assert suites["kselftest-size"]["run"] == "pass"
    assert len(suites["kselftest-breakpoints"]) > 2  # run, crash and the collection's tests


def test_the_built_kernel_boots_an_ext4_rootfs(pytester: pytest.Pytester, tmp_path: Path,
                                              shared_kernel: BuildResult,  # noqa: F811
                                              artifact_cache: Path, private_cache: Path) -> None:
    """--lkft-rootfs as an ext4 image on the virtio disk: the busybox tree the plugin makes by
    default, unpacked into a real ext4 filesystem (mkfs.ext4 -d), mounted as / by a kernel
    with virtio-blk and ext4 built in (Debian's kernels have them as modules). The kernel is
    the shared build's image, given as --lkft-kernel: an ext4 rootfs takes no overlays, and
    --lkft-tree would lay the build's modules, kselftests and perf over it."""
    need_qemu("qemu-system-aarch64")
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    shared = ArtifactCache(artifact_cache)
    initramfs = default_artifacts(load_devices().get("qemu-arm64"), shared.root,
                                  shared.fetch).rootfs
    tree, image = tmp_path / "tree", tmp_path / "rootfs.ext4"
    tree.mkdir()
    subprocess.run(f"gzip -dc {initramfs} | cpio -idm --quiet", shell=True, cwd=tree,
                   check=True)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(tree), str(image), "32M"], check=True)
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    cache = private_cache  # private case lists and builds; kernels/busybox shared
    result = pytester.runpytest_subprocess(
        str(TESTSUITES / "test_boot.py"), str(TESTSUITES / "test_smoke.py"),
        f"--lkft-cache-dir={cache}", "--lkft-device=qemu-arm64",
        f"--lkft-kernel={shared_kernel.kernel}", f"--lkft-rootfs={image}",
        "--lkft-boot-args=init=/init", "-p", "no:cacheprovider", "-v",
        "-k", "not network")  # a tinyconfig kernel has no networking: `ip addr` fails
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3 and not outcomes.get("failed"), result.stdout.str()
    result.stdout.fnmatch_lines(["*test_smoke.py::test_smoke?qemu-arm64-tmp-write? PASSED*"])
    run_dir = pytester.path / "lkft-results" / "qemu-arm64" / "boot"
    console = (run_dir / "console.log").read_text()
    assert "EXT4-fs (vda): mounted filesystem" in console
    assert "Unpacking initramfs" not in console  # no initramfs: / is the disk
    reproducer = (run_dir / "reproducer.sh").read_text()
    assert "virtio-blk-device" in reproducer and "root=/dev/vda" in reproducer
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before  # snapshot=on
