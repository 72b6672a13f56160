"""The pytest side of kernel builds: --lkft-tree and friends, one build per session and arch.

plugin.py wires these: `add_options(group)` in pytest_addoption, `settings_from(config,
device_archs)` in pytest_configure (every value is checked there, before make starts), and
`kernel_build_for(config, device_arch)` where a device needs its kernel. Under xdist each
worker calls it; a file lock in the build cache makes the first one build and the others
wait and reuse that build.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_lkft.builds import (
    DEFAULT_TARGETS,
    BuildProgress,
    BuildResult,
    KernelBuild,
    get_arch,
    host_arch,
)
from pytest_lkft.builds_cli import parse_make_vars, parse_targets
from pytest_lkft.errors import UserError
from pytest_lkft.kernelimage import arch_matches
from pytest_lkft.kselftests import KSELFTEST_PREFIX, libc_overlay
from pytest_lkft.rootfs import stored_overlay, tarball_overlay
from pytest_lkft.terminal import terminal

# (option, dest, environment variable, metavar, help); the append ones have no variable
BUILD_OPTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("--lkft-tree", "lkft_tree", "LKFT_TREE", "DIR",
     "Kernel source to build and boot (never written to: the build is out of tree)"),
    ("--lkft-target-arch", "lkft_target_arch", "LKFT_TARGET_ARCH", "ARCH",
     "Architecture to build for (default: the device's)"),
    ("--lkft-toolchain", "lkft_toolchain", "LKFT_TOOLCHAIN", "NAME",
     "Toolchain: gcc, gcc-N, clang, clang-N, llvm or llvm-N (default gcc)"),
    ("--lkft-kconfig", "lkft_kconfig", "LKFT_KCONFIG", "CONFIG",
     "Kernel config: a make target (defconfig, tinyconfig), a file or a URL"),
    ("--lkft-build-targets", "lkft_build_targets", "LKFT_BUILD_TARGETS", "T,T",
     "Build targets among config,kernel,modules,dtbs,headers,kselftest "
     "(default config,kernel,modules)"),
    ("--lkft-build-dir", "lkft_build_dir", "LKFT_BUILD_DIR", "DIR",
     "Where the build's artifacts go (default: the build cache)"),
)
APPEND_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--lkft-kconfig-add", "lkft_kconfig_add", "FRAGMENT",
     "Kconfig fragment file or URL, CONFIG_X=y or make:<target>, merged in order; repeatable"),
    ("--lkft-make-var", "lkft_make_var", "K=V", "Extra make variable; repeatable"),
)
NEEDS_TREE = "{option} needs --lkft-tree DIR, the kernel source to build"

BUILD_SETTINGS_KEY = pytest.StashKey["BuildSettings | None"]()
BUILDS_KEY = pytest.StashKey[dict[str, BuildResult]]()


@dataclass(frozen=True)
class BuildSettings:
    """The build options of a run, resolved and checked once."""

    tree: Path
    target_arch: str | None = None
    toolchain: str = "gcc"
    kconfig: str = "defconfig"
    kconfig_add: tuple[str, ...] = ()
    targets: tuple[str, ...] = DEFAULT_TARGETS
    make_vars: tuple[tuple[str, str], ...] = ()
    build_dir: Path | None = None

    def kernel_build(self, arch: str, cache_dir: Path | None = None) -> KernelBuild:
        """The KernelBuild these settings make for `arch`."""
        build_dir = self.build_dir / arch if self.build_dir else None
        kernel = KernelBuild(tree=self.tree, target_arch=arch, toolchain=self.toolchain,
                             kconfig=self.kconfig, kconfig_add=self.kconfig_add,
                             targets=self.targets, make_vars=dict(self.make_vars),
                             build_dir=build_dir)
        if cache_dir is not None:
            kernel.cache_dir = cache_dir
        return kernel


def add_options(group: pytest.OptionGroup) -> None:
    """Add the --lkft-tree build options to the lkft group."""
    for option, dest, _, metavar, help_text in BUILD_OPTIONS:
        group.addoption(option, dest=dest, metavar=metavar, default=None, help=help_text)
    for option, dest, metavar, help_text in APPEND_OPTIONS:
        group.addoption(option, dest=dest, metavar=metavar, action="append", default=[],
                        help=help_text)


def _value(config: pytest.Config, dest: str, env: str) -> str | None:
    value = config.getoption(dest, default=None)
    return str(value) if value is not None else os.environ.get(env) or None


def settings_from(config: pytest.Config, device_archs: Sequence[str] = ()) -> BuildSettings | None:
    """Resolve and check the build options (stashed for kernel_build_for); None without a tree.

    Every check runs here, for the target architecture or else each device's: a tree that is
    no kernel source, an unknown arch or toolchain, a missing fragment or cross compiler.
    """
    values = {dest: _value(config, dest, env) for _, dest, env, _, _ in BUILD_OPTIONS}
    lists = {dest: list(config.getoption(dest, default=[]) or []) for _, dest, _, _ in
             APPEND_OPTIONS}
    settings = None
    if values["lkft_tree"] is None:
        _refuse_without_tree(values, lists)
    elif config.getoption("lkft_kernel", default=None):
        raise UserError("--lkft-kernel and --lkft-tree both give the kernel to boot; pass one")
    else:
        settings = _settings(values, lists)
        for arch in _archs(settings, device_archs):
            settings.kernel_build(arch).validate()
    config.stash[BUILD_SETTINGS_KEY] = settings
    return settings


def _refuse_without_tree(values: dict[str, str | None], lists: dict[str, list[str]]) -> None:
    given = [dest for dest, value in {**values, **lists}.items() if value]
    if given:
        option = "--" + given[0].replace("_", "-")
        raise UserError(NEEDS_TREE.format(option=option))


def _settings(values: dict[str, str | None], lists: dict[str, list[str]]) -> BuildSettings:
    targets = values["lkft_build_targets"]
    build_dir = values["lkft_build_dir"]
    return BuildSettings(
        tree=Path(str(values["lkft_tree"])).expanduser().resolve(),
        target_arch=values["lkft_target_arch"],
        toolchain=values["lkft_toolchain"] or "gcc",
        kconfig=values["lkft_kconfig"] or "defconfig",
        kconfig_add=tuple(lists["lkft_kconfig_add"]),
        targets=parse_targets(targets) if targets else DEFAULT_TARGETS,
        make_vars=tuple(parse_make_vars(lists["lkft_make_var"], "--lkft-make-var").items()),
        build_dir=Path(build_dir).expanduser().resolve() if build_dir else None,
    )


def _archs(settings: BuildSettings, device_archs: Iterable[str]) -> list[str]:
    """The architectures to build: the target arch (checked against the devices), else theirs."""
    archs = sorted(set(device_archs))
    if settings.target_arch is None:
        return archs or [host_arch()]
    for arch in archs:
        if not arch_matches(arch, settings.target_arch):
            raise UserError(f"--lkft-target-arch {settings.target_arch} cannot boot on an "
                            f"{arch} device; drop --lkft-target-arch to build for each device")
    return [settings.target_arch]


class TerminalProgress:
    """Build progress on the terminal past pytest's capture: one rewritten line on a tty."""

    def __init__(self, config: pytest.Config) -> None:
        self.terminal = terminal(config)
        self.target = ""

    def __call__(self, progress: BuildProgress) -> None:
        minutes, seconds = divmod(int(progress.elapsed), 60)
        text = f"lkft build [{minutes}:{seconds:02d}] {progress.target}: {progress.line.strip()}"
        if not self.terminal.tty and progress.target == self.target:
            return
        self.terminal.rewrite(text)
        self.target = progress.target

    def finish(self) -> None:
        """End the progress line, so pytest's own output starts on a fresh one."""
        if self.target and self.terminal.open_line:
            self.terminal.write("\n")


