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
from pytest_lkft.provision.defaults import DefaultArtifacts, default_artifacts, default_busybox
from pytest_lkft.provision.kernelimage import arch_matches, describe, image_arch, not_a_kernel
from pytest_lkft.provision.kselftest import KselftestStage
from pytest_lkft.provision.libhugetlbfs import LibhugetlbfsStage
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
    device's own); the kernel's config when it is known."""

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


def provision(settings: Settings, spec: QemuSpec, fetch: Fetch, cache_root: Path,
              stages: Sequence[Stage] | None = None, kernel_config: Path | None = None,
              extra_overlays: Sequence[Path] = ()) -> DeviceArtifacts:
    """Resolve everything `spec` needs to boot, downloading through `fetch`; each stage
    (default: the built-in ones) lays its overlays over the rootfs, in order, then
    `extra_overlays`. `kernel_config` is the config of the kernel the settings give (a
    build's)."""
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
    for stage in BUILT_IN_STAGES if stages is None else stages:
        staged = stage.stage(context)
        if staged is not None:
            overlays += staged.overlays
            metadata.update(staged.metadata)
    overlays += extra_overlays
    found = DeviceArtifacts(kernel=kernel, rootfs=rootfs, overlays=overlays,
                            dtb=get(settings.dtb), boot_args=settings.boot_args,
                            kernel_start_message=settings.kernel_start_message,
                            prompts=settings.prompts,
                            qemu_binary=settings.qemu_binary, metadata=metadata,
                            kernel_config=kernel_config)
    if debian:
        _boot_debian(found, spec, debian, needs, cache_root, fetch, defaults)
    return found


def _boot_debian(found: DeviceArtifacts, spec: QemuSpec, fmt: str, needs: list[SuiteNeeds],
                 cache_root: Path, fetch: Fetch, defaults: DefaultArtifacts | None) -> None:
    """Put the Debian rootfs of `needs` into `found` (see `debiandevice`)."""
    if defaults is not None:
        busybox, deb = defaults.busybox, defaults.kernel_deb
    else:
        busybox, deb = default_busybox(spec, cache_root, fetch), None
    boot = debian_boot(spec, fmt, needs, cache_root, busybox, deb, found.overlays)
    found.rootfs, found.initrd, found.overlays = boot.rootfs, boot.initrd, boot.overlays
    found.drive = boot.drive
    found.metadata.update(boot.metadata)


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
