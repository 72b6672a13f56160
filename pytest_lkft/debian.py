"""Default artifacts from the distribution: a kernel image and busybox, through apt.

apt finds the packages (its own sources and mirrors; no host name lives here), a private
apt state per architecture keeps the host's apt untouched, and the `.deb` files go
through the artifact cache's fetch function so they are downloaded once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import fnmatch
import json
import re
import shlex
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.errors import DownloadError, UserError
from pytest_lkft.files import write_atomically
from pytest_lkft.lab import DebianSource, QemuSpec
from pytest_lkft.rootfs import ROOTFS_VERSION, busybox_initramfs

Fetch = Callable[[str, "str | None"], Path]

LISTS_MAX_AGE = 24 * 3600
UPDATE_ATTEMPTS = 2
PRINT_URIS = re.compile(
    r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})")
DEPENDS = re.compile(r"^\s*Depends: (linux-image-\S+)")


@dataclass(frozen=True)
class DefaultArtifacts:
    """What a device boots when the user gives no kernel and no rootfs."""

    kernel: Path
    rootfs: Path
    kernel_package: str
    busybox_package: str


class Apt:
    """apt-get/apt-cache for one foreign architecture with a private state directory."""

    def __init__(self, arch: str, root: Path) -> None:
        self.arch = arch
        self.root = root
        (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (root / "cache").mkdir(parents=True, exist_ok=True)

    def _options(self) -> list[str]:
        return [
            f"-oAPT::Architecture={self.arch}", f"-oAPT::Architectures={self.arch}",
            f"-oDir::State::Lists={self.root / 'lists'}", f"-oDir::Cache={self.root / 'cache'}",
            "-oAPT::Sandbox::User=root", "-oDebug::NoLocking=1", "-q",
        ]

    def _run(self, tool: str, *args: str) -> str:
        command = [tool, *self._options(), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise UserError(f"{tool} not found: default artifacts need a Debian or Ubuntu "
                            "machine; pass --lkft-kernel and --lkft-rootfs instead") from None
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DownloadError(f"{shlex.join(command)} failed: {last}")
        return done.stdout

    def update(self) -> None:
        """Refresh the package lists when they are missing or older than a day.

        A mirror in mid-sync fails one index now and then: retry once, then go on with
        the lists that did arrive (warning), and try again next run.
        """
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one apt-get update across xdist workers
            stamp = self.root / "updated"
            if stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE:
                return
            for attempt in range(UPDATE_ATTEMPTS):
                try:
                    self._run("apt-get", "update")
                    stamp.touch()
                    return
                except DownloadError as error:
                    failure = error
                    if attempt + 1 < UPDATE_ATTEMPTS:
                        time.sleep(2.0)
            if not any((self.root / "lists").glob("*_Packages*")):
                raise failure
            stamp.touch()  # usable: retry tomorrow, not on every run
            warnings.warn(f"apt-get update for {self.arch} failed in part "
                          f"({str(failure).rsplit(': ', 1)[-1]}); using the lists that "
                          "arrived", stacklevel=2)

    def kernel_package(self, flavour: str) -> str:
        """The versioned kernel package behind the `linux-image-<flavour>` metapackage."""
        meta = f"linux-image-{flavour}"
        for line in self._run("apt-cache", "depends", meta).splitlines():
            match = DEPENDS.match(line)
            if match:
                return match.group(1)
        raise DownloadError(f"{meta} for {self.arch} depends on no kernel image; "
                            "pass --lkft-kernel")

    def locate(self, package: str) -> tuple[str, str]:
        """The download URL and sha256 apt has for `package`."""
        for line in self._run("apt-get", "download", "--print-uris", package).splitlines():
            match = PRINT_URIS.match(line)
            if match:
                return match.group("url"), match.group("sha")
        raise DownloadError(f"apt has no download for {package} ({self.arch}); "
                            "check the machine's apt sources")


def extract_member(deb: Path, pattern: str, dest: Path) -> Path:
    """Extract the first file of `deb` matching glob `pattern` to `dest` (atomically)."""
    if dest.exists():
        return dest
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as p:
        assert p.stdout is not None
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and fnmatch.fnmatch(name, pattern):
                    source = tar.extractfile(member)
                    assert source is not None
                    write_atomically(dest, source.read())
                    return dest
    raise DownloadError(f"{deb.name} holds no file matching {pattern}; pass --lkft-kernel")


def default_artifacts(spec: QemuSpec, cache_root: Path, fetch: Fetch) -> DefaultArtifacts:
    """Kernel and busybox initramfs for `spec` from its Debian architecture's packages.

    What apt resolved is recorded beside the files, so later runs ask apt nothing until
    the package lists are refreshed (daily).
    """
    if spec.debian is None:
        raise UserError(
            f"{spec.name} has no default kernel and rootfs (Debian ships none for it); "
            f"pass --lkft-kernel (a {spec.kernel_image}) and --lkft-rootfs"
        )
    apt = Apt(spec.debian.arch, cache_root / "apt" / spec.debian.arch)
    apt.update()
    out = cache_root / "defaults" / spec.debian.arch
    out.mkdir(parents=True, exist_ok=True)
    record = out / f"{spec.debian.flavour}-{ROOTFS_VERSION}.json"
    found = _read_record(record, apt.root / "updated")
    if found is None:
        found = _resolve(apt, spec.debian, out, fetch)
        write_atomically(record, json.dumps(
            {k: str(v) for k, v in dataclasses.asdict(found).items()}).encode())
    return found


def _resolve(apt: Apt, debian: DebianSource, out: Path, fetch: Fetch) -> DefaultArtifacts:
    package = apt.kernel_package(debian.flavour)
    url, sha = apt.locate(package)
    kernel = extract_member(fetch(url, sha), debian.image, out / f"{package}.kernel")
    bb_url, bb_sha = apt.locate("busybox-static")
    busybox = extract_member(fetch(bb_url, bb_sha), "bin/busybox", out / f"busybox-{bb_sha[:16]}")
    rootfs = out / f"rootfs-{bb_sha[:16]}-{ROOTFS_VERSION}.cpio.gz"
    if not rootfs.exists():
        write_atomically(rootfs, busybox_initramfs(busybox))
    return DefaultArtifacts(kernel, rootfs, package, "busybox-static")


def _read_record(record: Path, lists_stamp: Path) -> DefaultArtifacts | None:
    """The recorded resolution, if newer than the package lists and its files still exist."""
    try:
        if record.stat().st_mtime < lists_stamp.stat().st_mtime:
            return None
        data = json.loads(record.read_text())
        found = DefaultArtifacts(Path(data["kernel"]), Path(data["rootfs"]),
                                 data["kernel_package"], data["busybox_package"])
    except (OSError, ValueError, KeyError):
        return None
    return found if found.kernel.exists() and found.rootfs.exists() else None


