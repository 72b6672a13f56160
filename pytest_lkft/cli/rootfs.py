"""`lkft rootfs build`: the Debian rootfs of `--lkft-rootfs=debian`, outside pytest."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from pytest_lkft.artifacts.cache import default_cache_dir
from pytest_lkft.errors import UserError
from pytest_lkft.provision.debian import ARCHS, Rootfs, build_rootfs
from pytest_lkft.provision.images import Layers, cpio_image, ext4_image
from pytest_lkft.settings.device import check_mirror
from pytest_lkft.settings.rootfs import load_needs

FORMATS = ("ext4", "cpio", "dir")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """`lkft rootfs build` and its options."""
    actions = parser.add_subparsers(dest="rootfs_action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="Build a Debian 12 rootfs from Debian's packages")
    build.add_argument("--arch", required=True,
                       help=f"Debian architecture: {', '.join(ARCHS)}")
    build.add_argument("--packages", action="append", default=[], metavar="P[,P]",
                       help="Debian packages besides the base ones; repeatable")
    build.add_argument("--suites", default="", metavar="S[,S]",
                       help="Add the packages these suites need (suite-needs.yaml): "
                       f"{', '.join(sorted(load_needs()))}")
    build.add_argument("--format", choices=FORMATS, default="ext4",
                       help="ext4 image (default), uncompressed cpio archive, or the tree")
    build.add_argument("--output", type=Path, default=None,
                       help="Copy the image there (default: print its path in the cache)")
    build.add_argument("--debian-mirror", default=None, metavar="URL",
                       help="A Debian mirror (default: this Debian machine's apt sources; "
                       "needed on Ubuntu and other distributions)")
    build.add_argument("--cache-dir", type=Path, default=None,
                       help="Cache (default $LKFT_CACHE_DIR, else ~/.cache/lkft)")


def packages(args: argparse.Namespace) -> list[str]:
    """The packages asked for, with those of the suites asked for."""
    found = [name.strip() for value in args.packages for name in value.split(",")]
    needs = load_needs()
    for suite in filter(None, (s.strip() for s in args.suites.split(","))):
        if suite not in needs:
            raise UserError(f"--suites {suite}: no such suite; use {', '.join(sorted(needs))}")
        found += needs[suite].packages
    return [name for name in found if name]


def image(rootfs: Rootfs, fmt: str, cache_root: Path) -> Path:
    """The rootfs in format `fmt`, made once in the cache."""
    if fmt == "ext4":
        return ext4_image(rootfs, Layers(), cache_root)
    if fmt == "cpio":
        return cpio_image(rootfs, None, [], cache_root)
    return rootfs.root


def run(args: argparse.Namespace) -> int:
    """Build (or find in the cache) the rootfs; print where it is."""
    if args.output is not None and args.format == "dir":
        raise UserError("--output needs --format ext4 or cpio (a tree stays in the cache)")
    cache_root = args.cache_dir or default_cache_dir()
    mirror = check_mirror(args.debian_mirror, "--debian-mirror")
    rootfs = build_rootfs(args.arch, packages(args), cache_root,
                          lambda text: print(text, file=sys.stderr), mirror)
    made = image(rootfs, args.format, cache_root)
    if args.output is not None:
        shutil.copyfile(made, args.output)
        made = args.output
    print(f"rootfs: {made}")
    print(f"packages: {', '.join(rootfs.packages)}")
    print(f"snapshot: {rootfs.snapshot}")
    return 0
