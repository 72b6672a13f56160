"""What a device boots: the user's kernel, rootfs, modules and dtb, or the defaults.

Paths are used as they are; URLs go through the artifact cache's fetch function, so every
download is shared and resumable. A modules tarball becomes a cpio overlay appended to
the initramfs (checked member by member, never extracted on the host), and so does a
kselftest install (`--lkft-kselftest`, at /opt/kselftest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.provision.debiandevice import debian_boot, debian_kernel
from pytest_lkft.provision.defaults import (
    DefaultArtifacts,
    default_artifacts,
    default_busybox,
    default_dtb,
)
from pytest_lkft.provision.disk import KernelFiles, Tree, rootfs_disk, tree_overlay
from pytest_lkft.provision.kernelimage import arch_matches, describe, image_arch, not_a_kernel
from pytest_lkft.provision.kernelmodules import KernelTree, tree_from_build, tree_from_deb
from pytest_lkft.provision.kselftest import KselftestStage
from pytest_lkft.provision.libhugetlbfs import LibhugetlbfsStage
from pytest_lkft.provision.loader import loader_initramfs
from pytest_lkft.provision.ltp import LtpStage
from pytest_lkft.provision.rootfs import tarball_overlay_file
from pytest_lkft.provision.stages import Getter, Stage, StageContext, Staged
from pytest_lkft.settings.device import Settings, is_url
from pytest_lkft.settings.devices import QemuSpec
from pytest_lkft.settings.rootfs import SuiteNeeds, debian_format, selected_needs

Fetch = Callable[[str, "str | None"], Path]


@dataclass
class DeviceArtifacts:
    """What a QEMU device boots: kernel, rootfs (cpio or ext4), overlays, dtb; with an ext4
    rootfs, the initramfs that mounts it and the drive that attaches it (None: the
    device's own); the kernel's config when it is known.

    With a `disk` (an ext4 root holding LTP, `pytest_lkft.provision.disk`), `rootfs` is the
    loader initramfs that mounts it.
    """

    kernel: Path
    rootfs: Path | None = None
    overlays: list[Path] = field(default_factory=list)
    dtb: Path | None = None
    boot_args: str = ""
    kernel_start_message: str = ""  # the user's; "" and (): the device's own
    prompts: tuple[str, ...] = ()
    qemu_binary: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    initrd: Path | None = None
    drive: str | None = None
    kernel_config: Path | None = None
    disk: Path | None = None
    memory: int | None = None  # MiB, instead of the device's
    # what went onto the disk, for device kinds that take no disk (LAVA: one initramfs)
    disk_parts: list[Path] = field(default_factory=list)  # the rootfs, then its overlays
    disk_trees: list[Tree] = field(default_factory=list)  # the stages' trees (LTP)

    def ramdisk_parts(self, cache_root: Path) -> tuple[Path | None, list[Path]]:
        """(rootfs, overlays) booting the same system from one initramfs: with a disk,
        what went onto it (the stages' trees as cpio overlays, the kernel's modules left
        out), else the rootfs and overlays as they are."""
        if self.disk is None:
            return self.rootfs, self.overlays
        trees = [tree_overlay(tree, cache_root) for tree in self.disk_trees]
        return self.disk_parts[0], [*self.disk_parts[1:], *trees]


def provision(settings: Settings, spec: QemuSpec, fetch: Fetch, cache_root: Path,
              stages: Sequence[Stage] | None = None, built: KernelFiles | None = None,
              extra_overlays: Sequence[Path] = ()) -> DeviceArtifacts:
    """Resolve everything `spec` needs to boot, downloading through `fetch`; each stage
    (default: the built-in ones) lays its overlays over the rootfs, in order, then
    `extra_overlays`. `built` are the modules and config of the kernel the settings give
    (a build's).

    When a stage lays whole trees (LTP), the default rootfs, the overlays, the trees and
    the kernel's modules and config (the build's, else the Debian package's) go onto an
    ext4 disk instead (`pytest_lkft.provision.disk`).
    """
    kernel_config = built.config if built is not None else None
    get = _getter(fetch)
    debian = debian_format(settings.rootfs)
    needs = selected_needs(settings.tests)
    kernel, rootfs = get(settings.kernel), None
    if not debian:
        rootfs = get(settings.rootfs)
    metadata = {"kernel": settings.kernel or "", "rootfs": settings.rootfs or ""}
    defaults = None
    if kernel is None and debian:  # the flavour that has what the suites need
        defaults = debian_kernel(spec, needs, cache_root, fetch)
    elif kernel is None or (rootfs is None and not debian):
        defaults = default_artifacts(spec, cache_root, fetch)
    if kernel is None and defaults is not None:
        kernel, metadata["kernel"] = defaults.kernel, f"debian:{defaults.kernel_package}"
        kernel_config = defaults.kernel_config
    if rootfs is None and defaults is not None and not debian:
        rootfs, metadata["rootfs"] = defaults.rootfs, f"busybox:{defaults.busybox_package}"
    assert kernel is not None
    shown = f"kernel {kernel}"
    if settings.kernel:
        shown = f"{settings.source('lkft_kernel')} {settings.kernel}"
    check_kernel(spec, kernel, shown)
    context = StageContext(settings, spec, get, cache_root)
    overlays: list[Path] = []
    trees: list[Tree] = []
    for stage in BUILT_IN_STAGES if stages is None else stages:
        staged = stage.stage(context)
        if staged is not None:
            overlays += staged.overlays
            trees += staged.trees
            metadata.update(staged.metadata)
    overlays += extra_overlays
    if debian and trees:
        raise UserError(f"{settings.source('lkft_rootfs')} {settings.rootfs} cannot carry an "
                        "LTP install yet (it goes onto a disk made from the default rootfs); "
                        "drop --lkft-rootfs for the ltp-* suites")
    dtb = get(settings.dtb)
    if dtb is None and settings.kernel is None and defaults is not None:
        dtb = default_dtb(spec, defaults, cache_root)  # the default kernel's own
        if dtb is not None:
            metadata["dtb"] = f"debian:{defaults.kernel_package}:{dtb.name}"
    found = DeviceArtifacts(kernel=kernel, rootfs=rootfs, overlays=overlays,
                            dtb=dtb, boot_args=settings.boot_args,
                            kernel_start_message=settings.kernel_start_message,
                            prompts=settings.prompts, qemu_binary=settings.qemu_binary,
                            metadata=metadata, kernel_config=kernel_config,
                            memory=settings.memory)
    if debian:
        _boot_debian(found, spec, debian, needs, cache_root, fetch, defaults,
                     settings.debian_mirror)
    elif trees:
        _on_disk(found, trees, _kernel_tree(settings, defaults, built, cache_root),
                 defaults, cache_root)
    return found


def _boot_debian(found: DeviceArtifacts, spec: QemuSpec, fmt: str, needs: list[SuiteNeeds],
                 cache_root: Path, fetch: Fetch, defaults: DefaultArtifacts | None,
                 mirror: str | None) -> None:
    """Put the Debian rootfs of `needs` into `found` (see `debiandevice`)."""
    if defaults is not None:
        busybox, deb = defaults.busybox, defaults.kernel_deb
    else:
        busybox, deb = default_busybox(spec, cache_root, fetch), None
    boot = debian_boot(spec, fmt, needs, cache_root, busybox, deb, found.overlays,
                       mirror=mirror)
    found.rootfs, found.initrd, found.overlays = boot.rootfs, boot.initrd, boot.overlays
    found.drive = boot.drive
    found.metadata.update(boot.metadata)


def _kernel_tree(settings: Settings, defaults: DefaultArtifacts | None,
                 built: KernelFiles | None, cache_root: Path) -> KernelTree | None:
    """The kernel's modules and config: a build's, else the Debian package's."""
    if built is not None:
        return tree_from_build(built.modules, built.config, cache_root)
    if settings.kernel is None and defaults is not None and defaults.kernel_deb:
        return tree_from_deb(Path(defaults.kernel_deb), cache_root)
    return None


def _on_disk(found: DeviceArtifacts, trees: list[Tree], kernel: KernelTree | None,
             defaults: DefaultArtifacts | None, cache_root: Path) -> None:
    """Move the rootfs, its overlays and `trees` onto an ext4 disk, booted by a loader."""
    if defaults is None or found.rootfs != defaults.rootfs or not defaults.busybox:
        raise UserError(f"{found.metadata['rootfs']}: whole trees (an LTP install) go onto a "
                        "disk built from the default rootfs; drop --lkft-rootfs")
    assert found.rootfs is not None
    found.disk_parts, found.disk_trees = [found.rootfs, *found.overlays], trees
    if kernel is not None:  # laid at /: lib/modules/<release>, boot/config-<release>
        trees = [Tree(kernel.path, "", kernel.key), *trees]
    found.disk = rootfs_disk(found.disk_parts, trees, cache_root)
    found.rootfs = loader_initramfs(Path(defaults.busybox), kernel, cache_root)
    found.overlays = []
    found.metadata["disk"] = str(found.disk)


def _getter(fetch: Fetch) -> Getter:
    def get(value: str | None) -> Path | None:
        if not value:
            return None
        return fetch(value, None) if is_url(value) else Path(value).resolve()
    return get


def check_kernel(spec: QemuSpec, kernel: Path, shown: str) -> None:
    """Refuse a file that cannot be a kernel image, and a kernel for another architecture;
    `shown` names it (`--lkft-kernel PATH`)."""
    what = not_a_kernel(kernel)
    if what:
        raise UserError(f"{shown} is not a kernel image ({what}); pass the kernel's boot "
                        f"image for {spec.name} ({spec.kernel_image}, built for {spec.arch})")
    found = image_arch(kernel)
    if not arch_matches(spec.arch, found):
        raise UserError(f"{shown} is {describe(str(found))} but {spec.name} needs an "
                        f"{spec.arch} kernel; pass a kernel built for {spec.arch} or choose "
                        "another device")


class ModulesStage:
    """--lkft-modules: the modules tarball, checked member by member, as an overlay."""

    name = "modules"

    def stage(self, context: StageContext) -> Staged | None:
        modules = context.get(context.settings.modules)
        if modules is None:
            return None
        return Staged([tarball_overlay_file(modules, context.cache_root)],
                      {"modules": context.settings.modules or ""})


BUILT_IN_STAGES: tuple[Stage, ...] = (ModulesStage(), KselftestStage(), LtpStage(),
                                      LibhugetlbfsStage())
