"""`lkft build`: one kernel build as the --lkft-tree options make it, outside pytest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from pytest_lkft.build.inputs import parse_make_vars, parse_targets
from pytest_lkft.build.kernel import TARGETS, BuildProgress, BuildResult, KernelBuild, host_arch


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The build options, named as the plugin's without the --lkft- prefix."""
    parser.add_argument("--tree", type=Path, default=Path("."),
                        help="Kernel source tree, never written to (default: .)")
    parser.add_argument("--target-arch", default=None,
                        help="Architecture to build for, e.g. arm64 (default: this machine's)")
    parser.add_argument("--toolchain", default="gcc",
                        help="gcc, gcc-N, clang, clang-N, llvm or llvm-N (default gcc)")
    parser.add_argument("--kconfig", default="defconfig",
                        help="Make target (defconfig, tinyconfig), file or URL (default defconfig)")
    parser.add_argument("--kconfig-add", action="append", default=[], metavar="FRAGMENT",
                        help="Fragment file or URL, CONFIG_X=y or make:<target>; repeatable")
    parser.add_argument("--targets", default="config,kernel,modules",
                        help=f"Comma-separated targets among {','.join(TARGETS)} "
                        "(default config,kernel,modules)")
    parser.add_argument("--make-var", action="append", default=[], metavar="K=V",
                        help="Extra make variable, e.g. TARGETS='size breakpoints'; repeatable")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="Where artifacts go (default: a directory of the build cache)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="Build cache (default $LKFT_CACHE_DIR/builds, else "
                        "~/.cache/lkft/builds)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="make -j (default: CPUs)")
    parser.add_argument("--no-ccache", action="store_true", help="Do not build through ccache")
    parser.add_argument("--rebuild", action="store_true",
                        help="Run make even when the build cache has this build")


class ProgressLine:
    """Build progress on one terminal line (target, elapsed, last make line); plain lines when
    the stream is not a terminal."""

    def __init__(self, stream: TextIO, width: int = 100) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.target = ""

    def __call__(self, progress: BuildProgress) -> None:
        minutes, seconds = divmod(int(progress.elapsed), 60)
        text = f"[{minutes}:{seconds:02d}] {progress.target}: {progress.line.strip()}"
        if self.tty:
            self.stream.write("\r" + text[: self.width].ljust(self.width))
        elif progress.target != self.target:
            self.stream.write(text + "\n")
        self.target = progress.target
        self.stream.flush()

    def end(self) -> None:
        """Leave the progress line."""
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def summary(result: BuildResult) -> str:
    """Per-target status, counts and where things are."""
    targets = " ".join(f"{t}={s}" for t, s in result.status.items())
    origin = "from the build cache" if result.cached else (
        f"in {result.metadata['results']['duration']['build']:.1f}s")
    lines = [f"build: {result.metadata['results']['status']} {origin}: {targets}",
             f"warnings: {result.warnings}, errors: {result.errors}",
             f"artifacts: {result.output_dir}"]
    if result.first_errors:
        lines.append("first errors:\n" + result.first_errors)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Build, print the summary; exit 1 when a target failed."""
    progress = ProgressLine(sys.stderr)
    options = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    if args.jobs:
        options["jobs"] = args.jobs
    kernel = KernelBuild(
        tree=args.tree, target_arch=args.target_arch or host_arch(), toolchain=args.toolchain,
        kconfig=args.kconfig, kconfig_add=tuple(args.kconfig_add),
        targets=parse_targets(args.targets), make_vars=parse_make_vars(args.make_var),
        build_dir=args.build_dir, ccache=not args.no_ccache, reuse=not args.rebuild,
        progress=progress, **options)
    try:
        result = kernel.run()
    finally:
        progress.end()
    print(summary(result))
    return 0 if result.passed else 1
