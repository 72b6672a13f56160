"""Root filesystem images without root: an ext4 disk (`mke2fs -d`) or a cpio archive of a tree.

An ext4 image is assembled in a staging directory: the rootfs tree hard-linked (no copy),
whole trees laid over it (the kernel's modules and config) and cpio overlays unpacked
into it (kselftest, LTP, test programs). `mke2fs -d` then writes the image, in a
fakeroot session that loads the rootfs's state: every file is root's and device nodes
are device nodes, whoever runs it. Images are cached by what went into them and
attached in QEMU's snapshot mode, so they are never changed.

A kernel that mounts the disk only with modules (Debian's: virtio_blk is a module) boots
it through the loader (`loader`).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pytest_lkft.files import atomically, tree_size
from pytest_lkft.provision.debian import Rootfs, run_logged
from pytest_lkft.provision.kernelmodules import KernelTree, module_closure, module_indexes
from pytest_lkft.provision.rootfs import (
    Entry,
    unpack_cpio,
    write_cpio_file,
)

HEADROOM = 256 << 20  # free space on an ext4 image, for what tests write


@dataclass(frozen=True)
class Layers:
    """What goes over a rootfs tree: whole trees (laid at /) and cpio.gz overlays."""

    trees: tuple[KernelTree, ...] = ()
    overlays: tuple[Path, ...] = ()

    def key(self) -> str:
        parts = [tree.key for tree in self.trees]
        parts += [f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
                  for path in self.overlays]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def ext4_image(rootfs: Rootfs, layers: Layers, cache_root: Path) -> Path:
    """The ext4 image of `rootfs` with `layers` over it, made once (without root)."""
    key = hashlib.sha256(f"{rootfs.key}\0{layers.key()}".encode()).hexdigest()[:24]
    image = cache_root / "debian-rootfs" / "images" / f"{key}.ext4"
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker per image: processes, threads
        if not image.exists():
            _assemble(rootfs, layers, image)
    return image


def _assemble(rootfs: Rootfs, layers: Layers, image: Path) -> None:
    if not layers.trees and not layers.overlays:  # the tree as built: no staged copy
        with atomically(image) as partial:
            make_ext4(rootfs.root, partial, rootfs.state, log=log_of(image))
        return
    stage = image.with_name(f".{image.stem}.stage")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        hard_link_tree(rootfs.root, stage)
        laid = [path for tree in layers.trees for path in lay_tree(tree.path, stage)]
        for overlay in layers.overlays:
            laid += unpack_cpio(gzip.decompress(overlay.read_bytes()), stage)
        with atomically(image) as partial:
            make_ext4(stage, partial, rootfs.state, sorted(set(laid)), log_of(image))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def hard_link_tree(source: Path, dest: Path) -> None:
    """`dest` made a copy of `source` whose files are hard links (`cp -al`)."""
    done = subprocess.run(["cp", "-al", str(source), str(dest)], capture_output=True,
                          text=True, check=False)
    if done.returncode:  # another filesystem, or no hard links: copy
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest, symlinks=True)


def lay_tree(source: Path, dest: Path) -> list[str]:
    """Lay `source` over `dest` (files hard-linked, replacing what is there); the top-level
    names it laid."""
    names = sorted(p.name for p in source.iterdir() if not p.name.startswith("."))
    for name in names:
        subprocess.run(["cp", "-al", "--remove-destination", str(source / name), str(dest)],
                       capture_output=True, check=True)
    return names


def log_of(image: Path) -> Path:
    """Where the command that made `image` logs (beside it, not beside its partial file)."""
    return image.with_name(image.name + ".log")


def make_ext4(tree: Path, image: Path, state: Path, laid: Sequence[str] = (),
              log: Path | None = None) -> None:
    """`mke2fs -d`: an ext4 image of `tree` with HEADROOM free, as root in the fakeroot
    session of `state`; the `laid` top-level names (added outside it) are made root's; the
    command's output in `log` (default: beside `image`)."""
    size = (tree_size(tree) * 6 // 5 + HEADROOM) >> 20
    chown = shlex.join(["chown", "-hR", "0:0", "--", *laid]) if laid else "true"
    script = (f"cd {shlex.quote(str(tree))} && chown 0:0 . && {chown} && "
              f"exec mke2fs -q -F -t ext4 -L lkft-root -d . {shlex.quote(str(image))} "
              f"{size}M")
    run_logged(["fakeroot", "-i", str(state), "--", "sh", "-c", script],
               log or log_of(image), "mke2fs")


def cpio_image(rootfs: Rootfs, tree: KernelTree | None, modules: Sequence[str],
               cache_root: Path) -> Path:
    """The rootfs as one uncompressed cpio archive (uncompressed: gzip would take longer
    than the kernel takes to read it), with `modules` of `tree` and their dependencies,
    its module indexes and its config. Cached."""
    files: list[Path] = []
    if tree is not None:
        files = [*module_closure(tree, modules), *module_indexes(tree)]
        files += [tree.config] if tree.config else []
    parts = [rootfs.key, tree.key if tree else "-", *map(str, files)]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    archive = cache_root / "debian-rootfs" / "images" / f"{key}.cpio"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        base = tree.path if tree else rootfs.root
        write_cpio_file(archive, [*tree_entries(rootfs.root),
                                  *(file_entry(path, path.relative_to(base)) for path in files)])
    return archive


def tree_entries(root: Path) -> Iterator[Entry]:
    """Every directory, file and link under `root` as archive entries owned by root; /dev
    holds only the console (the guest's devtmpfs makes the rest)."""
    yield Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    for top, dirs, names in os.walk(root):
        dirs.sort()
        relative = Path(top).relative_to(root)
        if relative.parts[:1] == ("dev",):
            continue
        for name in [*dirs, *sorted(names)]:
            yield file_entry(Path(top, name), relative / name)


def file_entry(path: Path, name: PurePosixPath | Path) -> Entry:
    """One file, directory or link at `path`, named `name` in the archive."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return Entry(str(name), stat.S_IFLNK | 0o777, os.readlink(path).encode())
    if stat.S_ISDIR(info.st_mode):
        return Entry(str(name), stat.S_IFDIR | stat.S_IMODE(info.st_mode))
    return Entry(str(name), stat.S_IFREG | stat.S_IMODE(info.st_mode), path.read_bytes())
