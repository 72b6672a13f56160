"""The Debian rootfs's pieces without a build or a boot: options, recipes, images, scripts.

Images are made with the real tools (fakeroot, mke2fs, cpio, debugfs) from small trees;
the suite scripts' helpers run in this machine's sh. The real rootfs and the suites on it
are tests/test_debian_suites.py.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pytest_lkft.errors import UserError
from pytest_lkft.provision.debian import (
    FILES,
    Rootfs,
    apt_sources,
    files_tarball,
    mmdebstrap_command,
    rootfs_packages,
)
from pytest_lkft.provision.debiandevice import missing_options
from pytest_lkft.provision.images import Layers, cpio_image, ext4_image, make_ext4
from pytest_lkft.provision.rootfs import Entry, unpack_cpio, write_cpio
from pytest_lkft.run.scripts import suite_script
from pytest_lkft.settings import tables
from pytest_lkft.settings.device import Settings
from pytest_lkft.settings.options import Resolver
from pytest_lkft.settings.rootfs import (
    SuiteNeeds,
    debian_format,
    selected_needs,
    suite_fragments,
    suite_needs,
)


def settings(**given: object) -> Settings:
    values = {f"lkft_{k}": v for k, v in given.items()}
    return Settings.resolve(Resolver(lambda dest: values.get(dest), environ={}), Path("/"))


def test_rootfs_option_takes_debian_and_its_formats() -> None:
    assert [debian_format(v) for v in ("debian", "debian:cpio", "debian:ext4", "x.ext4",
                                       None)] == ["ext4", "cpio", "ext4", None, None]
    assert settings(rootfs="debian").rootfs == "debian"  # a keyword, not a missing file
    with pytest.raises(UserError, match=r"--lkft-rootfs debian:squashfs: unknown format "
                                        r"'squashfs'; use debian, debian:ext4 or debian:cpio"):
        settings(rootfs="debian:squashfs")


def test_parameters_are_name_value_pairs_in_order() -> None:
    given = settings(parameter=["TORTURE_TIME=10", "PERF_TEST_ARGS=-s 1,2", "EMPTY="])
    assert given.parameters == (("TORTURE_TIME", "10"), ("PERF_TEST_ARGS", "-s 1,2"),
                                ("EMPTY", ""))
    with pytest.raises(UserError, match=r"invalid parameter '1X=2' from --lkft-parameter; "
                                        r"pass NAME=VALUE, e.g. TORTURE_TIME=30"):
        settings(parameter=["1X=2"])


def test_the_packages_follow_the_selected_suites() -> None:
    assert [n.name for n in selected_needs(())] == ["libgpiod", "libhugetlbfs", "perf",
                                                    "rcutorture", "v4l2"]
    assert [n.name for n in selected_needs(("boot", "perf", "lib*"))] == [
        "libgpiod", "libhugetlbfs", "perf"]
    assert rootfs_packages(suite_needs("perf").packages) == (
        "base-files", "bash", "busybox", "coreutils", "kmod", "linux-perf")
    assert suite_needs("smoke") == SuiteNeeds("smoke")  # needs nothing of the rootfs


def test_a_built_kernel_gets_the_fragments_of_the_suites_named() -> None:
    assert suite_fragments(("rcutorture", "libgpiod")) == ("rcutorture", "gpio-sim")
    assert suite_fragments(("lib*", "rcu*", "perf")) == ("gpio-sim", "rcutorture", "perf")
    assert suite_fragments(()) == ()  # every suite, none named: the build is as given


def test_mmdebstrap_runs_no_foreign_code_and_needs_no_root() -> None:
    command = mmdebstrap_command("arm64", ("busybox",), Path("/x"), ["deb http://m/d bookworm "
                                                                      "main"])
    assert command[:4] == ["mmdebstrap", "--mode=chrootless", "--variant=extract",
                           "--architectures=arm64"]
    assert command[-3:] == ["bookworm", "/x", "deb http://m/d bookworm main"]
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in command


def test_apt_sources_are_this_machines_debian_sites() -> None:
    sources = apt_sources("bookworm")
    assert [line.split()[2] for line in sources] in (
        ["bookworm", "bookworm-updates", "bookworm-security"], ["bookworm", "bookworm-updates"])
    assert all(line.startswith("deb http") and line.endswith(" main") for line in sources)


def test_another_distribution_needs_a_debian_mirror(tmp_path: Path) -> None:
    """On Ubuntu the host's apt sites hold no Debian release: one line saying to pass
    --lkft-debian-mirror, whose release and -updates suite are then used."""
    ubuntu = tmp_path / "os-release"
    ubuntu.write_text('NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n')
    with pytest.raises(UserError) as refused:
        apt_sources("bookworm", os_release=ubuntu)
    assert str(refused.value) == (
        f"this machine is ubuntu ({ubuntu}): its apt sources are not Debian's archive; pass "
        "--lkft-debian-mirror URL, a Debian mirror (the one holding dists/bookworm/)")
    mirror = "http://127.0.0.1:9/debian"
    assert apt_sources("bookworm", mirror, ubuntu) == [f"deb {mirror} bookworm main",
                                                       f"deb {mirror} bookworm-updates main"]
    assert settings(debian_mirror=f"{mirror}/").debian_mirror == mirror
    with pytest.raises(UserError, match=r"^invalid Debian mirror 'mirror' from "
                                        r"--lkft-debian-mirror; give its URL, http://"):
        settings(debian_mirror="mirror")
    done = subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "rootfs", "build", "--arch",
                           "arm64", "--debian-mirror", "ftp:/x"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("lkft rootfs: error: invalid Debian mirror 'ftp:/x' from "
                                  "--debian-mirror; give its URL")


def test_our_files_are_root_s_and_give_a_shell() -> None:
    with tarfile.open(fileobj=io.BytesIO(files_tarball())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["init"].mode == 0o755 and members["init"].uid == 0
    assert members["bin/sh"].linkname == "busybox" and members["sbin/init"].linkname == "../init"
    assert members["etc/passwd"].size == len(FILES["etc/passwd"][1])


def test_missing_options(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("CONFIG_PERF_EVENTS=y\nCONFIG_VIDEO_VIVID=m\n# CONFIG_GPIO_SIM is not set\n"
                      "CONFIG_HZ=250\n")
    assert missing_options(config, ["CONFIG_PERF_EVENTS", "CONFIG_VIDEO_VIVID",
                                    "CONFIG_GPIO_SIM", "CONFIG_RCU_TORTURE_TEST"]) == [
        "CONFIG_GPIO_SIM", "CONFIG_RCU_TORTURE_TEST"]
    assert missing_options(None, ["CONFIG_X"]) == []  # unknown: the device checks


def test_an_overlay_never_writes_through_a_hard_link(tmp_path: Path) -> None:
    """The staging tree hard-links the cached rootfs: an overlay replaces files, it does not
    change the cached ones."""
    cached, stage = tmp_path / "cached", tmp_path / "stage"
    (cached / "etc").mkdir(parents=True)
    (cached / "etc" / "motd").write_text("cached\n")
    subprocess.run(["cp", "-al", str(cached), str(stage)], check=True)
    overlay = write_cpio([Entry("etc/motd", stat.S_IFREG | 0o600, b"overlay\n"),
                          Entry("opt/x", stat.S_IFLNK | 0o777, b"../etc/motd"),
                          Entry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))])
    assert unpack_cpio(overlay, stage) == ["dev", "etc", "opt"]
    assert (cached / "etc" / "motd").read_text() == "cached\n"
    assert (stage / "etc" / "motd").read_text() == "overlay\n"
    assert os.readlink(stage / "opt" / "x") == "../etc/motd"
    assert not (stage / "dev" / "null").exists()  # the guest's devtmpfs has it


def need(*tools: str) -> None:
    for tool in tools:
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            pytest.skip(f"{tool} is not installed: run the README's test set-up command")


def test_ext4_image_takes_owners_and_devices_from_the_fakeroot_state(tmp_path: Path) -> None:
    need("fakeroot", "mke2fs", "debugfs")
    tree, state = tmp_path / "tree", tmp_path / "state"
    subprocess.run(["fakeroot", "-s", str(state), "--", "sh", "-c",
                    f"mkdir -p {tree}/dev {tree}/home/user && mknod {tree}/dev/console c 5 1 && "
                    f"echo hi > {tree}/home/user/f && chown 1000:1000 {tree}/home/user/f"],
                   check=True)
    (tree / "added").write_text("laid in later\n")  # outside the session: made root's
    image = tmp_path / "root.ext4"
    make_ext4(tree, image, state, ["added"])

    def stat_of(path: str) -> str:
        return subprocess.run(["debugfs", "-R", f"stat {path}", str(image)],
                              capture_output=True, text=True, check=True).stdout

    assert "Type: character special" in stat_of("/dev/console")
    assert "User:  1000   Group:  1000" in stat_of("/home/user/f")
    assert "User:     0   Group:     0" in stat_of("/added")


def test_ext4_image_without_layers_is_made_from_the_tree_itself(tmp_path: Path) -> None:
    """`lkft rootfs build --format ext4`: no staged copy of the tree, the owners kept."""
    need("fakeroot", "mke2fs", "debugfs")
    root, state = tmp_path / "key" / "root", tmp_path / "key" / "state"
    subprocess.run(["fakeroot", "-s", str(state), "--", "sh", "-c",
                    f"mkdir -p {root}/home/user && echo hi > {root}/home/user/f && "
                    f"chown 1000:1000 {root}/home/user/f"], check=True)
    rootfs = Rootfs(root, state, "key", "arm64", ("busybox",), "now")
    image = ext4_image(rootfs, Layers(), tmp_path / "cache")
    listing = subprocess.run(["debugfs", "-R", "stat /home/user/f", str(image)],
                             capture_output=True, text=True, check=True).stdout
    assert "User:  1000   Group:  1000" in listing
    assert sorted(p.name for p in image.parent.iterdir()) == [image.name, image.name + ".log",
                                                              image.with_suffix(".lock").name]
    assert ext4_image(rootfs, Layers(), tmp_path / "cache") == image  # made once


def test_cpio_image_is_root_s_with_only_the_console_in_dev(tmp_path: Path) -> None:
    need("cpio")
    root = tmp_path / "key" / "root"
    (root / "bin").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "dev" / "null").write_text("")  # what a build without root leaves in /dev
    (root / "bin" / "busybox").write_bytes(b"\x7fELF")
    (root / "bin" / "sh").symlink_to("busybox")
    rootfs = Rootfs(root, tmp_path / "state", "key", "arm64", ("busybox",), "now")
    archive = cpio_image(rootfs, None, [], tmp_path / "cache")
    def cpio(*options: str) -> list[str]:
        return subprocess.run(["cpio", *options], input=archive.read_bytes(),
                              capture_output=True, check=True).stdout.decode().splitlines()

    assert sorted(cpio("-it")) == ["bin", "bin/busybox", "bin/sh", "dev", "dev/console"]
    assert all(line.split()[2:4] == ["root", "root"] for line in cpio("-itv"))
    assert archive == cpio_image(rootfs, None, [], tmp_path / "cache")  # made once


def run_script(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False,
                          env={"PATH": os.environ["PATH"], **env})


def test_a_script_skips_naming_the_command_or_option_it_lacks(tmp_path: Path) -> None:
    needs = SuiteNeeds("demo", commands=("sh", "lkft-no-such-tool"), kconfig=("CONFIG_X",))
    (tmp_path / "demo.sh").write_text("echo the suite ran\n")
    tables.set_lab_dir(tmp_path)  # data/demo.sh: the suite's own part
    try:
        script = suite_script(needs, [("TORTURE_TIME", "10 s")])
    finally:
        tables.set_lab_dir(None)
    assert "TORTURE_TIME='10 s'\nexport TORTURE_TIME\n" in script
    assert run_script(script).stdout.splitlines()[-1] == (
        "LKFT-SKIP: lkft-no-such-tool is not on the rootfs: pass --lkft-rootfs=debian")
    config = tmp_path / "config"
    config.write_text("# CONFIG_X is not set\nCONFIG_Y=m\n")
    checks = script.split("lkft_need_commands")[0] + "lkft_need_config CONFIG_Y CONFIG_X\n"
    done = run_script(checks, KCONFIG_PATH=str(config))
    assert done.stdout == "LKFT-SKIP: the kernel lacks CONFIG_X (not set in its config)\n"
    config.write_text("CONFIG_X=y\nCONFIG_Y=m\n")
    assert run_script(checks + "echo ran\n", KCONFIG_PATH=str(config)).stdout == "ran\n"
