"""Root filesystems: the generated busybox initramfs and what is laid over a rootfs.

Initramfs archives are written here in the kernel's `newc` cpio format, in Python, with
fixed owners and times so the same inputs give the same bytes (and the same cache key).
The kernel unpacks concatenated archives in order, so modules or a kselftest install are
an extra archive appended to the rootfs, never written to the host's disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pytest_lkft.errors import UserError
from pytest_lkft.files import atomically, write_atomically

# /init of the generated rootfs. devtmpfs has no /dev/fd or /dev/stdout (kselftest's
# runner writes to /dev/stdout), so they are linked to /proc/self/fd (FACTS.md).
INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
[ -d /lib/modules ] && [ ! -e "/lib/modules/$(uname -r)/modules.dep" ] && depmod -a 2>/dev/null
hostname lkft
ip link set lo up 2>/dev/null
[ -d /lib/modules ] && modprobe loop 2>/dev/null
echo "lkft: init done"
while true; do setsid cttyhack sh -l; done
"""

PROFILE = "export PS1='\\w # '\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n"
# newc: magic, inode, mode, uid, gid, nlink, mtime, file size, the device the file is on
# (major, minor: none), the device a node is (major, minor), name size, checksum (none)
NEWC_HEADER = ("070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{size:08X}"
               "0000000000000000{maj:08X}{min:08X}{namesize:08X}00000000")
# Changes with /init, the profile and the archive format, so cached initramfs files are
# rebuilt when they change.
ROOTFS_VERSION = hashlib.sha256((INIT_SCRIPT + PROFILE + NEWC_HEADER).encode()
                                ).hexdigest()[:12]


@dataclass(frozen=True)
class Entry:
    """One file, directory, symlink or device node of an archive."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _newc_record(ino: int, entry: Entry) -> bytes:
    name = entry.name.encode() + b"\0"
    header = NEWC_HEADER.format(
        ino=ino, mode=entry.mode, uid=0, gid=0, nlink=2 if stat.S_ISDIR(entry.mode) else 1,
        mtime=0, size=len(entry.data), maj=entry.rdev[0], min=entry.rdev[1],
        namesize=len(name),
    ).encode()
    record = header + name
    record += _pad(len(record)) + entry.data
    return record + _pad(len(entry.data))


def write_cpio(entries: Iterable[Entry]) -> bytes:
    """Pack `entries` into a `newc` cpio archive, parents before children, trailer last."""
    out = io.BytesIO()
    for ino, entry in enumerate(_with_parents(entries), start=1):
        out.write(_newc_record(ino, entry))
    out.write(_newc_record(0, Entry("TRAILER!!!", 0)))
    return out.getvalue()


def write_cpio_file(path: Path, entries: Iterable[Entry]) -> Path:
    """`write_cpio` streamed to `path` (atomically), for archives too large to hold."""
    with atomically(path) as partial, partial.open("wb") as out:
        for ino, entry in enumerate(_with_parents(entries), start=1):
            out.write(_newc_record(ino, entry))
        out.write(_newc_record(0, Entry("TRAILER!!!", 0)))
    return path


def newc_members(data: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(name, mode, data) of each member of a `newc` archive, up to its trailer."""
    offset = 0
    while offset + 110 <= len(data):
        header = data[offset:offset + 110]
        mode, size = int(header[14:22], 16), int(header[54:62], 16)
        name_end = offset + 110 + int(header[94:102], 16)
        name = data[offset + 110:name_end - 1].decode()
        start = name_end + (-name_end % 4)
        offset = start + size + (-(start + size) % 4)
        if name == "TRAILER!!!":
            return
        yield name, mode, data[start:start + size]


def unpack_cpio(data: bytes, dest: Path) -> list[str]:
    """Write a `newc` archive's files, directories and links under `dest`, each new file a
    new inode (a hard-linked file already there is replaced, never written through);
    device nodes are left out (the guest's devtmpfs makes them). The top-level names."""
    tops: set[str] = set()
    for name, mode, body in newc_members(data):
        parts = [p for p in PurePosixPath(name).parts if p not in (".", "..", "/")]
        if not parts:
            continue
        tops.add(parts[0])
        target = dest.joinpath(*parts)
        if stat.S_ISDIR(mode):
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(stat.S_IMODE(mode))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if stat.S_ISLNK(mode):
            target.symlink_to(body.decode())
        elif stat.S_ISREG(mode):
            target.write_bytes(body)
            target.chmod(stat.S_IMODE(mode))
    return sorted(tops)


