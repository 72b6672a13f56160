"""What a device boots with `--lkft-rootfs=debian`: the rootfs of the run's suites, on disk.

The rootfs holds the packages of every suite the run selects (`suite-needs.yaml`). With
Debian's kernel, the flavour is the first of the device's flavours whose config has what
those suites need (cloud-arm64 has no vivid: the full arm64 flavour does), and its
modules and config go into the rootfs. As ext4 (the default) the stages' overlays are
laid into the image and the loader initramfs mounts it; as cpio the suites' modules
and their dependencies go into the archive, and the overlays are appended as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.provision.debian import Rootfs, build_rootfs
from pytest_lkft.provision.defaults import DefaultArtifacts, default_artifacts
from pytest_lkft.provision.images import Layers, cpio_image, ext4_image
from pytest_lkft.provision.kernelmodules import KernelTree, tree_from_deb
from pytest_lkft.provision.loader import loader_initramfs
from pytest_lkft.settings.devices import QemuSpec
from pytest_lkft.settings.rootfs import SuiteNeeds

Fetch = Callable[[str, "str | None"], Path]
CONFIG_LINE = "CONFIG_"


@dataclass(frozen=True)
class DebianBoot:
    """The Debian rootfs as a device attaches it: the image, the loader, what stays an
    overlay (cpio), the disk's drive for Debian's kernels."""

    rootfs: Path
    initrd: Path | None
    overlays: list[Path]
    drive: str | None
    metadata: dict[str, str]


def debian_arch(spec: QemuSpec) -> str:
    """The device's Debian architecture; UserError for a device Debian has none for."""
    if spec.debian is None:
        raise UserError(f"{spec.name} has no Debian architecture in the device table; "
                        "--lkft-rootfs=debian needs a device with a `debian` entry")
    return spec.debian.arch


def missing_options(config: Path | None, wanted: Iterable[str]) -> list[str]:
    """The options of `wanted` that kernel config `config` has neither =y nor =m (none
    when the config is unknown)."""
    if config is None:
        return []
    found = set()
    for line in config.read_text(errors="replace").splitlines():
        name, _, value = line.partition("=")
        if name.startswith(CONFIG_LINE) and value in ("y", "m"):
            found.add(name)
    return [option for option in wanted if option not in found]


def debian_kernel(spec: QemuSpec, needs: list[SuiteNeeds], cache_root: Path,
                  fetch: Fetch) -> DefaultArtifacts:
    """Debian's kernel for `spec`, of the first flavour with every option `needs` asks for,
    else of the one missing fewest (its suites then skip, naming what is missing)."""
    if spec.debian is None:
        return default_artifacts(spec, cache_root, fetch)  # says the device has none
    wanted = [option for need in needs for option in need.kconfig]
    flavours = dict.fromkeys([spec.debian.flavour, spec.debian.full_flavour or ""])
    best: tuple[int, DefaultArtifacts] | None = None
    for flavour in filter(None, flavours):
        found = default_artifacts(spec, cache_root, fetch, flavour)
        missing = len(missing_options(found.kernel_config, wanted))
        if missing == 0:
            return found
        if best is None or missing < best[0]:
            best = (missing, found)
    assert best is not None
    return best[1]


def debian_boot(spec: QemuSpec, fmt: str, needs: list[SuiteNeeds], cache_root: Path,
                busybox: Path, kernel_deb: Path | None, overlays: list[Path],
                log: Callable[[str], None] | None = None,
                mirror: str | None = None) -> DebianBoot:
    """Build (or take from the cache) the Debian rootfs of `needs` for `spec` in format
    `fmt` (`ext4` or `cpio`), with the modules of `kernel_deb` (Debian's kernel)."""
    packages = [package for need in needs for package in need.packages]
    rootfs = build_rootfs(debian_arch(spec), packages, cache_root, log, mirror)
    tree = tree_from_deb(kernel_deb, cache_root) if kernel_deb is not None else None
    metadata = {"rootfs": f"debian:{','.join(rootfs.packages)}",
                "rootfs_snapshot": rootfs.snapshot}
    if fmt == "cpio":
        modules = [module for need in needs for module in need.modules]
        return DebianBoot(cpio_image(rootfs, tree, modules, cache_root), None, overlays,
                          None, metadata)
    drive = spec.debian.drive if tree is not None and spec.debian is not None else None
    return DebianBoot(_ext4(rootfs, tree, overlays, cache_root),
                      loader_initramfs(busybox, tree, cache_root), [], drive, metadata)


def _ext4(rootfs: Rootfs, tree: KernelTree | None, overlays: list[Path],
          cache_root: Path) -> Path:
    trees = (tree,) if tree is not None else ()
    return ext4_image(rootfs, Layers(trees, tuple(overlays)), cache_root)
