"""Prebuilt kselftest installs (`--lkft-kselftest`): what they hold and how they reach a rootfs.

A kselftest install is what `make -C tools/testing/selftests install` (or `gen_tar`) makes
and LKFT publishes as `kselftest.tar.xz`: `run_kselftest.sh`, `kselftest-list.txt`
(`collection:test` per line), `kselftest/runner.sh` and one directory per collection, at
the top of the tarball or under one directory (`kselftest/`, `./`). It is laid over the
rootfs at /opt/kselftest as an appended cpio archive, never extracted on the host; its
dynamically linked tests get the cross C library under /lib when the rootfs is the
generated busybox one, which has none.
"""

from __future__ import annotations

import fnmatch
import gzip
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pytest_lkft.artifacts.entry import hash_file
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.provision.rootfs import (
    Entry,
    cached_overlay,
    check_members,
    stored_overlay,
    tarball_overlay,
    write_cpio,
)
from pytest_lkft.provision.stages import StageContext, Staged
from pytest_lkft.settings.archs import get_arch

# Where kselftests land in the device's rootfs, and the cross C library files laid into
# /lib so dynamically linked tests run on a busybox initramfs (FACTS.md).
KSELFTEST_PREFIX = "opt/kselftest"
RUNTIME_LIBS = ("ld-linux*", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
                "librt.so.1", "libresolv.so.2", "libutil.so.1", "libgcc_s.so.1", "libatomic.so.1")
RUNNER = "run_kselftest.sh"
LIST = "kselftest-list.txt"
WHAT_TO_PASS = ("pass the tarball of a kselftest install (LKFT's kselftest.tar.xz, or "
                "`make -C tools/testing/selftests gen_tar`)")


@dataclass(frozen=True)
class KselftestInstall:
    """A kselftest tarball's layout: the directory holding run_kselftest.sh, its collections."""

    tarball: Path
    root: str  # "" or the one leading directory (`kselftest`)
    collections: tuple[str, ...]


def _clean(name: str) -> PurePosixPath:
    """`./kselftest/size/` -> `kselftest/size` (tar member names vary in their `./`)."""
    return PurePosixPath(*[p for p in PurePosixPath(name).parts if p != "."])


def read_install(tarball: Path, shown: str) -> KselftestInstall:
    """The layout of a kselftest tarball; one-line UserError naming `shown` when it is none
    or when a member escapes its tree."""
    try:
        with tarfile.open(tarball) as tar:
            members = {str(_clean(m.name)): m for m in tar.getmembers()}
            runners = sorted(n for n in members if PurePosixPath(n).name == RUNNER
                             and len(PurePosixPath(n).parts) <= 2)
            if not runners:
                raise UserError(f"{shown} has no {RUNNER} at its top; {WHAT_TO_PASS}")
            parent = str(PurePosixPath(runners[0]).parent)
            root = "" if parent == "." else parent
            listed = members.get(str(PurePosixPath(root, LIST)))
            source = tar.extractfile(listed) if listed is not None else None
            if source is None:
                raise UserError(f"{shown} has no {LIST} beside {RUNNER}; {WHAT_TO_PASS} "
                                "from kernel 5.6 or later")
            text = source.read().decode(errors="replace")
            try:
                check_members(tarball, tar.getmembers(), strip=root)
            except UserError as error:
                raise UserError(f"{shown}: {error}") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        why = str(error).splitlines()[0].rstrip(":") if str(error) else type(error).__name__
        raise UserError(f"{shown} is not a readable tarball ({why}); {WHAT_TO_PASS}") from None
    found = collections(text)
    if not found:
        raise UserError(f"{shown}: its {LIST} lists no test; {WHAT_TO_PASS} with the "
                        "collections built (TARGETS=...)")
    return KselftestInstall(tarball, root, found)


def collections(listing: str) -> tuple[str, ...]:
    """The collections of a kselftest-list.txt (`collection:test` lines), sorted, unique."""
    names = {line.split(":", 1)[0].strip() for line in listing.splitlines() if ":" in line}
    return tuple(sorted(n for n in names if n))


def install_overlays(install: KselftestInstall, libc_dir: Path | None,
                     cache_root: Path) -> list[Path]:
    """cpio.gz overlays laying `install` at /opt/kselftest (and `libc_dir` under /lib),
    cached by content; a member escaping the rootfs is refused, naming it."""
    key = f"kselftest-{hash_file(install.tarball)[:32]}-{install.root or 'top'}"
    path = cached_overlay(cache_root, key, lambda: tarball_overlay(
        install.tarball, KSELFTEST_PREFIX, strip=install.root))
    return [path] + ([stored_overlay(libc_overlay(libc_dir), cache_root)] if libc_dir else [])


def libc_overlay(libc_dir: Path) -> bytes:
    """The runtime files of a cross C library (RUNTIME_LIBS) as a gzip'd cpio under lib/."""
    names = sorted(n.name for n in libc_dir.iterdir()
                   if any(fnmatch.fnmatch(n.name, p) for p in RUNTIME_LIBS))
    entries = [Entry(f"lib/{name}", stat.S_IFREG | 0o755, (libc_dir / name).read_bytes())
               for name in names]
    return gzip.compress(write_cpio(entries), mtime=0)


class KselftestStage:
    """--lkft-kselftest at /opt/kselftest, with the cross C library on the busybox rootfs.

    An unusable tarball gives nothing here: the kselftest suite reports it in one line
    (`pytest_lkft.suites.kselftest.install`) and the device's other suites still run.
    """

    name = "kselftest"

    def stage(self, context: StageContext) -> Staged | None:
        settings = context.settings
        if not settings.kselftest:
            return None
        try:
            install = read_install(context.get(settings.kselftest) or Path(), settings.kselftest)
            libc = get_arch(context.spec.arch).libc_dir if settings.rootfs is None else None
            overlays = install_overlays(install, libc, context.cache_root)
        except LkftError:
            overlays = []
        return Staged(overlays, {"kselftest": settings.kselftest})
