"""The modules suite for real: modules from Debian's arm64 kernel package, loaded in QEMU."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import TESTSUITES, need_qemu
from pytest_lkft.artifacts.apt import Apt
from pytest_lkft.artifacts.cache import ArtifactCache

pytestmark = pytest.mark.qemu
WANTED = 3


def leaf_modules(deb: Path) -> list[tuple[str, bytes]]:
    """A few lib/ modules of `deb` that depend on no other module."""
    found: list[tuple[str, bytes]] = []
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as dpkg:
        assert dpkg.stdout is not None
        with tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile() and "/kernel/lib/" in member.name and \
                        member.name.endswith(".ko"):
                    source = tar.extractfile(member)
                    data = source.read() if source else b""
                    if b"\0depends=\0" in data:
                        found.append((member.name.removeprefix("./"), data))
                if len(found) == WANTED:
                    break
    return found


@pytest.fixture(scope="module")
def modules_tarball(artifact_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lib/modules/<version>/kernel/lib/*.ko of the default qemu-arm64 kernel."""
    cache = ArtifactCache(artifact_cache)
    apt = Apt("arm64", artifact_cache / "apt" / "arm64")
    apt.update()
    deb = cache.fetch(*apt.locate(apt.kernel_package("cloud-arm64")))
    tarball = tmp_path_factory.mktemp("modules") / "modules.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        for name, data in leaf_modules(deb):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return tarball


def test_modules_of_the_tarball_load_and_unload(pytester: pytest.Pytester, artifact_cache: Path,
                                                modules_tarball: Path) -> None:
    need_qemu("qemu-system-aarch64")
    result = pytester.runpytest_subprocess(
        str(TESTSUITES / "test_modules.py"), f"--lkft-cache-dir={artifact_cache}",
        "--lkft-device=qemu-arm64", f"--lkft-modules={modules_tarball}", "-v")
    result.assert_outcomes(passed=WANTED + 1)
    result.stdout.fnmatch_lines(["*test_module?qemu-arm64-crc*? PASSED*"])
    console = (pytester.path / "lkft-results/qemu-arm64/modules/console.log").read_text()
    assert "modprobe crc" in console


def test_escaping_modules_tarball_is_refused(pytester: pytest.Pytester,
                                             artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = pytester.path / "evil.tar"
    with tarfile.open(tarball, "w") as tar:
        member = tarfile.TarInfo("lib/modules/6.1.0/kernel/evil.ko")
        tar.addfile(member, io.BytesIO(b""))
        link = tarfile.TarInfo("lib/modules/6.1.0/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc"
        tar.addfile(link)
    result = pytester.runpytest_subprocess(
        str(TESTSUITES / "test_modules.py"), f"--lkft-cache-dir={artifact_cache}",
        "--lkft-device=qemu-arm64", f"--lkft-modules={tarball}")
    result.assert_outcomes(errors=1, skipped=1)  # the crash check is its consequence
    result.stdout.fnmatch_lines([f"*qemu-arm64: {tarball}: member 'lib/modules/6.1.0/escape' "
                                 "links out of the rootfs*"])
    assert not list((artifact_cache / "overlays").glob("*.part"))


def test_unreadable_modules_tarball_is_one_line(pytester: pytest.Pytester,
                                                artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    junk = pytester.path / "modules.tar.xz"
    junk.write_text("not a tarball")
    result = pytester.runpytest_subprocess(
        str(TESTSUITES / "test_modules.py"), f"--lkft-cache-dir={artifact_cache}",
        "--lkft-device=qemu-arm64", f"--lkft-modules={junk}")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    result.stdout.fnmatch_lines([f"--lkft-modules {junk}: {junk} is not a readable tarball "
                                 "(file could not be opened successfully); pass a .tar, "
                                 ".tar.gz or .tar.xz file"])
    assert "Traceback" not in result.stdout.str()