def kernel_build_for(config: pytest.Config, device_arch: str) -> BuildResult | None:
    """The session's build for a device of `device_arch`; None when no --lkft-tree was given.

    Builds once per process and arch; across xdist workers the build cache's lock makes the
    first worker build and the others reuse it. A failed build is returned, not raised:
    check `result.passed` and show `result.first_errors`.
    """
    if BUILD_SETTINGS_KEY not in config.stash:
        settings_from(config)
    settings = config.stash[BUILD_SETTINGS_KEY]
    if settings is None:
        return None
    arch = settings.target_arch or device_arch
    done = config.stash.setdefault(BUILDS_KEY, {})
    if arch not in done:
        from pytest_lkft.cache_fixtures import cache_from_config

        kernel = settings.kernel_build(arch, cache_from_config(config).root / "builds")
        progress = kernel.progress = TerminalProgress(config)
        done[arch] = kernel.run()
        progress.finish()
    return done[arch]


def report_header(config: pytest.Config) -> str | None:
    """`lkft: build tree=... arch=... toolchain=... kconfig=...`, or None without a tree."""
    settings = config.stash.get(BUILD_SETTINGS_KEY, None)
    if settings is None:
        return None
    kconfig, targets = "+".join([settings.kconfig, *settings.kconfig_add]), ",".join(
        settings.targets)
    return (f"lkft: build tree={settings.tree} arch={settings.target_arch or 'device'} "
            f"toolchain={settings.toolchain} kconfig={kconfig} targets={targets}")


def build_properties(result: BuildResult) -> list[tuple[str, str]]:
    """`lkft.meta.*` user_properties describing the build, for every case of its device."""
    build, git = result.metadata["build"], result.metadata.get("git", {})
    meta = {"build_arch": build["target_arch"], "toolchain": build["toolchain"],
            "kconfig": " ".join([build["kconfig"], *build["kconfig_add"]]),
            "compiler": result.metadata["compiler"]["version_full"],
            "git_describe": git.get("git_describe", ""), "git_commit": git.get("git_commit", ""),
            "build_dir": str(result.output_dir)}
    return [(f"lkft.meta.{k}", v) for k, v in meta.items() if v]


def target_properties(result: BuildResult, target: str) -> list[tuple[str, str]]:
    """user_properties of a `build/<target>` result: suite, test, warnings as a metric."""
    return [("lkft.suite", "build"), ("lkft.test", target),
            ("lkft.metric.warnings", str(result.warnings)), *build_properties(result)]


def failure_reason(result: BuildResult) -> str:
    """One line for the device's skipped suites: which targets failed, the first error, the log."""
    failed = [t for t, status in result.status.items() if status == "FAIL"]
    first = (result.first_errors.splitlines() or ["no error line in the log"])[0]
    return f"kernel build failed ({', '.join(failed)}): {first}; see {result.log}"


def device_overlays(result: BuildResult, cache_root: Path) -> list[Path]:
    """cpio.gz overlays for a device booting this build: the kselftests under
    /opt/kselftest and, with them, the cross C library under /lib (cached by content)."""
    if result.kselftest is None:
        return []
    overlays = [stored_overlay(tarball_overlay(result.kselftest, KSELFTEST_PREFIX), cache_root)]
    libc = get_arch(result.metadata["build"]["target_arch"]).libc_dir
    if libc is not None:
        overlays.append(stored_overlay(libc_overlay(libc), cache_root))
    return overlays

