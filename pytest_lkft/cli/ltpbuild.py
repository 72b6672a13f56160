"""`lkft ltp-build`: LTP cross-built for a device's architecture, as --lkft-ltp-src does it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_lkft.build.ltp import LINKINGS, LtpBuild
from pytest_lkft.cli.build import ProgressLine
from pytest_lkft.settings.device import runtest_names


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The LTP build options, named as the plugin's without the --lkft-ltp- prefix."""
    parser.add_argument("source", type=Path,
                        help="LTP release tarball (ltp-YYYYMMDD.tar.xz) or source directory, "
                        "never written to")
    parser.add_argument("--target-arch", default="arm64",
                        help="Architecture to build for (default arm64)")
    parser.add_argument("--toolchain", default="gcc", help="gcc or gcc-N (default gcc)")
    parser.add_argument("--linking", choices=LINKINGS, default="static",
                        help="static (default) or dynamic (the rootfs needs the C library)")
    parser.add_argument("--runtest", default="", metavar="NAME[,NAME]",
                        help="Runtest files whose tests to build (default: LKFT's set, those "
                        "the source has)")
    parser.add_argument("--skipfile", type=Path, default=None,
                        help="Tags not to build, one a line, # comments (runltp -S)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="Build cache (default $LKFT_CACHE_DIR/ltp-builds, else "
                        "~/.cache/lkft/ltp-builds)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="make -j (default: CPUs)")
    parser.add_argument("--rebuild", action="store_true",
                        help="Build even when the build cache has this build")


def run(args: argparse.Namespace) -> int:
    """Build, print the summary; exit 1 when the build failed."""
    from pytest_lkft.provision.ltp import read_skipfile

    runtests = runtest_names(args.runtest, "--runtest")
    options: dict[str, Any] = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    if args.jobs:
        options["jobs"] = args.jobs
    skips = tuple(read_skipfile(args.skipfile, "--skipfile")) if args.skipfile else ()
    progress = ProgressLine(sys.stderr)
    build = LtpBuild(source=args.source, target_arch=args.target_arch, toolchain=args.toolchain,
                     linking=args.linking, runtests=runtests, skips=skips,
                     reuse=not args.rebuild, progress=progress, **options)
    try:
        result = build.run()
    finally:
        progress.end()
    print(result.summary())
    return 0 if result.passed else 1
