"""Initramfs archives and overlays: real cpio reads what we write; bad tarballs are refused."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pytest_lkft.errors import UserError
from pytest_lkft.provision.rootfs import (
    Entry,
    module_names,
    rootfs_kind,
    tarball_overlay,
    write_cpio,
)


def cpio_list(archive: bytes) -> list[str]:
    """What GNU cpio reads from `archive` (`cpio -it`, verbose)."""
    if shutil.which("cpio") is None:
        pytest.skip("cpio is not installed: run the README's test set-up command")
    done = subprocess.run(["cpio", "-itv"], input=archive, capture_output=True, check=True)
    return done.stdout.decode().splitlines()


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    return member


def test_cpio_is_read_by_gnu_cpio_with_parents_and_modes() -> None:
    archive = write_cpio([Entry("bin/busybox", 0o100755, b"#!bin"),
                          Entry("bin/sh", 0o120777, b"busybox"),
                          Entry("dev/console", 0o20600, rdev=(5, 1))])
    lines = cpio_list(archive)
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in lines]
    assert names == ["bin", "bin/busybox", "bin/sh", "dev", "dev/console"]
    assert lines[1].startswith("-rwxr-xr-x") and lines[2].startswith("lrwxrwxrwx")
    assert lines[4].startswith("crw-------")
    assert lines[4].split()[4:6] == ["5,", "1"]  # the console's device numbers (it was 0, 1)


def test_cpio_is_reproducible() -> None:
    entries = [Entry("init", 0o100755, b"#!/bin/sh\n")]
    assert write_cpio(entries) == write_cpio(entries)


def test_modules_tarball_becomes_an_overlay(tmp_path: Path) -> None:
    tarball = make_tar(tmp_path / "modules.tar.gz", [
        info("./lib/modules/6.1.0/kernel/lib/crc4.ko"),
        info("lib/modules/6.1.0/kernel/lib/crc8.ko.xz"),
        info("lib/modules/6.1.0/build", tarfile.SYMTYPE, "kernel"),
    ])
    lines = cpio_list(gzip.decompress(tarball_overlay(tarball)))
    assert any(line.endswith("lib/modules/6.1.0/kernel/lib/crc4.ko") for line in lines)
    assert module_names(tarball) == ["crc4", "crc8"]


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (info("/lib/modules/evil.ko"), "is an absolute path"),
        (info("lib/../../etc/passwd"), "climbs out of the rootfs with '..'"),
        (info("lib/modules/link", tarfile.SYMTYPE, "/etc/shadow"), "links out of the rootfs"),
        (info("lib/link", tarfile.SYMTYPE, "../../../root"), "links out of the rootfs"),
        (info("lib/hard", tarfile.LNKTYPE, "../outside"), "links out of the rootfs"),
        (info("lib/null", tarfile.CHRTYPE), "is a device, fifo or other special file"),
    ],
    ids=["absolute", "dotdot", "symlink-absolute", "symlink-up", "hardlink-up", "device"],
)
def test_escaping_members_are_refused_by_name(tmp_path: Path, member: tarfile.TarInfo,
                                              why: str) -> None:
    tarball = make_tar(tmp_path / "bad.tar.gz", [info("lib/modules/ok.ko"), member])
    with pytest.raises(UserError) as error:
        tarball_overlay(tarball)
    assert f"member {member.name!r} {why}" in str(error.value)
    assert "nothing was written" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_rootfs_kind_sees_through_compression(tmp_path: Path) -> None:
    cpio = tmp_path / "rootfs.cpio.gz"
    cpio.write_bytes(gzip.compress(write_cpio([Entry("init", 0o100755, b"")])))
    assert rootfs_kind(cpio) == "cpio"
    ext4 = tmp_path / "rootfs.ext4"
    ext4.write_bytes(b"\0" * 1080 + b"\x53\xef" + b"\0" * 1000)
    assert rootfs_kind(ext4) == "ext4"
    junk = tmp_path / "rootfs.img"
    junk.write_bytes(b"junk" * 1000)
    with pytest.raises(UserError, match="neither a cpio archive nor an ext4 image"):
        rootfs_kind(junk)


def test_a_tree_laid_over_files_already_there_replaces_them(tmp_path: Path) -> None:
    """A built kernel's modules reach the LTP disk twice, as an overlay and in the kernel's
    tree: laying the tree over the overlay's files replaced them (it raised shutil.Error,
    a list of "are the same file" one character an entry)."""
    from pytest_lkft.provision.disk import Tree, lay_tree

    tree = tmp_path / "tree"
    (tree / "lib" / "modules").mkdir(parents=True)
    (tree / "lib" / "modules" / "modules.dep").write_text("from the tree\n")
    (tree / "boot").mkdir()
    (tree / "boot" / "config").write_text("CONFIG_X=y\n")
    dest = tmp_path / "staging"
    (dest / "lib" / "modules").mkdir(parents=True)
    (dest / "lib" / "modules" / "modules.dep").write_text("from the overlay\n")
    lay_tree(Tree(tree, "", "k"), dest)
    lay_tree(Tree(tree, "", "k"), dest)  # again: its own links already there
    assert (dest / "lib" / "modules" / "modules.dep").read_text() == "from the tree\n"
    assert (dest / "boot" / "config").read_text() == "CONFIG_X=y\n"
    assert (tree / "lib" / "modules" / "modules.dep").read_text() == "from the tree\n"


def test_the_loader_carries_its_init_and_the_disk_modules_of_debians_kernel_in_load_order(
        tmp_path: Path, artifact_cache: Path) -> None:
    """One loader boots the LTP disk and the Debian rootfs's image: busybox, the /init of
    data/loader.yaml, and the .ko files of Debian's arm64 kernel that reach the disk (its
    ext4 is built in), each after what it depends on (as /init loads them: insmod, in the
    order of lkft/loader-modules)."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.provision.kernelmodules import tree_from_deb
    from pytest_lkft.provision.loader import MODULE_LIST, loader_data, loader_initramfs
    from pytest_lkft.provision.rootfs import unpack_cpio
    from pytest_lkft.settings.devices import load_devices

    with ArtifactCache(artifact_cache) as shared:
        found = default_artifacts(load_devices().get("qemu-arm64"), artifact_cache,
                                  shared.fetch)
    assert found.kernel_deb and found.busybox
    tree = tree_from_deb(Path(found.kernel_deb), artifact_cache)
    loader = loader_initramfs(Path(found.busybox), tree, tmp_path)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    unpack_cpio(gzip.decompress(loader.read_bytes()), unpacked)
    assert (unpacked / "init").read_text() == loader_data()["init"]
    listed = (unpacked / MODULE_LIST).read_text().splitlines()
    names = [Path(name).name.split(".ko")[0] for name in listed]
    assert all((unpacked / name).is_file() for name in listed)
    assert {"virtio_blk", "virtio_mmio", "sd_mod"} <= set(names)  # cloud-arm64's ext4 is =y
    assert names.index("virtio_ring") < names.index("virtio") < names.index("virtio_blk")
    assert names.index("scsi_mod") < names.index("sd_mod")
    assert loader_initramfs(Path(found.busybox), tree, tmp_path) == loader  # cached
    bare = loader_initramfs(Path(found.busybox), None, tmp_path)  # drivers built in
    assert bare != loader
    assert b"lkft/loader-modules" in gzip.decompress(bare.read_bytes())
