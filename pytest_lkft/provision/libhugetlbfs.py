"""--lkft-libhugetlbfs: libhugetlbfs's tests, built for the device (`pytest_lkft.build.
libhugetlbfs`), laid over the rootfs at /opt/libhugetlbfs for the libhugetlbfs suite."""

from __future__ import annotations

from pytest_lkft.build.libhugetlbfs import build_libhugetlbfs
from pytest_lkft.provision.rootfs import tarball_overlay_file
from pytest_lkft.provision.stages import StageContext, Staged
from pytest_lkft.settings.archs import get_arch


class LibhugetlbfsStage:
    """The tests of the --lkft-libhugetlbfs source, built for the device's architecture."""

    name = "libhugetlbfs"

    def stage(self, context: StageContext) -> Staged | None:
        source = context.get(context.settings.libhugetlbfs)
        if source is None:
            return None
        tarball = build_libhugetlbfs(source, get_arch(context.spec.arch), context.cache_root)
        return Staged([tarball_overlay_file(tarball, context.cache_root)],
                      {"libhugetlbfs": context.settings.libhugetlbfs or ""})
