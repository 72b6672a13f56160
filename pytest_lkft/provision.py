"""What a device boots: the user's kernel, rootfs, modules and dtb, or the defaults.

Paths are used as they are; URLs go through the artifact cache's fetch function, so every
download is shared and resumable. A modules tarball becomes a cpio overlay appended to
the initramfs (checked member by member, never extracted on the host), and so does a
kselftest install (`--lkft-kselftest`, at /opt/kselftest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from pytest_lkft import ltp
from pytest_lkft.artifacts import hash_file
from pytest_lkft.build_inputs import get_arch
from pytest_lkft.config import Settings, is_url
from pytest_lkft.debian import default_artifacts
from pytest_lkft.devices.qemu import DeviceArtifacts
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.kernelimage import arch_matches, describe, image_arch
from pytest_lkft.kselftests import install_overlays, read_install
from pytest_lkft.lab import QemuSpec
from pytest_lkft.rootfs import cached_overlay, stored_overlay, tarball_overlay

Fetch = Callable[[str, "str | None"], Path]


def provision(
    settings: Settings, spec: QemuSpec, fetch: Fetch, cache_root: Path
) -> DeviceArtifacts:
    """Resolve everything `spec` needs to boot, downloading through `fetch`."""
    get = _getter(fetch)
    kernel, rootfs = get(settings.kernel), get(settings.rootfs)
    metadata = {"kernel": settings.kernel or "", "rootfs": settings.rootfs or ""}
    if kernel is None or rootfs is None:
        defaults = default_artifacts(spec, cache_root, fetch)
        if kernel is None:
            kernel, metadata["kernel"] = defaults.kernel, f"debian:{defaults.kernel_package}"
        if rootfs is None:
            rootfs, metadata["rootfs"] = defaults.rootfs, f"busybox:{defaults.busybox_package}"
    _check_arch(spec, kernel, settings.kernel or str(kernel))
    modules = get(settings.modules)
    overlays = [_overlay(modules, cache_root)] if modules else []
    if modules:
        metadata["modules"] = settings.modules or ""
    overlays += _kselftest_overlays(settings, spec, get, cache_root)
    if settings.kselftest:
        metadata["kselftest"] = settings.kselftest
    ltp_tree = get(settings.ltp)
    if ltp_tree is not None:
        overlays += ltp_overlays(ltp_tree, settings, get(settings.ltp_skipfile), cache_root)
        metadata["ltp"] = settings.ltp or ""
    return DeviceArtifacts(kernel=kernel, rootfs=rootfs, overlays=overlays, dtb=get(settings.dtb),
                           boot_args=settings.boot_args, qemu_binary=settings.qemu_binary,
                           metadata=metadata)


def _getter(fetch: Fetch) -> Callable[[str | None], Path | None]:
    def get(value: str | None) -> Path | None:
        if not value:
            return None
        return fetch(value, None) if is_url(value) else Path(value).resolve()
    return get


def _kselftest_overlays(settings: Settings, spec: QemuSpec,
                        get: Callable[[str | None], Path | None], cache_root: Path) -> list[Path]:
    """--lkft-kselftest at /opt/kselftest, with the cross C library on the busybox rootfs.

    An unusable tarball gives nothing here: the kselftest suite reports it in one line
    (`pytest_lkft.suites.kselftest_install`) and the device's other suites still run.
    """
    if not settings.kselftest:
        return []
    try:
        install = read_install(get(settings.kselftest) or Path(), settings.kselftest)
        libc = get_arch(spec.arch).libc_dir if settings.rootfs is None else None
        return install_overlays(install, libc, cache_root)
    except LkftError:
        return []


def _check_arch(spec: QemuSpec, kernel: Path, shown: str) -> None:
    found = image_arch(kernel)
    if not arch_matches(spec.arch, found):
        raise UserError(f"kernel {shown} is {describe(str(found))} but {spec.name} needs an "
                        f"{spec.arch} kernel; pass --lkft-kernel built for {spec.arch}")


def ltp_overlays(tarball: Path, settings: Settings, skipfile: Path | None,
                 cache_root: Path) -> list[Path]:
    """The LTP tree under /opt/ltp, then the runner and the plan of each runtest file."""
    texts = ltp.runtest_files(tarball)
    names = ltp.choose_runtests(list(texts), settings.ltp_runtest,
                                 settings.ltp or str(tarball))
    skips = ltp.read_skipfile(skipfile) if skipfile else []
    shown = settings.ltp_skipfile or ""
    plans = {name: ltp.plan(texts[name], settings.ltp_shard, skips, Path(shown).name)
             for name in names}
    plan = stored_overlay(ltp.plan_overlay(plans), cache_root)
    return [_overlay(tarball, cache_root, ltp.overlay_prefix(tarball)), plan]


def _overlay(tarball: Path, cache_root: Path, prefix: str = "") -> Path:
    """A tarball as a gzip'd cpio overlay under `prefix`, cached by the tarball's content."""
    key = hash_file(tarball)
    if prefix:
        key = hashlib.sha256(f"{key}:{prefix}".encode()).hexdigest()
    return cached_overlay(cache_root, key[:32], lambda: tarball_overlay(tarball, prefix))
