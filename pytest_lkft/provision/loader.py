"""The loader: a small busybox initramfs that boots a root disk (data/loader.yaml).

A kernel that reaches its disk only through modules (Debian's: virtio_blk and ext4 are
modules) cannot mount an ext4 root by itself. The loader carries busybox, the kernel's
modules for the disk (from its tree, with their dependencies, in the order to load them)
and an /init that loads them, mounts the disk named by `lkft.root=` or `root=`, and
switches to it. One loader boots both the LTP disk (`disk`) and the Debian rootfs's
ext4 image (`debiandevice`).
"""

from __future__ import annotations

import gzip
import hashlib
import stat
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from pytest_lkft.provision.kernelmodules import KernelTree, module_closure
from pytest_lkft.provision.rootfs import Entry, cached_overlay, write_cpio

MODULE_LIST = "lkft/loader-modules"  # the .ko files to load, one a line, dependencies first


@cache
def loader_data() -> dict[str, Any]:
    """data/loader.yaml: the modules the loader loads and its /init."""
    text = files("pytest_lkft").joinpath("data", "loader.yaml").read_text()
    return dict(yaml.safe_load(text))


def loader_initramfs(busybox: Path, tree: KernelTree | None, cache_root: Path) -> Path:
    """The loader for a kernel with the modules of `tree` (None: the kernel has its disk's
    drivers built in), gzip'd cpio, cached by what goes in (the modules it carries follow
    from the tree and the module list, so they are worked out only when it is made)."""
    data = loader_data()
    init, wanted = str(data["init"]), [str(name) for name in data["modules"]]
    key = hashlib.sha256("\0".join([str(busybox), tree.key if tree else "-", init, *wanted])
                         .encode()).hexdigest()[:24]

    def make() -> bytes:
        modules = module_closure(tree, wanted) if tree is not None else []
        names = [str(path.relative_to(tree.path)) for path in modules] if tree else []
        entries = [Entry("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()),
                   Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
                   Entry("init", stat.S_IFREG | 0o755, init.encode()),
                   Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
                   Entry(MODULE_LIST, stat.S_IFREG | 0o644,
                         "".join(f"{name}\n" for name in names).encode())]
        entries += [Entry(name, stat.S_IFREG | 0o644, path.read_bytes())
                    for name, path in zip(names, modules, strict=True)]
        return gzip.compress(write_cpio(entries), mtime=0)

    return cached_overlay(cache_root, f"loader-{key}", make)
