"""Debian packages through apt, for a foreign architecture, without touching the host's apt.

apt finds the packages (its own sources and mirrors; no host name lives here), a private
apt state per architecture keeps the host's apt untouched, and the `.deb` files go
through the artifact cache's fetch function so they are downloaded once.
"""

from __future__ import annotations

import fcntl
import fnmatch
import re
import shlex
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from pytest_lkft.errors import DownloadError, UserError
from pytest_lkft.files import write_atomically

Fetch = Callable[[str, "str | None"], Path]

LISTS_MAX_AGE = 24 * 3600
UPDATE_ATTEMPTS = 2
PRINT_URIS = re.compile(
    r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})")
DEPENDS = re.compile(r"^\s*Depends: (linux-image-\S+)")


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
