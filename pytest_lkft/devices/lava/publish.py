"""Artifacts reach a LAVA lab by URL: local files are published (`artifacts.publish`),
URLs go as they are, through the KissCache prefix when one is set (`--lkft-cache-url`), as
LKFT's labs fetch them.

The initramfs a QEMU run boots is the rootfs with overlays appended (modules, kselftest,
LTP): concatenated cpio archives, which the kernel unpacks in turn. LAVA unpacks only the
first archive of a ramdisk to add its test shell, so for LAVA the archives are merged
into one (`merge_cpio`): same entries, same order, later ones winning, as the kernel
unpacks them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from pytest_lkft.artifacts.publish import Publisher, lab_url, published_file
from pytest_lkft.errors import UserError
from pytest_lkft.files import partial_path
from pytest_lkft.provision.rootfs import compression, decompress_to

INITRD_DIR = "lava-initrd"
HEADER = 110  # a newc header's length
TRAILER = b"TRAILER!!!"
CHUNK = 1 << 20
LAVA_COMPRESSION = {"gzip": "gz", "xz": "xz", None: None}
TAR_TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
             stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
             stat.S_IFIFO: tarfile.FIFOTYPE}


class Sink(Protocol):
    """Where merged archive bytes go (a file, a gzip stream)."""

    def write(self, data: bytes, /) -> object: ...


def initramfs(rootfs: Path, overlays: Sequence[Path], cache_root: Path) -> tuple[Path, str | None]:
    """The initramfs LAVA deploys and its compression (LAVA's word): the rootfs as it is
    when nothing is appended, else one merged archive (cached by what went in)."""
    kind = compression(rootfs)
    if not overlays and kind in LAVA_COMPRESSION:
        return rootfs, LAVA_COMPRESSION[kind]
    parts = [rootfs, *overlays]
    merged = cache_root / INITRD_DIR / f"initrd-{_key(parts)}.cpio.gz"
    if not merged.exists():
        merged.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(merged)
        with gzip.open(partial, "wb", compresslevel=1) as out:
            merge_cpio([_raw(p, merged.parent) for p in parts], out)
        os.replace(partial, merged)
    return merged, "gz"


def nfs_rootfs(rootfs: Path, overlays: Sequence[Path], cache_root: Path) -> Path:
    """The root file system `initramfs` would give, as a gzip'd tarball for LAVA's
    `nfsrootfs` (a board booting its root over NFS): the archives merged as there, then
    written as tar; cached by what went in."""
    parts = [rootfs, *overlays]
    tarball = cache_root / INITRD_DIR / f"nfsrootfs-{_key(parts)}.tar.gz"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        merged = tarball.parent / f".{tarball.name}.{os.getpid()}.cpio"
        partial = partial_path(tarball)
        try:
            with merged.open("wb") as out:
                merge_cpio([_raw(p, tarball.parent) for p in parts], out)
            with merged.open("rb") as stream, tarfile.open(partial, "w:gz", compresslevel=1,
                                                           format=tarfile.GNU_FORMAT) as tar:
                cpio_to_tar(stream, merged, tar)
        finally:
            merged.unlink(missing_ok=True)
        os.replace(partial, tarball)
    return tarball


def _key(parts: Sequence[Path]) -> str:
    """What a merged archive is made of: its parts by path, size and time."""
    return hashlib.sha256("\0".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                                    for p in parts).encode()).hexdigest()[:32]


def cpio_to_tar(stream: BinaryIO, archive: Path, tar: tarfile.TarFile) -> None:
    """Write the entries of the newc archive `stream` (named `archive` in errors) into
    `tar`: the same names, modes, owners, times, links and device nodes. A hard link's
    other names (newc gives the data with the last of them) become tar hard links."""
    pending: dict[bytes, list[tarfile.TarInfo]] = {}  # an inode's names still without data
    for header, name, size in _records(stream, archive):
        info = _tar_info(header, name.rstrip(b"\0").decode("utf-8", "surrogateescape"), size)
        ino, links = header[6:14], int(header[38:46], 16)
        if info.isreg() and links > 1 and size == 0:
            pending.setdefault(ino, []).append(info)
            continue
        if info.isreg():
            tar.addfile(info, _Exact(stream, size))
        else:  # a symbolic link's data is its target; other kinds have none
            data = stream.read(size)
            info.linkname = data.decode("utf-8", "surrogateescape") if info.issym() else ""
            tar.addfile(info)
        stream.read(len(_pad(size)))
        for other in pending.pop(ino, []) if info.isreg() else []:
            other.type, other.linkname = tarfile.LNKTYPE, info.name
            tar.addfile(other)
    for names in pending.values():  # no data came: empty files
        for info in names:
            tar.addfile(info, io.BytesIO())


def _tar_info(header: bytes, name: str, size: int) -> tarfile.TarInfo:
    """A tar member for one newc header (its name without a leading ./ or /)."""
    # ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor
    field = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(11)]
    mode = field[1]
    info = tarfile.TarInfo(name.removeprefix("./").lstrip("/") or ".")
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(mode), field[2], field[3], field[5]
    info.size = size if stat.S_ISREG(mode) else 0
    info.type = TAR_TYPES.get(stat.S_IFMT(mode), tarfile.REGTYPE)
    info.devmajor, info.devminor = field[9], field[10]
    return info


class _Exact:
    """`size` bytes of a stream, as tarfile reads a member's data (or a UserError)."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, size: int = -1) -> bytes:
        want = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(want)
        if len(data) < want:
            raise UserError("a cpio archive ends inside a file; pass a complete archive")
        self.left -= len(data)
        return data


def _raw(path: Path, scratch: Path) -> Path:
    """`path` uncompressed (a temporary copy when it is compressed)."""
    return decompress_to(path, scratch / f".{path.name}.{os.getpid()}.raw")


def merge_cpio(archives: Sequence[Path], out: Sink) -> None:
    """Write the entries of `archives` (newc, each possibly several concatenated) as one.

    Inode numbers are shifted per archive, so hard links of one archive never join
    files of another; one trailer ends the result. Temporary uncompressed copies made
    for the merge are removed.
    """
    offset = 0
    try:
        for archive in archives:
            highest = 0
            with archive.open("rb") as stream:
                for header, name, size in _records(stream, archive):
                    ino = int(header[6:14], 16)
                    highest = max(highest, ino)
                    fixed = header[:6] + b"%08X" % (ino + offset) + header[14:]
                    out.write(fixed + name + _pad(HEADER + len(name)))
                    _copy(stream, out, size)
                    stream.read(len(_pad(size)))
                    out.write(_pad(size))
            offset += highest + 1
        trailer = (b"070701" + b"0" * 8 * 11 + b"%08X" % (len(TRAILER) + 1) + b"0" * 8
                   + TRAILER + b"\0")
        out.write(trailer + _pad(len(trailer)))
    finally:
        for archive in archives:
            if archive.name.endswith(f".{os.getpid()}.raw"):
                archive.unlink(missing_ok=True)


def _records(stream: BinaryIO, archive: Path) -> Iterator[tuple[bytes, bytes, int]]:
    """(header, name with its NUL, data size) of every entry but the trailers."""
    while True:
        header = _next_header(stream)
        if header is None:
            return
        if header[:6] not in (b"070701", b"070702"):
            raise UserError(f"{archive} is not a newc cpio archive (at byte "
                            f"{stream.tell() - HEADER}); pass a cpio initramfs")
        namesize, size = int(header[94:102], 16), int(header[54:62], 16)
        name = stream.read(namesize)
        stream.read(len(_pad(HEADER + namesize)))
        if name.rstrip(b"\0") == TRAILER:
            stream.read(len(_pad(size)) + size)
            continue
        yield header, name, size


def _next_header(stream: BinaryIO) -> bytes | None:
    """The next header, past the NUL padding between concatenated archives; None at end."""
    while True:
        first = stream.read(4)
        if not first:
            return None
        if first != b"\0\0\0\0":
            return first + stream.read(HEADER - 4)


def _copy(stream: BinaryIO, out: Sink, size: int) -> None:
    left = size
    while left:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise UserError("a cpio archive ends inside a file; pass a complete archive")
        out.write(chunk)
        left -= len(chunk)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


__all__ = ["Publisher", "initramfs", "lab_url", "nfs_rootfs", "published_file"]
