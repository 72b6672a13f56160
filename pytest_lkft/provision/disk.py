"""A root filesystem on a disk: for test sets larger than the guest's RAM (LTP: issue 14).

An initramfs lives in RAM, so all of LTP (1.7 GB static) cannot be one. Instead the
rootfs (the busybox base), its overlays and whole directory trees (an LTP install, the
kernel's modules and config) go into an ext4 image made without root by `mke2fs -d`,
attached as the device's drive in QEMU's snapshot mode. The loader initramfs (`loader`)
mounts it and switches to it; the disk's /init is the usual one. Images are cached by
what went into them.

The kernel's own modules and config come from its Debian package or a build's modules
tarball (`kernelmodules`), depmod'ed on the host, so the guest's modprobe finds them;
the config is /boot/config-<release>, where LTP's tst_kconfig looks.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.artifacts.entry import locked
from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.files import atomically, tree_size
from pytest_lkft.provision.rootfs import (
    Entry,
    unpack_cpio,
    write_cpio_file,
)


@dataclass(frozen=True)
class KernelFiles:
    """A kernel build's modules tarball and .config (either may be missing)."""

    modules: Path | None
    config: Path | None


@dataclass(frozen=True)
class Tree:
    """A host directory laid into the rootfs at `where`; `key` names its content."""

    path: Path
    where: str
    key: str


def lay_tree(tree: Tree, dest: Path) -> None:
    """Lay `tree` at `dest/<where>`, hard-linking its files (no copy of a large tree; a
    copy across filesystems). A file already there (an overlay's: a built kernel's modules
    come as both) is replaced: what is laid later wins."""
    target = dest / tree.where
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tree.path, target, symlinks=True, dirs_exist_ok=True,
                    copy_function=_link_or_copy)


def _link_or_copy(source: str, dest: str) -> None:
    if os.path.lexists(dest):
        os.unlink(dest)
    try:
        os.link(source, dest)
    except OSError:  # another filesystem
        shutil.copy2(source, dest)


def tree_overlay(tree: Tree, cache_root: Path) -> Path:
    """`tree` as an uncompressed cpio overlay at `/<where>`, made once per `tree.key` (for
    device kinds that boot one initramfs instead of a disk)."""
    key = hashlib.sha256(f"{tree.where}\0{tree.key}".encode()).hexdigest()[:32]
    path = cache_root / "overlays" / f"tree-{key}.cpio"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_cpio_file(path, _tree_entries(tree))
    return path


def _tree_entries(tree: Tree) -> Iterator[Entry]:
    """The files, directories and symlinks under `tree.path`, named under `tree.where`."""
    for root, dirs, files in os.walk(tree.path):
        for name in sorted(dirs) + sorted(files):
            path = Path(root, name)
            info = path.lstat()
            member = f"{tree.where}/{path.relative_to(tree.path)}".lstrip("/")
            if stat.S_ISLNK(info.st_mode):
                yield Entry(member, info.st_mode, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                yield Entry(member, info.st_mode)
            elif stat.S_ISREG(info.st_mode):
                yield Entry(member, info.st_mode, path.read_bytes())


def disk_key(parts: Sequence[Path], trees: Sequence[Tree]) -> str:
    """What a disk image is made of: its archives (content-named or by size and time)."""
    digest = hashlib.sha256()
    for part in parts:
        info = part.stat()
        digest.update(f"{part}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    for tree in trees:
        digest.update(f"{tree.where}\0{tree.key}\n".encode())
    return digest.hexdigest()[:32]


def rootfs_disk(parts: Sequence[Path], trees: Sequence[Tree], cache_root: Path) -> Path:
    """An ext4 image of the gzip'd cpio `parts` unpacked in order, then `trees` laid in."""
    image = cache_root / "disks" / f"{disk_key(parts, trees)}.ext4"
    if image.exists():
        return image
    staging = image.with_name(f".{image.stem}.{os.getpid()}.tree")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for part in parts:
            unpack_cpio(gzip.decompress(part.read_bytes()), staging)
        for tree in trees:
            lay_tree(tree, staging)
        with atomically(image) as partial:
            make_ext4(staging, partial)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return image


def make_ext4(tree: Path, image: Path) -> None:
    """`mke2fs -d`: an ext4 image of `tree`, a third larger than its files (room for tests)."""
    size_mb = tree_size(tree) * 4 // 3 // (1 << 20) + 64
    command = ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "lkft-root", "-E", "root_owner=0:0",
               "-d", str(tree), str(image), f"{size_mb}M"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        raise UserError("mke2fs not found: a disk rootfs needs `apt-get install "
                        "e2fsprogs`") from None
    if done.returncode != 0:
        raise InfraError(f"mke2fs failed ({done.returncode}): "
                         f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")


# -- trees made once ---------------------------------------------------------------------------


def made_once(out: Path, make: Callable[[Path], None]) -> Path:
    """`out/tree`, made by `make(tree)` the first time only; a lock makes concurrent
    processes (xdist workers, the pre-boot) make it once."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out.with_name(out.name + ".lock"), fcntl.LOCK_EX):
        if not (out / "done").exists():
            shutil.rmtree(out, ignore_errors=True)
            (out / "tree").mkdir(parents=True)
            make(out / "tree")
            (out / "done").write_text("")
    return out / "tree"
