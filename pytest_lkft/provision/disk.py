"""A root filesystem on a disk: for test sets larger than the guest's RAM (LTP: issue 14).

An initramfs lives in RAM, so all of LTP (1.7 GB static) cannot be one. Instead the
rootfs (the busybox base), its overlays and whole directory trees (an LTP install, the
kernel's modules) go into an ext4 image made without root by `mke2fs -d`, attached as
the device's drive in QEMU's snapshot mode. A small loader initramfs (busybox, the
kernel's virtio block modules) mounts it and switches to it; the disk's /init is the
usual one. Images are cached by what went into them.

The kernel's own modules and config (`kernel_tree`) come from its Debian package or a
build's modules tarball; `depmod` runs on the host, so the guest's modprobe finds them.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pytest_lkft.artifacts.entry import locked
from pytest_lkft.errors import InfraError, UserError
from pytest_lkft.files import atomically, tree_size
from pytest_lkft.provision.rootfs import (
    Entry,
    cached_overlay,
    unpack_cpio,
    write_cpio,
    write_cpio_file,
)

# Modules the loader loads to reach the disk (those built in are simply not found).
BLOCK_MODULES = ("virtio_mmio", "virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod",
                 "ata_piix", "crc32c_generic", "ext4")
KERNEL_CONFIG = "lkft/kernel-config"  # the runner points LTP's KCONFIG_PATH at it
LOADER_INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in {modules}; do modprobe "$module" 2>/dev/null; done
root=$(sed -n 's/.*lkft\\.root=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
tries=0
while [ ! -b "$root" ] && [ "$tries" -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done
if ! mount -t ext4 "$root" /newroot; then
    echo "lkft: cannot mount the root disk $root; a shell on the loader"
    exec sh
fi
umount /dev /sys /proc
exec switch_root /newroot /init
"""


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


# -- the kernel's modules and config ------------------------------------------------------------


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


def kernel_tree_from_deb(deb: Path, cache_root: Path) -> Tree:
    """lib/modules/<release> (depmod'ed here) and the config of a Debian kernel package."""
    key = hashlib.sha256(f"{deb}\0{deb.stat().st_size}".encode()).hexdigest()[:32]

    def make(tree: Path) -> None:
        _run(["dpkg-deb", "-x", str(deb), str(tree)], "dpkg-deb", "dpkg")
        _finish_kernel_tree(tree)

    return Tree(made_once(cache_root / "kernel-trees" / key, make), "", f"deb:{key}")


def kernel_tree_from_build(modules: Path | None, config: Path | None, cache_root: Path) -> Tree:
    """A build's modules tarball (lib/modules/<release>) and .config, laid out as Debian's."""
    key = hashlib.sha256("\0".join(_identity(path) for path in (modules, config))
                         .encode()).hexdigest()[:32]

    def make(tree: Path) -> None:
        if modules is not None:
            with tarfile.open(modules) as tar:
                tar.extractall(tree, filter="data")
        if config is not None:
            (tree / "boot").mkdir()
            shutil.copyfile(config, tree / "boot" / f"config-{_release(tree)}")
        _finish_kernel_tree(tree)

    return Tree(made_once(cache_root / "kernel-trees" / key, make), "", f"build:{key}")


def _identity(path: Path | None) -> str:
    """A file by path, size and time (a rebuild in place is another tree), or "none"."""
    if path is None:
        return "none"
    info = path.stat()
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"


def _release(tree: Path) -> str:
    """The kernel release of a tree's lib/modules/<release>, "unknown" without one."""
    found = sorted((tree / "lib" / "modules").glob("*"))
    if not found:
        return "unknown"
    return found[0].name


def _finish_kernel_tree(tree: Path) -> None:
    """Keep only the modules and the config; depmod; the config also at KERNEL_CONFIG."""
    for entry in tree.iterdir():
        if entry.name not in ("lib", "boot"):
            shutil.rmtree(entry, ignore_errors=True)
    release = _release(tree)
    if (tree / "lib" / "modules" / release).is_dir():
        _run(["depmod", "-b", str(tree), release], "depmod", "kmod")
    configs = sorted((tree / "boot").glob("config-*"))
    for entry in (tree / "boot").glob("*"):
        if entry not in configs:
            entry.unlink()
    if configs:
        (tree / KERNEL_CONFIG).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(configs[0], tree / KERNEL_CONFIG)


def _run(command: list[str], tool: str, package: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        raise UserError(f"{tool} not found: laying the kernel's modules into the rootfs needs "
                        f"`apt-get install {package}`") from None
    if done.returncode != 0:
        raise InfraError(f"{' '.join(command[:2])} failed: "
                         f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")


def loader_initramfs(busybox: Path, kernel: Tree | None, cache_root: Path) -> Path:
    """The initramfs that mounts the root disk (`lkft.root=` on the command line): busybox,
    the kernel's block and virtio modules with their dependencies (none when the kernel's
    modules are unknown: it must have them built in), and LOADER_INIT."""
    init = LOADER_INIT.format(modules=" ".join(BLOCK_MODULES))
    tree = kernel.key if kernel else "none"
    key = hashlib.sha256(f"{busybox}\0{tree}\0{init}".encode()).hexdigest()[:32]
    return cached_overlay(cache_root, f"loader-{key}", lambda: _loader(busybox, kernel, init))


def _loader(busybox: Path, tree: Tree | None, init: str) -> bytes:
    entries = [Entry("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()),
               Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
               Entry("init", stat.S_IFREG | 0o755, init.encode()),
               Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))]
    if tree is None:
        return gzip.compress(write_cpio(entries), mtime=0)
    kernel = tree.path
    release = _release(kernel)
    modules = kernel / "lib" / "modules" / release
    for path in _block_modules(kernel, release):
        entries.append(Entry(str(path.relative_to(kernel)), stat.S_IFREG | 0o644,
                             path.read_bytes()))
    for name in ("modules.dep", "modules.alias", "modules.symbols", "modules.builtin"):
        if (modules / name).is_file():
            entries.append(Entry(f"lib/modules/{release}/{name}", stat.S_IFREG | 0o644,
                                 (modules / name).read_bytes()))
    return gzip.compress(write_cpio(entries), mtime=0)


def _block_modules(kernel: Path, release: str) -> list[Path]:
    """The .ko files of BLOCK_MODULES and what they depend on (modules.dep)."""
    modules = kernel / "lib" / "modules" / release
    depends: dict[str, list[str]] = {}
    try:
        lines = (modules / "modules.dep").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        name, _, needs = line.partition(":")
        depends[name] = needs.split()
    wanted: set[str] = set()
    for name in depends:
        if PurePosixPath(name).name.split(".ko")[0].replace("-", "_") in BLOCK_MODULES:
            wanted.update([name, *depends[name]])
    return [modules / name for name in sorted(wanted) if (modules / name).is_file()]
