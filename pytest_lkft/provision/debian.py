"""A Debian 12 rootfs from Debian's packages, for any architecture, without root.

mmdebstrap does the work (apt resolves the packages, dpkg-deb unpacks them): its
`extract` variant runs no maintainer script, so no foreign binary runs on the host, and
its `chrootless` mode needs no root. It runs under `fakeroot -s`, which keeps the
files' owners (root) and device nodes in a state file beside the tree; images made from
the tree later load that state (`pytest_lkft.provision.images`). Our own files (an
`/init` giving a shell on the console, `/etc/passwd`, `/bin/sh`) are laid in by an
extract hook, in the same fakeroot session.

The packages come from the Debian archive this machine's apt sources name (apt's
`indextargets`; no host name lives here): the release of `debian-rootfs.yaml` with its
-updates and -security suites. On another distribution (Ubuntu: its sites have no
Debian release) a mirror must be given (`--lkft-debian-mirror`): the release and its
-updates suite come from there. A rootfs is cached by its architecture, package list and
the archive's snapshot (the `Date:` of each suite's InRelease, looked up at most daily);
when the archive cannot be reached, the newest rootfs of the same packages is used.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.build.inputs import OS_RELEASE, read_os_release
from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.files import write_atomically
from pytest_lkft.settings.rootfs import load_recipe

ARCHS = ("amd64", "arm64", "armel", "armhf", "i386", "mips64el", "mipsel", "ppc64el", "s390x")
SNAPSHOT_MAX_AGE = 24 * 3600
APT_HELPER = "/usr/lib/apt/apt-helper"
TOOLS = "mmdebstrap gpg fakeroot e2fsprogs"  # the packages of what builds the rootfs
DATE = re.compile(r"^Date: (.+)$", re.MULTILINE)
Log = Callable[[str], None]

# /init: mount the kernel's filesystems, add busybox's applets where Debian has no
# command, then a shell on the console, again whenever it exits (no login).
INIT = """#!/bin/sh
# pytest-lkft's Debian rootfs: a shell on the console, no login
/bin/busybox mount -t proc proc /proc 2>/dev/null
/bin/busybox mount -t sysfs sysfs /sys 2>/dev/null
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t configfs configfs /sys/kernel/config 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
[ -f "/lib/modules/$(uname -r)/modules.dep" ] || depmod -a 2>/dev/null
hostname lkft
echo "lkft: init done"
while true; do setsid cttyhack sh -l; done
"""
FILES = {
    "init": (0o755, INIT),
    "etc/passwd": (0o644, "root:x:0:0:root:/root:/bin/sh\n"
                          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    "etc/group": (0o644, "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
    "etc/shadow": (0o640, "root::19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"),
    "etc/hostname": (0o644, "lkft\n"),
    "etc/hosts": (0o644, "127.0.0.1 localhost lkft\n::1 localhost\n"),
}
LINKS = {"bin/sh": "busybox", "sbin/init": "../init"}
# Changes with our files, so a cached rootfs is rebuilt when they change.
FILES_VERSION = hashlib.sha256(json.dumps([FILES, LINKS], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Rootfs:
    """A built rootfs: its tree, the fakeroot state holding its owners, what it holds."""

    root: Path
    state: Path
    key: str
    arch: str
    packages: tuple[str, ...]
    snapshot: str


def rootfs_packages(extra: Iterable[str]) -> tuple[str, ...]:
    """The base packages of `debian-rootfs.yaml` with `extra`, sorted, each once."""
    return tuple(sorted({*load_recipe().packages, *extra}))


def check_arch(arch: str) -> str:
    """`arch` if Debian 12 releases it; UserError listing the architectures otherwise."""
    if arch not in ARCHS:
        raise UserError(f"unknown Debian architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return arch


def build_rootfs(arch: str, packages: Iterable[str], cache_root: Path,
                 log: Log | None = None, mirror: str | None = None) -> Rootfs:
    """The rootfs of `packages` (plus the base ones) for Debian architecture `arch`, built
    once per package list and archive snapshot under `cache_root/debian-rootfs`, from
    `mirror` or the machine's own Debian archive (`apt_sources`)."""
    check_arch(arch)
    names = rootfs_packages(packages)
    top = cache_root / "debian-rootfs"
    top.mkdir(parents=True, exist_ok=True)
    sources = apt_sources(load_recipe().release, mirror)
    snapshot = archive_snapshot(sources, top / "snapshot.json", log)
    if not snapshot:
        return newest_rootfs(top, arch, names, log)
    key = rootfs_key(arch, names, snapshot)
    with open(top / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of a key across processes
        found = read_rootfs(top / key)
        if found is None:
            found = _build(top / key, arch, names, snapshot, sources, log)
    return found


def rootfs_key(arch: str, packages: tuple[str, ...], snapshot: str) -> str:
    """The cache key of a rootfs: architecture, packages, recipe, our files, snapshot."""
    recipe = load_recipe()
    parts = [arch, *packages, recipe.release, *recipe.exclude, FILES_VERSION, snapshot]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def read_rootfs(path: Path) -> Rootfs | None:
    """The rootfs recorded in `path/rootfs.json`, None when there is none (yet)."""
    try:
        data = json.loads((path / "rootfs.json").read_text())
    except (OSError, ValueError):
        return None
    return Rootfs(path / "root", path / "fakeroot.state", path.name, data["arch"],
                  tuple(data["packages"]), data["snapshot"])


def newest_rootfs(top: Path, arch: str, packages: tuple[str, ...], log: Log | None) -> Rootfs:
    """The newest cached rootfs of these packages (the archive could not be reached)."""
    records = sorted(top.glob("*/rootfs.json"), key=lambda path: path.stat().st_mtime)
    for record in reversed(records):
        found = read_rootfs(record.parent)
        if found is not None and (found.arch, found.packages) == (arch, packages):
            _say(log, f"debian rootfs: the archive is out of reach; using {found.root} "
                      f"(snapshot {found.snapshot})")
            return found
    raise InfraError(f"the Debian archive is out of reach and no {arch} rootfs of "
                     f"{', '.join(packages)} is cached; check the machine's apt sources")


# -- the archive ----------------------------------------------------------------------------


def apt_sources(release: str, mirror: str | None = None,
                os_release: Path = OS_RELEASE) -> list[str]:
    """Sources lines for `release` and its -updates suite at `mirror`; without one, with
    the -security suite too, at the Debian sites this machine's apt uses (UserError on a
    machine that is not Debian, whose sites hold no Debian release, or that uses none)."""
    if mirror:
        return [f"deb {mirror} {release} main", f"deb {mirror} {release}-updates main"]
    distribution = host_distribution(os_release)
    if distribution != "debian":
        raise UserError(f"this machine is {distribution or 'not Debian'} ({os_release}): its "
                        f"apt sources are not Debian's archive; pass --lkft-debian-mirror URL, "
                        f"a Debian mirror (the one holding dists/{release}/)")
    try:
        listed = subprocess.run(["apt-get", "indextargets", "--format", "$(SITE) $(RELEASE)"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UserError("apt-get not found or failing: the Debian rootfs needs a Debian or "
                        "Ubuntu machine with apt") from None
    sites = [line.split() for line in listed.splitlines() if len(line.split()) == 2]
    archive = next((site for site, suite in sites if not suite.endswith("-security")), None)
    security = [site for site, suite in sites if suite.endswith("-security")]
    if archive is None:
        raise UserError("this machine's apt sources name no archive; add a Debian mirror to "
                        "/etc/apt/sources.list.d/ for the Debian rootfs")
    lines = [f"deb {archive} {release} main", f"deb {archive} {release}-updates main"]
    return lines + [f"deb {site} {release}-security main" for site in security[:1]]


def host_distribution(os_release: Path = OS_RELEASE) -> str:
    """The machine's distribution, `ID` of os-release (`debian`, `ubuntu`; "" unknown)."""
    return read_os_release(os_release).get("ID", "")


def archive_snapshot(sources: list[str], record: Path, log: Log | None = None) -> str:
    """The archive's state: each suite's InRelease `Date:`, looked up at most daily
    (recorded in `record`); "" when the archive cannot be reached."""
    try:
        known = json.loads(record.read_text())
        if known["sources"] == sources and time.time() - known["checked"] < SNAPSHOT_MAX_AGE:
            return str(known["snapshot"])
    except (OSError, ValueError, KeyError):
        pass
    dates = [_release_date(line, record.parent) for line in sources]
    if not all(dates):
        warnings.warn("the Debian archive could not be reached; using a cached rootfs",
                      stacklevel=2)
        return ""
    snapshot = ", ".join(dates)
    write_atomically(record, json.dumps({"sources": sources, "checked": time.time(),
                                         "snapshot": snapshot}))
    _say(log, f"debian rootfs: archive snapshot {snapshot}")
    return snapshot


def _release_date(source: str, scratch: Path) -> str:
    """`<suite> <Date>` of a sources line's InRelease, fetched by apt ("" if it fails)."""
    _, site, suite, _ = source.split()
    target = scratch / f".InRelease.{suite}"
    url = f"{site.rstrip('/')}/dists/{suite}/InRelease"
    try:
        subprocess.run([APT_HELPER, "download-file", url, str(target)], capture_output=True,
                       check=True, timeout=120)
        found = DATE.search(target.read_text(errors="replace"))
    except (OSError, subprocess.SubprocessError):
        return ""
    finally:
        target.unlink(missing_ok=True)
    return f"{suite} {found.group(1)}" if found else ""


# -- the build ------------------------------------------------------------------------------


def mmdebstrap_command(arch: str, packages: tuple[str, ...], target: Path,
                       sources: list[str], hook: str = "") -> list[str]:
    """mmdebstrap as we run it: extract variant, chrootless, recommends left out."""
    recipe = load_recipe()
    command = ["mmdebstrap", "--mode=chrootless", "--variant=extract", f"--architectures={arch}",
               f"--include={','.join(packages)}",
               "--aptopt=APT::Install-Recommends \"false\""]
    command += [f"--dpkgopt=path-exclude={path}" for path in recipe.exclude]
    if hook:
        command.append(f"--extract-hook={hook}")
    return [*command, recipe.release, str(target), *sources]


def _build(out: Path, arch: str, packages: tuple[str, ...], snapshot: str,
           sources: list[str], log: Log | None) -> Rootfs:
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    partial.mkdir()
    files = partial / "lkft-files.tar"
    files.write_bytes(files_tarball())
    hook = f"tar -C \"$1\" -xf {shlex.quote(str(files))}"
    command = ["fakeroot", "-s", str(partial / "fakeroot.state"), "--",
               *mmdebstrap_command(arch, packages, partial / "root", sources, hook)]
    _say(log, f"debian rootfs: building {arch} with {', '.join(packages)}")
    started = time.monotonic()
    run_logged(command, partial / "build.log", "mmdebstrap")
    files.unlink()
    record = {"arch": arch, "packages": list(packages), "snapshot": snapshot,
              "sources": sources, "command": shlex.join(command),
              "duration": round(time.monotonic() - started, 1)}
    write_atomically(partial / "rootfs.json", json.dumps(record, indent=1))
    partial.rename(out)
    found = read_rootfs(out)
    assert found is not None
    return found


def files_tarball() -> bytes:
    """Our files (FILES, LINKS) as a tarball owned by root, laid over the packages."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, (mode, text) in sorted(FILES.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.mode, info.size = mode, len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in sorted(LINKS.items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
        info = tarfile.TarInfo("root")
        info.type, info.mode = tarfile.DIRTYPE, stat.S_IMODE(0o700)
        tar.addfile(info)
    return out.getvalue()


def run_logged(command: list[str], log_file: Path, tool: str) -> None:
    """Run `command` with its output in `log_file` (command line first); a missing tool
    names its package, a failure its last line and the log."""
    with log_file.open("w") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        except FileNotFoundError as error:
            raise UserError(f"{Path(str(error.filename)).name} not found: the Debian rootfs "
                            f"needs `apt-get install {TOOLS}`") from None
    if done.returncode:
        text = log_file.read_text(errors="replace").splitlines()
        last = ([line for line in text if line.startswith("E:")] or text or ["no output"])[-1]
        if done.returncode == 127:  # fakeroot found, a command it ran not
            raise UserError(f"{last.strip()}: the Debian rootfs needs `apt-get install {TOOLS}`")
        raise InfraError(f"{tool} failed ({done.returncode}): {last}; see {log_file}")


def _say(log: Log | None, text: str) -> None:
    if log is not None:
        log(text)