def _with_parents(entries: Iterable[Entry]) -> Iterator[Entry]:
    seen: set[str] = set()
    for entry in entries:
        for parent in reversed(PurePosixPath(entry.name).parents[:-1]):
            if str(parent) not in seen:
                seen.add(str(parent))
                yield Entry(str(parent), stat.S_IFDIR | 0o755)
        if entry.name not in seen:
            seen.add(entry.name)
            yield entry


def busybox_initramfs(busybox: Path) -> bytes:
    """A gzip'd initramfs: static busybox, /init giving a shell on the console, /dev/console."""
    entries = [
        Entry("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()),
        Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        Entry("init", stat.S_IFREG | 0o755, INIT_SCRIPT.encode()),
        Entry("etc/profile", stat.S_IFREG | 0o644, PROFILE.encode()),
        Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        Entry("root", stat.S_IFDIR | 0o700),
    ]
    return gzip.compress(write_cpio(entries), mtime=0)


def _refuse(tarball: Path, member: str, why: str) -> UserError:
    return UserError(
        f"{tarball}: member {member!r} {why}; nothing was written: "
        "rebuild the tarball with relative paths inside the rootfs"
    )


def _safe_name(tarball: Path, member: tarfile.TarInfo, prefix: str, strip: str = "") -> str:
    path = PurePosixPath(member.name)
    if path.is_absolute():
        raise _refuse(tarball, member.name, "is an absolute path")
    if ".." in path.parts:
        raise _refuse(tarball, member.name, "climbs out of the rootfs with '..'")
    parts = [p for p in path.parts if p != "."]
    if strip and parts[:1] == [strip]:
        parts = parts[1:]
    return str(PurePosixPath(prefix, *parts))


def _check_link(tarball: Path, member: tarfile.TarInfo, name: str) -> None:
    target = PurePosixPath(member.linkname)
    if member.issym():
        resolved = PurePosixPath(name).parent / target
    else:  # hard links are relative to the archive root
        resolved = target
    depth = 0
    for part in resolved.parts:
        if part == "..":
            depth -= 1
        elif part != ".":
            depth += 1
        if depth < 0:
            break
    if target.is_absolute() or depth < 0:
        raise _refuse(tarball, member.name, f"links out of the rootfs (to {member.linkname!r})")


def check_members(tarball: Path, members: Iterable[tarfile.TarInfo], strip: str = "") -> None:
    """Refuse, as tarball_overlay would, a member that escapes the tree the tarball holds
    (below its leading directory `strip`): absolute, `..`, links out, special files."""
    for member in members:
        name = _safe_name(tarball, member, "", strip)
        if member.issym() or member.islnk():
            _check_link(tarball, member, name)
        elif not (member.isdir() or member.isfile()):
            raise _refuse(tarball, member.name, "is a device, fifo or other special file")


def _tar_entry(tar: tarfile.TarFile, tarball: Path, member: tarfile.TarInfo, prefix: str,
               strip: str = "") -> Entry:
    name = _safe_name(tarball, member, prefix, strip)
    perm = member.mode & 0o7777
    if member.isdir():
        return Entry(name, stat.S_IFDIR | perm)
    if member.issym() or member.islnk():
        _check_link(tarball, member, name)
    if member.issym():
        return Entry(name, stat.S_IFLNK | 0o777, member.linkname.encode())
    if member.islnk():
        source = tar.extractfile(member)
        return Entry(name, stat.S_IFREG | perm, source.read() if source else b"")
    if member.isfile():
        source = tar.extractfile(member)
        return Entry(name, stat.S_IFREG | perm, source.read() if source else b"")
    raise _refuse(tarball, member.name, "is a device, fifo or other special file")


def tarball_overlay(tarball: Path, prefix: str = "", strip: str = "") -> bytes:
    """A gzip'd cpio of `tarball`'s members under `prefix`, refusing any member that escapes.

    A leading directory `strip` is dropped from the members' names (`kselftest/x` -> `x`).
    Every member is checked before anything is produced: absolute paths, `..` and links
    pointing outside the rootfs name the offending member in the error.
    """
    try:
        with tarfile.open(tarball) as tar:
            entries = [_tar_entry(tar, tarball, m, prefix, strip) for m in tar.getmembers()]
    except (tarfile.TarError, OSError, EOFError) as error:
        why = str(error).splitlines()[0].rstrip(":")
        raise UserError(f"{tarball} is not a readable tarball ({why}); pass a .tar, "
                        ".tar.gz or .tar.xz file") from None
    return gzip.compress(write_cpio(entries), mtime=0)


def module_names(tarball: Path) -> list[str]:
    """The kernel module names (`foo` for `.../foo.ko[.xz|.gz|.zst]`) a modules tarball holds."""
    names: set[str] = set()
    try:
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                base = PurePosixPath(member.name).name
                if member.isfile() and ".ko" in base:
                    names.add(base.split(".ko")[0])
    except (tarfile.TarError, OSError, EOFError) as error:
        why = str(error).splitlines()[0].rstrip(":")
        raise UserError(f"{tarball} is not a readable tarball ({why}); pass a .tar, "
                        ".tar.gz or .tar.xz file") from None
    return sorted(names)


COMPRESSIONS = {b"\x1f\x8b": "gzip", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def compression(path: Path) -> str | None:
    """gzip, xz, zstd or None, from the file's magic bytes."""
    with path.open("rb") as f:
        head = f.read(6)
    return next((name for magic, name in COMPRESSIONS.items() if head.startswith(magic)), None)


def _decompressed_head(path: Path, size: int = 2048) -> bytes:
    import lzma
    import subprocess

    kind = compression(path)
    if kind == "gzip":
        with gzip.open(path) as f:
            return f.read(size)
    if kind == "xz":
        with lzma.open(path) as f:
            return f.read(size)
    if kind == "zstd":
        try:
            done = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=False)
        except OSError:
            raise UserError(f"{path} is zstd-compressed but zstd is not installed; "
                            "apt-get install zstd") from None
        return done.stdout[:size]
    with path.open("rb") as f:
        return f.read(size)


def rootfs_kind(path: Path) -> str:
    """`cpio` or `ext4`, from the (decompressed) content; UserError for anything else."""
    head = _decompressed_head(path)
    if head[:6] in (b"070701", b"070702"):
        return "cpio"
    if len(head) >= 1082 and head[1080:1082] == b"\x53\xef":
        return "ext4"
    raise UserError(f"{path} is neither a cpio archive nor an ext4 image (optionally .gz, .xz "
                    "or .zst); pass a rootfs of either kind")


def decompress_to(path: Path, dest: Path) -> Path:
    """`path` decompressed into `dest`, afresh (ext4 images must be raw for QEMU); `path` if raw."""
    import lzma
    import shutil
    import subprocess

    kind = compression(path)
    if kind is None:
        return path
    with atomically(dest) as partial:
        if kind == "zstd":
            try:
                subprocess.run(["zstd", "-dqf", str(path), "-o", str(partial)], check=True)
            except (OSError, subprocess.CalledProcessError) as error:
                raise UserError(f"cannot decompress {path} with zstd ({error}); install zstd "
                                "(apt-get install zstd) or pass an uncompressed image") from None
        else:
            opener = gzip.open if kind == "gzip" else lzma.open
            with opener(path) as src, partial.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest


def cached_overlay(cache_root: Path, key: str, make: Callable[[], bytes]) -> Path:
    """`<cache_root>/overlays/<key>.cpio.gz`, written by `make()` the first time only (it
    may raise, e.g. on a bad tarball member, before anything is written)."""
    path = cache_root / "overlays" / f"{key}.cpio.gz"
    if not path.exists():
        data = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
    return path


def stored_overlay(data: bytes, cache_root: Path) -> Path:
    """`data` under the cache's overlays/, named by its content."""
    return cached_overlay(cache_root, hashlib.sha256(data).hexdigest()[:32], lambda: data)


def tarball_overlay_file(tarball: Path, cache_root: Path, prefix: str = "") -> Path:
    """`tarball` as a gzip'd cpio overlay under `prefix`, cached by the tarball's content."""
    from pytest_lkft.artifacts.entry import hash_file

    key = hash_file(tarball)
    if prefix:
        key = hashlib.sha256(f"{key}:{prefix}".encode()).hexdigest()
    return cached_overlay(cache_root, key[:32], lambda: tarball_overlay(tarball, prefix))
